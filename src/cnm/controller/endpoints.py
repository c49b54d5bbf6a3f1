"""Endpoints and their addresses.

An endpoint is made in this order: its addresses are taken from the network's pools, the driver
makes what it keeps of it (the bridge driver chooses its MAC; a remote plugin may choose an
address where IPAM gave none of that family), then the record is committed; a connect commits
it later, together with its join. An IPAM driver that needs the MAC with each address request
(``requires_mac_address``) gets one chosen first, as libnetwork chooses it. Removal: the record first, then the driver's
part, then the addresses go back to IPAM (Docker gives them back at a container's stop).

An endpoint of a global-scope network is recorded in the cluster's store as soon as it is
made, with its name claimed there (``names/endpoint/<network id>/<name>``: endpoint names are
unique network-wide, on every host at once) and with what the other hosts need to reach it and
to answer for its names: its host, that host's tunnel endpoint, its container's id and
hostname. The table holds this host's endpoints only; the others are peers (``cluster.py``).

The table keeps three indexes beside it (by network and name, by network, by sandbox), so that
no per-attach lookup grows with the number of endpoints.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
from collections.abc import Iterable

from cnm import validate
from cnm.controller.networks import (
    DEFAULT_BRIDGE_OPTION,
    Networks,
    release_address,
    request_address,
)
from cnm.controller.registry import Registry
from cnm.controller.scopes import Op, Stores
from cnm.driverapi import EndpointSpec, Scope, random_mac
from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.ipamapi import MAC_ADDRESS_OPTION
from cnm.model import Endpoint, EndpointOptions, Network
from cnm.store.api import Delete, Put, Store, StoreConflict
from cnm.transaction import Transaction, transaction

log = logging.getLogger(__name__)

LEGACY_LINKS = (
    "links on the default bridge network are legacy links, given as the container's --link "
    "(HostConfig.Links), not per endpoint: on a user-defined network --link makes an alias "
    "the linking container resolves"
)


def endpoint_name_prefix(network_id: str) -> str:
    """Under which a global network's endpoint names are claimed, on every host."""
    return f"names/endpoint/{network_id}/"


def endpoint_name_key(network_id: str, name: str) -> str:
    """Where a global endpoint's name is claimed in the cluster's store."""
    return endpoint_name_prefix(network_id) + name


def ipv6_disabled(network: Network, address: str) -> InvalidParameter:
    return InvalidParameter(
        f"invalid endpoint settings: network {network.name} was created without IPv6 "
        f"(enable_ipv6), so its containers get no IPv6 address: {address} cannot be used"
    )


def endpoint_spec(
    endpoint: Endpoint, joined: bool = False, sandbox_key: str | None = None
) -> EndpointSpec:
    """What a driver is told of an endpoint (where it is joined only at restore)."""
    return EndpointSpec(
        network_id=endpoint.network_id,
        endpoint_id=endpoint.id,
        address=ipaddress.IPv4Interface(endpoint.ipv4_address) if endpoint.ipv4_address else None,
        address_v6=(
            ipaddress.IPv6Interface(endpoint.ipv6_address) if endpoint.ipv6_address else None
        ),
        mac_address=endpoint.mac_address,
        options=dict(endpoint.driver_options),
        joined=joined,
        sandbox_key=sandbox_key if joined else None,
        ifname=endpoint.ifname if joined else None,
    )


class Endpoints:
    def __init__(
        self,
        stores: Stores,
        registry: Registry,
        networks: Networks,
        node_id: str = "",
        vtep: str = "",
    ) -> None:
        self._stores = stores
        self._registry = registry
        self._networks = networks
        self._node_id = node_id
        self._vtep = vtep
        self._table: dict[str, Endpoint] = {}
        self._by_name: dict[tuple[str, str], str] = {}  # (network id, name) -> id
        self._by_network: dict[str, set[str]] = {}
        self._by_sandbox: dict[str, set[str]] = {}
        self._lock = threading.Lock()  # guards the table and its indexes

    def load(self, endpoints: Iterable[Endpoint]) -> None:
        with self._lock:
            self._table, self._by_name, self._by_network, self._by_sandbox = {}, {}, {}, {}
            for endpoint in endpoints:
                self._index(endpoint)

    # ----------------------------------------------------------------- the table

    def put(self, endpoint: Endpoint) -> None:
        """Record ``endpoint`` in the table and its indexes (replacing an older version)."""
        with self._lock:
            self._unindex(endpoint.id)
            self._index(endpoint)

    def drop(self, endpoint_id: str) -> None:
        with self._lock:
            self._unindex(endpoint_id)

    def _index(self, endpoint: Endpoint) -> None:
        self._table[endpoint.id] = endpoint
        self._by_name[(endpoint.network_id, endpoint.name)] = endpoint.id
        self._by_network.setdefault(endpoint.network_id, set()).add(endpoint.id)
        if endpoint.sandbox_id is not None:
            self._by_sandbox.setdefault(endpoint.sandbox_id, set()).add(endpoint.id)

    def _unindex(self, endpoint_id: str) -> None:
        endpoint = self._table.pop(endpoint_id, None)
        if endpoint is None:
            return
        self._by_name.pop((endpoint.network_id, endpoint.name), None)
        self._by_network.get(endpoint.network_id, set()).discard(endpoint_id)
        if endpoint.sandbox_id is not None:
            self._by_sandbox.get(endpoint.sandbox_id, set()).discard(endpoint_id)

    def forget_network(self, network_id: str) -> None:
        with self._lock:
            self._by_network.pop(network_id, None)

    def forget_sandbox(self, sandbox_id: str) -> None:
        with self._lock:
            self._by_sandbox.pop(sandbox_id, None)

    # ----------------------------------------------------------------- lookups

    def get(self, endpoint_id: str) -> Endpoint | None:
        with self._lock:
            return self._table.get(endpoint_id)

    def find(self, endpoint_id: str) -> Endpoint:
        endpoint = self.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id} not found")
        return endpoint

    def all(self) -> list[Endpoint]:
        with self._lock:
            return list(self._table.values())

    def on_network(self, network_id: str) -> list[Endpoint]:
        with self._lock:
            return [self._table[i] for i in self._by_network.get(network_id, ())]

    def joined_to(self, sandbox_id: str) -> list[Endpoint]:
        """A sandbox's endpoints in the order they joined."""
        with self._lock:
            return sorted(
                (self._table[i] for i in self._by_sandbox.get(sandbox_id, ())),
                key=lambda e: e.join_order,
            )

    def name_holder(self, network_id: str, name: str) -> str | None:
        """The id of the endpoint named ``name`` on the network, if any."""
        with self._lock:
            return self._by_name.get((network_id, name))

    # ----------------------------------------------------------------- create / delete

    def create(
        self, network: Network, options: EndpointOptions, *, persist: bool = True
    ) -> Endpoint:
        """Allocate and create an endpoint (the caller holds the network's lock). With
        ``persist`` False the caller records it in the same store commit as its join (a
        global endpoint is recorded at once all the same: its name is claimed then)."""
        endpoint_id = secrets.token_hex(32)
        name = options.name or endpoint_id[:12]
        if self._networks.get(network.id) is None:
            raise NotFound(f"network {network.name} not found")
        if self.name_holder(network.id, name) is not None:
            raise Conflict(f"endpoint with name {name} already exists in network {network.name}")
        is_default_bridge = network.options.get(DEFAULT_BRIDGE_OPTION) == "true"
        if is_default_bridge and (options.ipv4_address or options.ipv6_address):
            raise InvalidParameter(
                "user specified IP address is supported on user defined networks only"
            )
        if is_default_bridge and options.aliases:
            raise InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
            )
        if network.predefined and options.links:
            raise InvalidParameter(LEGACY_LINKS)
        for text in options.link_local_ips:
            if validate.link_local_ip(text).version == 6 and not network.enable_ipv6:
                raise ipv6_disabled(network, text)
        mac_address = None
        if options.mac_address is not None:
            mac_address = validate.mac_address(options.mac_address)
        driver = self._registry.network_driver(network)
        endpoint = Endpoint(
            id=endpoint_id,
            name=name,
            network_id=network.id,
            requested_ipv4=options.ipv4_address,
            requested_ipv6=options.ipv6_address,
            mac_address=mac_address,
            aliases=list(options.aliases),
            gateway_priority=options.gateway_priority,
            links=dict(options.links),
            link_local_ips=[str(validate.link_local_ip(a)) for a in options.link_local_ips],
            driver_options=dict(options.driver_options),
        )
        is_global = network.scope == Scope.GLOBAL
        if is_global:
            endpoint.host, endpoint.vtep = self._node_id, self._vtep
        store = self._stores.of(network)
        with transaction() as txn:
            self._allocate_addresses(network, endpoint, txn)
            info = driver.create_endpoint(endpoint_spec(endpoint))
            txn.on_failure(
                "driver endpoint", lambda: driver.delete_endpoint(network.id, endpoint.id)
            )
            endpoint.mac_address = info.mac_address or endpoint.mac_address
            if endpoint.ipv4_address is None and info.address is not None:
                endpoint.ipv4_address = str(info.address)
            if endpoint.ipv6_address is None and info.address_v6 is not None:
                endpoint.ipv6_address = str(info.address_v6)
            if is_global:
                self._claim(store, network, endpoint)
            elif persist:
                store.put(f"endpoint/{endpoint.id}", endpoint.to_json(), expect_revision=0)
            self.put(endpoint)
        return endpoint

    def _allocate_addresses(self, network: Network, endpoint: Endpoint, txn: Transaction) -> None:
        if not network.ipv4_pools and not network.ipv6_pools:
            if endpoint.requested_ipv4 or endpoint.requested_ipv6:
                raise InvalidParameter(f"network {network.name} does not assign addresses")
            return
        ipam = self._registry.network_ipam(network)
        options: dict[str, str] = {}
        if ipam.capabilities().requires_mac_address:
            endpoint.mac_address = endpoint.mac_address or random_mac()
            options[MAC_ADDRESS_OPTION] = endpoint.mac_address
        if network.ipv4_pools:
            address = request_address(ipam, network.ipv4_pools, endpoint.requested_ipv4, options)
            txn.on_failure("address", lambda: release_address(ipam, network.ipv4_pools, address))
            endpoint.ipv4_address = str(address)
        elif endpoint.requested_ipv4:
            raise InvalidParameter(
                f"network {network.name} has no pool for {endpoint.requested_ipv4}"
            )
        if endpoint.requested_ipv6 and not network.enable_ipv6:
            raise ipv6_disabled(network, endpoint.requested_ipv6)
        if network.ipv6_pools and network.enable_ipv6:
            address_v6 = request_address(ipam, network.ipv6_pools, endpoint.requested_ipv6, options)
            txn.on_failure("address", lambda: release_address(ipam, network.ipv6_pools, address_v6))
            endpoint.ipv6_address = str(address_v6)
        elif endpoint.requested_ipv6:
            raise InvalidParameter(
                f"network {network.name} has no pool for {endpoint.requested_ipv6}"
            )

    def _claim(self, store: Store, network: Network, endpoint: Endpoint) -> None:
        """Record a global endpoint with its name, or fail if another host holds the name."""
        try:
            store.commit(
                [
                    Put(f"endpoint/{endpoint.id}", endpoint.to_json(), expect_revision=0),
                    Put(endpoint_name_key(network.id, endpoint.name), endpoint.id.encode(), 0),
                ]
            )
        except StoreConflict:
            raise Conflict(
                f"endpoint with name {endpoint.name} already exists in network {network.name}"
            ) from None

    def removal(self, network: Network, endpoint: Endpoint) -> list[tuple[Store, Op]]:
        """The store writes that remove an endpoint's records."""
        store = self._stores.of(network)
        writes: list[tuple[Store, Op]] = [(store, Delete(f"endpoint/{endpoint.id}"))]
        if network.scope == Scope.GLOBAL:
            writes.append((store, Delete(endpoint_name_key(network.id, endpoint.name))))
        return writes

    def delete(self, network: Network, endpoint: Endpoint) -> None:
        """Remove an endpoint that is not joined (the caller holds the network's lock)."""
        self._stores.commit(self.removal(network, endpoint))
        self.forget(network, endpoint)

    def forget(self, network: Network, endpoint: Endpoint) -> None:
        """Remove what is left of an endpoint whose record is gone: the table's entry, the
        driver's part, the addresses. A driver that fails to forget its part is logged and the
        addresses go back all the same (Docker logs such driver errors too): nothing is left
        that a retry could start from."""
        driver = self._registry.network_driver(network)
        self.drop(endpoint.id)
        try:
            driver.delete_endpoint(network.id, endpoint.id)
        except CnmError as err:
            log.warning("driver error deleting endpoint %s: %s", endpoint.name, err)
        self.release_addresses(network, endpoint)

    def release_addresses(self, network: Network, endpoint: Endpoint) -> None:
        if not endpoint.ipv4_address and not endpoint.ipv6_address:
            return
        ipam = self._registry.ipam_or_none(network.ipam_driver)
        if ipam is None:
            log.error(
                "endpoint %s: IPAM driver %s is unavailable; its addresses were not released",
                endpoint.name,
                network.ipam_driver,
            )
            return
        for pools, text in (
            (network.ipv4_pools, endpoint.ipv4_address),
            (network.ipv6_pools, endpoint.ipv6_address),
        ):
            if text:
                release_address(ipam, pools, ipaddress.ip_interface(text))
