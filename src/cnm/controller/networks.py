"""Networks and their address pools.

A network is made in this order: its pools are reserved with IPAM in the IPAM's own local
address space, with the network's IPAM options (the gateway and auxiliary addresses with them),
the driver makes its kernel objects, then the record is committed; a failure at any step undoes
the earlier ones. Removal goes the other way: the record first, then the driver's objects, then
the gateway and auxiliary addresses and the pools (libnetwork's order, which an IPAM plugin
that counts its addresses relies on). Whether the network still has endpoints is the
controller's question (endpoints depend on networks, not the other way round).

A global-scope network (an overlay) is recorded in the cluster's store with its name claimed
there (``names/network/<name>``), so two hosts creating the same name at once cannot both
succeed; its pools come from IPAM's global address space, and its driver reserves cluster-wide
resources (a VNI) once, here, through the controller's id allocator. The other hosts learn of
it from the store (``cluster.py``).

An IPv6 subnet given without ``enable_ipv6`` is reserved and shown, as Docker does, and nothing
uses it: the driver is not told of it and endpoints get no IPv6 address (and a static one is
refused, where Docker would take it and leave it unused).

The three predefined networks (``bridge``, ``host``, ``none``) are made at the first start and
never removed; their names cannot be taken.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
from dataclasses import replace
from datetime import UTC, datetime

from cnm import validate
from cnm.controller.registry import Registry
from cnm.controller.scopes import Stores
from cnm.driverapi import IdAllocator, IpamData, NetworkSpec, Scope
from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound
from cnm.events import Event, EventBus
from cnm.ipamapi import (
    REQUEST_ADDRESS_TYPE,
    REQUEST_TYPE_GATEWAY,
    IpamDriver,
    IPInterface,
)
from cnm.model import IpamRequest, Network, NetworkRequest, PoolRecord
from cnm.store.api import Delete, Put, StoreConflict
from cnm.transaction import Transaction, transaction

log = logging.getLogger(__name__)

DEFAULT_BRIDGE_OPTION = "com.docker.network.bridge.default_bridge"
PREDEFINED = ("bridge", "host", "none")


def network_name_key(name: str) -> str:
    """Where a global network's name is claimed in the cluster's store."""
    return f"names/network/{name}"


def now_rfc3339() -> str:
    """Docker's timestamps: RFC 3339 with nanoseconds."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def network_spec(network: Network) -> NetworkSpec:
    """What a driver is told of a network."""

    def data(pools: list[PoolRecord]) -> tuple[IpamData, ...]:
        return tuple(
            IpamData(
                pool=ipaddress.ip_network(p.subnet),
                gateway=ipaddress.ip_interface(p.gateway) if p.gateway else None,
                aux_addresses={k: ipaddress.ip_address(v) for k, v in p.aux_addresses.items()},
                address_space=p.address_space,
            )
            for p in pools
        )

    return NetworkSpec(
        network_id=network.id,
        name=network.name,
        options=dict(network.options),
        internal=network.internal,
        enable_ipv6=network.enable_ipv6,
        ipv4=data(network.ipv4_pools),
        ipv6=data(network.ipv6_pools) if network.enable_ipv6 else (),
    )


def request_address(
    ipam: IpamDriver,
    pools: list[PoolRecord],
    requested: str | None,
    options: dict[str, str] | None = None,
) -> IPInterface:
    """The next free address of the first pool that has one, or ``requested`` from the pool
    that contains it."""
    options = options or {}
    if requested is None:
        last_error: CnmError | None = None
        for pool in pools:
            try:
                return ipam.request_address(pool.pool_id, None, options)
            except CnmError as err:
                last_error = err
        assert last_error is not None, "a network with addresses has at least one pool"
        raise last_error
    address = validate.ip_address(requested, "IP address")
    for pool in pools:
        if address in ipaddress.ip_network(pool.subnet):
            return ipam.request_address(pool.pool_id, address, options)
    subnets = ", ".join(p.subnet for p in pools)
    raise InvalidParameter(f"requested IP address {requested} is not within subnet(s) {subnets}")


def release_address(ipam: IpamDriver, pools: list[PoolRecord], address: IPInterface) -> None:
    for pool in pools:
        if address.ip in ipaddress.ip_network(pool.subnet):
            ipam.release_address(pool.pool_id, address.ip)
            return


class Networks:
    """The network table: records by id, lookups by name, id or id prefix, and the locks."""

    def __init__(
        self, stores: Stores, registry: Registry, ids: IdAllocator, events: EventBus[Event]
    ) -> None:
        self._stores = stores
        self._registry = registry
        self._ids = ids
        self._events = events
        self._table: dict[str, Network] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dictionaries above
        self.create_delete_lock = threading.Lock()  # serialises create and delete: unique names

    def load(self, networks: dict[str, Network]) -> None:
        with self._lock:
            self._table = dict(networks)

    def all(self) -> list[Network]:
        with self._lock:
            return list(self._table.values())

    def get(self, network_id: str) -> Network | None:
        with self._lock:
            return self._table.get(network_id)

    def name_of(self, network_id: str) -> str:
        """The name of a network by id ("" once it is gone), for the sandbox order."""
        network = self.get(network_id)
        return network.name if network is not None else ""

    def find(self, ref: str) -> Network:
        """By id, then name, then unique id prefix (Docker's order)."""
        with self._lock:
            if ref in self._table:
                return self._table[ref]
            for network in self._table.values():
                if network.name == ref:
                    return network
            matches = [n for n in self._table.values() if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found)")
        raise NotFound(f"network {ref} not found")

    def adopt(self, network: Network, *, restored: bool = False) -> bool:
        """Add a network of the cluster's store that this table does not know yet: one
        another host made, or (``restored``) one its driver was given in ``restore``. The
        caller holds ``create_delete_lock``. False if it is known already."""
        with self._lock:
            if network.id in self._table:
                return False
            self._table[network.id] = network
        if not restored:
            try:
                self._registry.network_driver(network).create_network(network_spec(network))
            except CnmError:
                log.exception("network %s from the cluster store", network.name)
        self._events.emit(Event("network-create", replace(network)))
        return True

    def forget(self, network: Network) -> None:
        """Drop a network another host removed (the caller holds ``create_delete_lock``)."""
        with self._lock:
            if self._table.pop(network.id, None) is None:
                return
            self._locks.pop(network.id, None)
        try:
            self._registry.network_driver(network).delete_network(network.id)
        except CnmError:
            log.exception("driver cleanup of network %s", network.name)
        self._events.emit(Event("network-delete", replace(network)))

    def lock(self, network_id: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(network_id, threading.Lock())

    # ----------------------------------------------------------------- create

    def create(self, request: NetworkRequest, *, predefined: bool = False) -> Network:
        if not predefined and request.name in PREDEFINED:
            raise Forbidden(f"{request.name} is a pre-defined network and cannot be created")
        validate.network_name(request.name or "")
        driver = self._registry.driver(request.driver)
        caps = driver.capabilities()
        ipam = self._registry.ipam(request.ipam_driver) if caps.uses_addresses else None
        driver.validate_network_options(request.options)
        if not caps.uses_addresses and (request.ipam_config or request.enable_ipv6):
            raise InvalidParameter(f"the {request.driver} driver does not take IPAM configuration")
        if not predefined and not caps.multiple_networks:
            raise Forbidden(f'only one instance of "{request.driver}" network is allowed')
        if request.scope not in ("", caps.data_scope.value):
            raise InvalidParameter(
                f"the {request.driver} driver makes {caps.data_scope.value}-scope networks, "
                f"not {request.scope}"
            )
        store = self._stores.of_scope(caps.data_scope, f"the {request.driver} driver")
        is_global = caps.data_scope == Scope.GLOBAL
        with self.create_delete_lock:
            with self._lock:
                if any(n.name == request.name for n in self._table.values()):
                    raise Conflict(f"network with name {request.name} already exists")
            network = Network(
                id=secrets.token_hex(32),
                name=request.name,
                driver=request.driver,
                scope=caps.data_scope.value,
                created=now_rfc3339(),
                options=dict(request.options),
                labels=dict(request.labels),
                internal=request.internal,
                attachable=request.attachable,
                enable_ipv6=request.enable_ipv6,
                ipam_driver=request.ipam_driver,
                ipam_options=None if request.ipam_options is None else dict(request.ipam_options),
                predefined=predefined,
            )
            with transaction() as txn:
                if ipam is not None:
                    self._allocate_pools(network, ipam, request.ipam_config, txn)
                    self._check_scopes_apart(network)
                allocated = driver.allocate_network(network_spec(network), self._ids)
                if allocated:
                    txn.on_failure(
                        "driver allocation",
                        lambda: driver.free_network(network_spec(network), self._ids),
                    )
                    network.options.update(allocated)
                driver.create_network(network_spec(network))
                txn.on_failure("driver network", lambda: driver.delete_network(network.id))
                ops: list[Put | Delete] = [
                    Put(f"network/{network.id}", network.to_json(), expect_revision=0)
                ]
                if is_global:
                    ops.append(Put(network_name_key(network.name), network.id.encode(), 0))
                try:
                    store.commit(ops)
                except StoreConflict:
                    raise Conflict(f"network with name {request.name} already exists") from None
                with self._lock:
                    self._table[network.id] = network
        log.info(
            "network created name=%s id=%s driver=%s", network.name, network.id[:12], network.driver
        )
        self._events.emit(Event("network-create", replace(network)))
        return network

    def _allocate_pools(
        self, network: Network, ipam: IpamDriver, configs: list[IpamRequest], txn: Transaction
    ) -> None:
        v4_configs: list[IpamRequest] = []
        v6_configs: list[IpamRequest] = []
        for config in configs:
            if config.subnet is None:
                if config.ip_range or config.gateway or config.aux_addresses:
                    raise InvalidParameter(
                        "an IP range, gateway or auxiliary address needs a subnet"
                    )
                continue
            try:
                subnet = ipaddress.ip_network(config.subnet, strict=False)
            except ValueError:
                raise InvalidParameter(f"invalid subnet {config.subnet!r}: not a CIDR") from None
            (v6_configs if subnet.version == 6 else v4_configs).append(config)
        if network.enable_ipv6 and not v6_configs:
            raise InvalidParameter("IPv6 is enabled (--ipv6) but no IPv6 subnet was given")
        local_space, global_space = ipam.default_address_spaces()
        address_space = global_space if network.scope == Scope.GLOBAL else local_space
        for config in v4_configs or [IpamRequest()]:
            network.ipv4_pools.append(
                _allocate_pool(ipam, address_space, network.ipam_options or {}, config, False, txn)
            )
        for config in v6_configs:
            network.ipv6_pools.append(
                _allocate_pool(ipam, address_space, network.ipam_options or {}, config, True, txn)
            )

    def _check_scopes_apart(self, network: Network) -> None:
        """A local network must not overlap a global one known here, nor a global one a
        local network of this host: the routes of both would be on this host. (Other hosts'
        local networks are the global IPAM's business.)"""
        mine = [ipaddress.ip_network(p.subnet) for p in (*network.ipv4_pools, *network.ipv6_pools)]
        for other in self.all():
            if (other.scope == Scope.GLOBAL) == (network.scope == Scope.GLOBAL):
                continue
            for pool in (*other.ipv4_pools, *other.ipv6_pools):
                theirs = ipaddress.ip_network(pool.subnet)
                clash = next((m for m in mine if m.overlaps(theirs)), None)
                if clash is not None:
                    raise Conflict(
                        f"subnet {clash} overlaps {theirs} of {other.scope} network {other.name}"
                    )

    def ensure_predefined(self, bridge_options: dict[str, str]) -> None:
        """Make ``none``, ``host`` and ``bridge`` (with ``bridge_options``) where missing."""
        names = {n.name for n in self.all()}
        if "none" not in names:
            self.create(NetworkRequest(name="none", driver="null"), predefined=True)
        if "host" not in names:
            self.create(NetworkRequest(name="host", driver="host"), predefined=True)
        if "bridge" not in names:
            options = {DEFAULT_BRIDGE_OPTION: "true", **bridge_options}
            self.create(
                NetworkRequest(name="bridge", driver="bridge", options=options), predefined=True
            )

    # ----------------------------------------------------------------- delete

    def delete(self, network: Network) -> None:
        """Remove a network that has no endpoints (the caller holds the create/delete lock and
        the network's lock, and has checked)."""
        driver = self._registry.network_driver(network)
        store = self._stores.of(network)
        is_global = network.scope == Scope.GLOBAL
        ops: list[Put | Delete] = [Delete(f"network/{network.id}")]
        if is_global:
            ops.append(Delete(network_name_key(network.name)))
        with transaction() as txn:
            store.commit(ops)
            restore: list[Put | Delete] = [Put(f"network/{network.id}", network.to_json())]
            if is_global:
                restore.append(Put(network_name_key(network.name), network.id.encode()))
            txn.on_failure("network record", lambda: store.commit(restore))
            driver.delete_network(network.id)
        with self._lock:
            del self._table[network.id]
            self._locks.pop(network.id, None)
        if is_global:
            try:
                driver.free_network(network_spec(network), self._ids)
            except CnmError:
                log.exception("freeing the cluster resources of network %s", network.name)
        self._release_pools(network)
        log.info("network deleted name=%s id=%s", network.name, network.id[:12])
        self._events.emit(Event("network-delete", replace(network)))

    def _release_pools(self, network: Network) -> None:
        pools = (*network.ipv4_pools, *network.ipv6_pools)
        if not pools:
            return
        ipam = self._registry.ipam_or_none(network.ipam_driver)
        if ipam is None:
            log.error(
                "network %s: IPAM driver %s is unavailable; its pools were not released",
                network.name,
                network.ipam_driver,
            )
            return
        for pool in pools:
            try:
                release_pool(ipam, pool)
            except CnmError:
                log.exception("releasing pool %s", pool.subnet)


def _allocate_pool(
    ipam: IpamDriver,
    address_space: str,
    options: dict[str, str],
    config: IpamRequest,
    v6: bool,
    txn: Transaction,
) -> PoolRecord:
    grant = ipam.request_pool(address_space, config.subnet, config.ip_range, options, v6)
    subnet = grant.subnet
    record = PoolRecord(
        pool_id=grant.pool_id,
        subnet=str(subnet),
        ip_range=config.ip_range,
        address_space=address_space,
    )
    txn.on_failure("pool", lambda: release_pool(ipam, record))
    gateway_ip = None
    if config.gateway:
        gateway_ip = validate.ip_address(config.gateway, "gateway")
        if gateway_ip not in subnet:
            raise InvalidParameter(f"gateway {config.gateway} is not within subnet {subnet}")
    if gateway_ip is None and grant.gateway is not None:
        gateway = grant.gateway
    else:
        gateway = ipam.request_address(
            grant.pool_id, gateway_ip, {REQUEST_ADDRESS_TYPE: REQUEST_TYPE_GATEWAY}
        )
    record.gateway = str(gateway)
    for name, text in config.aux_addresses.items():
        address = validate.ip_address(text, f"auxiliary address {name}")
        if address not in subnet:
            raise InvalidParameter(f"auxiliary address {name}={text} is not within subnet {subnet}")
        ipam.request_address(grant.pool_id, address, {})
        record.aux_addresses[name] = str(address)
    return record


def release_pool(ipam: IpamDriver, pool: PoolRecord) -> None:
    """Give back a pool's gateway and auxiliary addresses, then the pool."""
    addresses = [ipaddress.ip_address(a) for a in pool.aux_addresses.values()]
    if pool.gateway:
        addresses.insert(0, ipaddress.ip_interface(pool.gateway).ip)
    for address in addresses:
        try:
            ipam.release_address(pool.pool_id, address)
        except CnmError:
            log.exception("releasing address %s of pool %s", address, pool.subnet)
    ipam.release_pool(pool.pool_id)
