"""Networks and their address pools.

A network is made in this order: its pools are reserved with IPAM in the IPAM's own local
address space, with the network's IPAM options (the gateway and auxiliary addresses with them),
the driver makes its kernel objects, then the record is committed; a failure at any step undoes
the earlier ones. Removal goes the other way: the record first, then the driver's objects, then
the gateway and auxiliary addresses and the pools (libnetwork's order, which an IPAM plugin
that counts its addresses relies on). Whether the network still has endpoints is the
controller's question (endpoints depend on networks, not the other way round).

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
from cnm.driverapi import IpamData, NetworkSpec
from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound
from cnm.events import Event, EventBus
from cnm.ipamapi import (
    REQUEST_ADDRESS_TYPE,
    REQUEST_TYPE_GATEWAY,
    IpamDriver,
    IPInterface,
)
from cnm.model import IpamRequest, Network, NetworkRequest, PoolRecord
from cnm.store.api import Store
from cnm.transaction import Transaction, transaction

log = logging.getLogger(__name__)

DEFAULT_BRIDGE_OPTION = "com.docker.network.bridge.default_bridge"
PREDEFINED = ("bridge", "host", "none")


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
        ipv6=data(network.ipv6_pools),
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

    def __init__(self, store: Store, registry: Registry, events: EventBus) -> None:
        self._store = store
        self._registry = registry
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
                ipam_options=dict(request.ipam_options),
                predefined=predefined,
            )
            with transaction() as txn:
                if ipam is not None:
                    self._allocate_pools(network, ipam, request.ipam_config, txn)
                driver.create_network(network_spec(network))
                txn.on_failure("driver network", lambda: driver.delete_network(network.id))
                self._store.put(f"network/{network.id}", network.to_json(), expect_revision=0)
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
        if v6_configs and not network.enable_ipv6:
            raise InvalidParameter("an IPv6 subnet was given but IPv6 is not enabled (--ipv6)")
        if network.enable_ipv6 and not v6_configs:
            raise InvalidParameter("IPv6 is enabled (--ipv6) but no IPv6 subnet was given")
        address_space = ipam.default_address_spaces()[0]
        for config in v4_configs or [IpamRequest()]:
            network.ipv4_pools.append(
                _allocate_pool(ipam, address_space, network.ipam_options, config, False, txn)
            )
        for config in v6_configs:
            network.ipv6_pools.append(
                _allocate_pool(ipam, address_space, network.ipam_options, config, True, txn)
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
        with transaction() as txn:
            self._store.delete(f"network/{network.id}")
            txn.on_failure(
                "network record",
                lambda: self._store.put(f"network/{network.id}", network.to_json()),
            )
            driver.delete_network(network.id)
        with self._lock:
            del self._table[network.id]
            self._locks.pop(network.id, None)
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
