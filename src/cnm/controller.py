"""The controller: the one authority over networks, endpoints and sandboxes.

It keeps the model's invariants (an endpoint is on one network and in at most one sandbox; a
sandbox holds endpoints of many networks; names are unique), owns the calls to IPAM, the store
and the drivers, and decides their order.

Transactions. Every operation pushes an undo step after each step it completes; a failure at any
later step runs the undo steps in reverse, so a failed call leaves no link, namespace, address or
record behind. Kernel objects are made before the record that names them is committed, and
records are removed before the kernel objects; a crash between two steps therefore leaves at
worst an orphaned kernel object, which ``start`` removes (drivers tag what they make).

The default route rule. Among a sandbox's joined endpoints whose network offers a gateway, the
one with the highest gateway priority wins; on a tie, the one that joined first. IPv4 and IPv6
are chosen separately. When the winner leaves, the next one by the same rule takes over.
Published ports follow the same rule (IPv4's winner, else IPv6's): they live on that endpoint
(Docker's gateway endpoint) and move with it; their bound host ports are recorded under
``ports/<sandbox id>`` so a restart binds the same ones again.

The firewall (``cnm.firewall``) and the host-port mapper belong to the controller's host
namespace; the bridge driver reports to the firewall, and ``start`` writes the restored
ruleset in one transaction before anything new is made.

Locking. ``_lock`` guards the object tables and is held only briefly; a lock per network
serialises endpoint operations on it, a lock per sandbox serialises joins and leaves on it
(always taken before a network lock), and ``_network_lock`` serialises network create/delete.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cnm import sandbox_files, validate
from cnm.driverapi import (
    EndpointSpec,
    IpamData,
    JoinInfo,
    NetworkDriver,
    NetworkSpec,
)
from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound
from cnm.events import Event, EventBus
from cnm.firewall.api import Firewall
from cnm.firewall.nftables import NftablesFirewall
from cnm.ipam.default import DefaultIpam, PoolSpec
from cnm.ipamapi import (
    LOCAL_ADDRESS_SPACE,
    REQUEST_ADDRESS_TYPE,
    REQUEST_TYPE_GATEWAY,
    IpamDriver,
)
from cnm.model import (
    Endpoint,
    EndpointOptions,
    IpamRequest,
    Network,
    NetworkRequest,
    PoolRecord,
    Sandbox,
    SandboxOptions,
)
from cnm.osl.links import HostNetwork, SandboxNetwork
from cnm.osl.namespace import NetNamespace, create_netns, delete_netns, is_netns_mount
from cnm.portmap.mapper import PortMapper
from cnm.portmap.spec import PortMapping, PortRequest
from cnm.store.api import Delete, Put, Store
from cnm.transaction import Transaction, transaction

log = logging.getLogger(__name__)

# Docker's rule for network and container names.
DEFAULT_BRIDGE_OPTION = "com.docker.network.bridge.default_bridge"
PREDEFINED = ("bridge", "host", "none")
HOST_NAMESPACE_KEY = "default"  # <exec-root>/netns/default pins the host namespace, as in Docker


@dataclass
class ControllerConfig:
    exec_root: Path = Path("/run/cnm")
    default_address_pools: list[PoolSpec] | None = None
    default_bridge_name: str = "cnm0"
    default_bridge_mtu: int | None = None
    host_resolv_conf: Path = Path("/etc/resolv.conf")
    default_host_ip: str = "0.0.0.0"  # published ports' host address when none is given
    dns: list[str] = field(default_factory=list)  # the daemon's --dns: resolvers for sandboxes


@dataclass
class _Published:
    """A sandbox's published ports: as asked (then as first bound, so a move or a restart keeps
    the host ports), where they live now (network id, endpoint id) and as bound there."""

    requests: list[PortRequest]
    owner: tuple[str, str] | None = None
    mappings: list[PortMapping] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "requests": [asdict(r) for r in self.requests],
                "owner": list(self.owner) if self.owner else None,
                "mappings": [m.to_dict() for m in self.mappings],
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> _Published:
        data = json.loads(raw)
        return cls(
            [PortRequest(**r) for r in data["requests"]],
            tuple(data["owner"]) if data["owner"] else None,  # type: ignore[arg-type]
            [PortMapping.from_dict(m) for m in data["mappings"]],
        )


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def _iface(text: str | None) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    return ipaddress.ip_interface(text) if text else None


class Controller:
    def __init__(self, config: ControllerConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.host = HostNetwork()
        self.firewall: Firewall = NftablesFirewall()
        self.ports = PortMapper(self.host)
        self._published: dict[str, _Published] = {}  # by sandbox id
        self.drivers: dict[str, NetworkDriver] = {}
        self.ipams: dict[str, IpamDriver] = {}
        self._networks: dict[str, Network] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self._sandboxes: dict[str, Sandbox] = {}
        # Indexes over _endpoints, so no per-attach work grows with the number of endpoints.
        self._endpoint_names: dict[tuple[str, str], str] = {}  # (network id, name) -> id
        self._endpoints_by_network: dict[str, set[str]] = {}
        self._endpoints_by_sandbox: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._network_lock = threading.Lock()
        self._net_locks: dict[str, threading.Lock] = {}
        self._sandbox_locks: dict[str, threading.Lock] = {}
        self.events = EventBus()

    # ----------------------------------------------------------------- set-up

    @property
    def netns_dir(self) -> Path:
        return self.config.exec_root / "netns"

    @property
    def sandbox_dir(self) -> Path:
        return self.config.exec_root / "sandboxes"

    def register_driver(
        self, driver: NetworkDriver, config: dict[str, object] | None = None
    ) -> None:
        driver.configure(config or {})
        self.drivers[driver.name] = driver

    def register_ipam(self, ipam: IpamDriver) -> None:
        self.ipams[ipam.name] = ipam

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self.events.subscribe(listener)

    def _emit(self, event: Event) -> None:
        self.events.emit(event)

    def start(self) -> None:
        """Register the built-in drivers, restore from the store, reconcile the kernel and
        make the predefined networks."""
        from cnm.drivers.bridge import BridgeDriver
        from cnm.drivers.host import HostDriver
        from cnm.drivers.null import NullDriver

        if "default" not in self.ipams:
            self.register_ipam(
                DefaultIpam(self.config.default_address_pools, self._reserved_networks)
            )
        bridge = BridgeDriver(self.host, self.firewall, self.ports, self.config.default_host_ip)
        for driver in (bridge, HostDriver(), NullDriver()):
            if driver.name not in self.drivers:
                self.register_driver(driver)
        self.netns_dir.mkdir(parents=True, exist_ok=True)
        self.sandbox_dir.mkdir(parents=True, exist_ok=True)
        self._restore()
        self.firewall.start()
        self._ensure_predefined()

    def close(self) -> None:
        self.firewall.close()
        self.ports.close()
        self.host.close()

    def _reserved_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        reserved = list(self.host.on_link_networks())
        try:
            text = self.config.host_resolv_conf.read_text()
        except OSError:
            text = ""
        for line in text.splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[0] == "nameserver":
                try:
                    reserved.append(ipaddress.ip_network(fields[1].split("%")[0]))
                except ValueError:
                    continue
        return reserved

    def _ensure_predefined(self) -> None:
        names = {n.name for n in self._networks.values()}
        if "none" not in names:
            self._create_network(NetworkRequest(name="none", driver="null"), predefined=True)
        if "host" not in names:
            self._create_network(NetworkRequest(name="host", driver="host"), predefined=True)
        if "bridge" not in names:
            options = {
                DEFAULT_BRIDGE_OPTION: "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": self.config.default_host_ip,
                "com.docker.network.bridge.name": self.config.default_bridge_name,
                "com.docker.network.driver.mtu": str(self.config.default_bridge_mtu or 1500),
            }
            self._create_network(
                NetworkRequest(name="bridge", driver="bridge", options=options), predefined=True
            )

    # ----------------------------------------------------------------- lookups

    def networks(self) -> list[Network]:
        with self._lock:
            return [replace(n) for n in self._networks.values()]

    def network(self, ref: str) -> Network:
        return replace(self._find_network(ref))

    def _find_network(self, ref: str) -> Network:
        with self._lock:
            if ref in self._networks:
                return self._networks[ref]
            for net in self._networks.values():
                if net.name == ref:
                    return net
            matches = [n for n in self._networks.values() if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found)")
        raise NotFound(f"network {ref} not found")

    def endpoints(
        self, network_id: str | None = None, sandbox_id: str | None = None
    ) -> list[Endpoint]:
        """Endpoints, optionally only those of one network and/or joined to one sandbox."""
        with self._lock:
            if sandbox_id is not None:
                ids: Iterable[str] = self._endpoints_by_sandbox.get(sandbox_id, ())
            elif network_id is not None:
                ids = self._endpoints_by_network.get(network_id, ())
            else:
                ids = self._endpoints
            return [
                replace(self._endpoints[i])
                for i in ids
                if network_id is None or self._endpoints[i].network_id == network_id
            ]

    def _put_endpoint(self, endpoint: Endpoint) -> None:
        """Record ``endpoint`` in the table and its indexes (replacing an older version)."""
        with self._lock:
            self._drop_endpoint(endpoint.id)
            self._endpoints[endpoint.id] = endpoint
            self._endpoint_names[(endpoint.network_id, endpoint.name)] = endpoint.id
            self._endpoints_by_network.setdefault(endpoint.network_id, set()).add(endpoint.id)
            if endpoint.sandbox_id is not None:
                self._endpoints_by_sandbox.setdefault(endpoint.sandbox_id, set()).add(endpoint.id)

    def _drop_endpoint(self, endpoint_id: str) -> None:
        with self._lock:
            endpoint = self._endpoints.pop(endpoint_id, None)
            if endpoint is None:
                return
            self._endpoint_names.pop((endpoint.network_id, endpoint.name), None)
            self._endpoints_by_network.get(endpoint.network_id, set()).discard(endpoint_id)
            if endpoint.sandbox_id is not None:
                self._endpoints_by_sandbox.get(endpoint.sandbox_id, set()).discard(endpoint_id)

    def endpoint(self, endpoint_id: str) -> Endpoint:
        return replace(self._find_endpoint(endpoint_id))

    def _find_endpoint(self, endpoint_id: str) -> Endpoint:
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id} not found")
        return endpoint

    def sandboxes(self) -> list[Sandbox]:
        with self._lock:
            return [replace(s) for s in self._sandboxes.values()]

    def sandbox(self, sandbox_id: str) -> Sandbox:
        return replace(self._find_sandbox(sandbox_id))

    def _find_sandbox(self, sandbox_id: str) -> Sandbox:
        with self._lock:
            sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise NotFound(f"sandbox {sandbox_id} not found")
        return sandbox

    def network_info(self, network_id: str) -> dict[str, str]:
        net = self._find_network(network_id)
        return dict(self.drivers[net.driver].network_info(net.id))

    def _net_lock(self, network_id: str) -> threading.Lock:
        with self._lock:
            return self._net_locks.setdefault(network_id, threading.Lock())

    def _sb_lock(self, sandbox_id: str) -> threading.Lock:
        with self._lock:
            return self._sandbox_locks.setdefault(sandbox_id, threading.Lock())

    def _driver(self, name: str) -> NetworkDriver:
        driver = self.drivers.get(name)
        if driver is None:
            raise NotFound(f"could not find network driver {name!r}: plugin not found")
        return driver

    def _ipam(self, name: str) -> IpamDriver:
        ipam = self.ipams.get(name)
        if ipam is None:
            raise NotFound(f"could not find IPAM driver {name!r}: plugin not found")
        return ipam

    # ----------------------------------------------------------------- networks

    def create_network(self, request: NetworkRequest) -> Network:
        if request.name in PREDEFINED:
            raise Forbidden(f"{request.name} is a pre-defined network and cannot be created")
        return replace(self._create_network(request, predefined=False))

    def _create_network(self, request: NetworkRequest, *, predefined: bool) -> Network:
        validate.network_name(request.name or "")
        driver = self._driver(request.driver)
        ipam = self._ipam(request.ipam_driver)
        caps = driver.capabilities()
        driver.validate_network_options(request.options)
        if not caps.uses_addresses and (request.ipam_config or request.enable_ipv6):
            raise InvalidParameter(f"the {request.driver} driver does not take IPAM configuration")
        if not predefined and not caps.multiple_networks:
            raise Forbidden(f'only one instance of "{request.driver}" network is allowed')
        with self._network_lock:
            with self._lock:
                if any(n.name == request.name for n in self._networks.values()):
                    raise Conflict(f"network with name {request.name} already exists")
            network = Network(
                id=secrets.token_hex(32),
                name=request.name,
                driver=request.driver,
                scope=caps.data_scope.value,
                created=_now(),
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
                if caps.uses_addresses:
                    self._allocate_pools(network, ipam, request.ipam_config, txn)
                driver.create_network(self._network_spec(network))
                txn.on_failure("driver network", lambda: driver.delete_network(network.id))
                self.store.put(f"network/{network.id}", network.to_json(), expect_revision=0)
                with self._lock:
                    self._networks[network.id] = network
        log.info(
            "network created name=%s id=%s driver=%s", network.name, network.id[:12], network.driver
        )
        self._emit(Event("network-create", replace(network)))
        return network

    def _allocate_pools(
        self,
        network: Network,
        ipam: IpamDriver,
        configs: list[IpamRequest],
        txn: Transaction,
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
        space = LOCAL_ADDRESS_SPACE
        for config in v4_configs or [IpamRequest()]:
            network.ipv4_pools.append(self._allocate_pool(ipam, space, config, False, txn))
        for config in v6_configs:
            network.ipv6_pools.append(self._allocate_pool(ipam, space, config, True, txn))

    def _allocate_pool(
        self,
        ipam: IpamDriver,
        space: str,
        config: IpamRequest,
        v6: bool,
        txn: Transaction,
    ) -> PoolRecord:
        grant = ipam.request_pool(space, config.subnet, config.ip_range, {}, v6)
        txn.on_failure("pool", lambda: ipam.release_pool(grant.pool_id))
        subnet = grant.subnet
        gateway_ip = None
        if config.gateway:
            gateway_ip = validate.ip_address(config.gateway, "gateway")
            if gateway_ip not in subnet:
                raise InvalidParameter(f"gateway {config.gateway} is not within subnet {subnet}")
        gateway = ipam.request_address(
            grant.pool_id, gateway_ip, {REQUEST_ADDRESS_TYPE: REQUEST_TYPE_GATEWAY}
        )
        aux: dict[str, str] = {}
        for name, text in config.aux_addresses.items():
            address = validate.ip_address(text, f"auxiliary address {name}")
            if address not in subnet:
                raise InvalidParameter(
                    f"auxiliary address {name}={text} is not within subnet {subnet}"
                )
            ipam.request_address(grant.pool_id, address, {})
            aux[name] = str(address)
        return PoolRecord(
            pool_id=grant.pool_id,
            subnet=str(subnet),
            ip_range=config.ip_range,
            gateway=str(gateway),
            aux_addresses=aux,
        )

    def _network_spec(self, network: Network) -> NetworkSpec:
        def data(pools: list[PoolRecord]) -> tuple[IpamData, ...]:
            return tuple(
                IpamData(
                    pool=ipaddress.ip_network(p.subnet),
                    gateway=_iface(p.gateway),
                    aux_addresses={k: ipaddress.ip_address(v) for k, v in p.aux_addresses.items()},
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

    def delete_network(self, ref: str) -> None:
        network = self._find_network(ref)
        if network.predefined:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        with self._network_lock, self._net_lock(network.id):
            with self._lock:
                if network.id not in self._networks:
                    raise NotFound(f"network {ref} not found")
                if self._endpoints_by_network.get(network.id):
                    raise Forbidden(
                        f"error while removing network: network {network.name} id "
                        f"{network.id} has active endpoints"
                    )
            driver = self._driver(network.driver)
            with transaction() as txn:
                self.store.delete(f"network/{network.id}")
                txn.on_failure(
                    "network record",
                    lambda: self.store.put(f"network/{network.id}", network.to_json()),
                )
                driver.delete_network(network.id)
            with self._lock:
                del self._networks[network.id]
                self._endpoints_by_network.pop(network.id, None)
                self._net_locks.pop(network.id, None)
            self._release_pools(network)
        log.info("network deleted name=%s id=%s", network.name, network.id[:12])
        self._emit(Event("network-delete", replace(network)))

    def _release_pools(self, network: Network) -> None:
        ipam = self.ipams.get(network.ipam_driver)
        if ipam is None:
            return
        for pool in (*network.ipv4_pools, *network.ipv6_pools):
            try:
                ipam.release_pool(pool.pool_id)
            except CnmError:
                log.exception("releasing pool %s", pool.subnet)

    def prune_networks(self, should_prune: Callable[[Network], bool]) -> list[Network]:
        pruned = []
        for network in self.networks():
            if network.predefined or not should_prune(network):
                continue
            try:
                self.delete_network(network.id)
            except (Forbidden, NotFound):
                continue
            pruned.append(network)
        return pruned

    # ----------------------------------------------------------------- endpoints

    def create_endpoint(self, network_ref: str, options: EndpointOptions | None = None) -> Endpoint:
        options = options or EndpointOptions()
        network = self._find_network(network_ref)
        with self._net_lock(network.id):
            return replace(self._create_endpoint(network, options))

    def _create_endpoint(
        self, network: Network, options: EndpointOptions, *, persist: bool = True
    ) -> Endpoint:
        """Allocate and create an endpoint. With ``persist`` False the caller records it in
        the same store commit as its join (``connect``)."""
        endpoint_id = secrets.token_hex(32)
        name = options.name or endpoint_id[:12]
        with self._lock:
            if network.id not in self._networks:
                raise NotFound(f"network {network.name} not found")
            if (network.id, name) in self._endpoint_names:
                raise Conflict(
                    f"endpoint with name {name} already exists in network {network.name}"
                )
        is_default_bridge = network.options.get(DEFAULT_BRIDGE_OPTION) == "true"
        if is_default_bridge and (options.ipv4_address or options.ipv6_address):
            raise InvalidParameter(
                "user specified IP address is supported on user defined networks only"
            )
        if is_default_bridge and options.aliases:
            raise InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
            )
        mac_address = None
        if options.mac_address is not None:
            mac_address = validate.mac_address(options.mac_address)
        driver = self._driver(network.driver)
        endpoint = Endpoint(
            id=endpoint_id,
            name=name,
            network_id=network.id,
            requested_ipv4=options.ipv4_address,
            requested_ipv6=options.ipv6_address,
            mac_address=mac_address,
            aliases=list(options.aliases),
            gateway_priority=options.gateway_priority,
        )
        with transaction() as txn:
            self._allocate_addresses(network, endpoint, txn)
            info = driver.create_endpoint(self._endpoint_spec(endpoint))
            txn.on_failure(
                "driver endpoint", lambda: driver.delete_endpoint(network.id, endpoint.id)
            )
            endpoint.mac_address = info.mac_address or endpoint.mac_address
            if persist:
                self.store.put(f"endpoint/{endpoint.id}", endpoint.to_json(), expect_revision=0)
            with self._lock:
                self._put_endpoint(endpoint)
        return endpoint

    def _allocate_addresses(self, network: Network, endpoint: Endpoint, txn: Transaction) -> None:
        if not network.ipv4_pools and not network.ipv6_pools:
            if endpoint.requested_ipv4 or endpoint.requested_ipv6:
                raise InvalidParameter(f"network {network.name} does not assign addresses")
            return
        ipam = self._ipam(network.ipam_driver)
        for pools, requested, attr in (
            (network.ipv4_pools, endpoint.requested_ipv4, "ipv4_address"),
            (network.ipv6_pools, endpoint.requested_ipv6, "ipv6_address"),
        ):
            if not pools:
                if requested:
                    raise InvalidParameter(f"network {network.name} has no pool for {requested}")
                continue
            address = self._request_address(ipam, pools, requested)
            txn.on_failure("address", lambda a=address, p=pools: self._release_address(ipam, p, a))
            setattr(endpoint, attr, str(address))

    def _request_address(
        self, ipam: IpamDriver, pools: list[PoolRecord], requested: str | None
    ) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        if requested is None:
            last_error: CnmError | None = None
            for pool in pools:
                try:
                    return ipam.request_address(pool.pool_id, None, {})
                except CnmError as err:
                    last_error = err
            assert last_error is not None
            raise last_error
        address = validate.ip_address(requested, "IP address")
        for pool in pools:
            if address in ipaddress.ip_network(pool.subnet):
                return ipam.request_address(pool.pool_id, address, {})
        subnets = ", ".join(p.subnet for p in pools)
        raise InvalidParameter(
            f"requested IP address {requested} is not within subnet(s) {subnets}"
        )

    @staticmethod
    def _release_address(
        ipam: IpamDriver,
        pools: list[PoolRecord],
        address: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
    ) -> None:
        for pool in pools:
            if address.ip in ipaddress.ip_network(pool.subnet):
                ipam.release_address(pool.pool_id, address.ip)
                return

    def _endpoint_spec(self, endpoint: Endpoint, joined: bool = False) -> EndpointSpec:
        return EndpointSpec(
            network_id=endpoint.network_id,
            endpoint_id=endpoint.id,
            address=_iface(endpoint.ipv4_address),  # type: ignore[arg-type]
            address_v6=_iface(endpoint.ipv6_address),  # type: ignore[arg-type]
            mac_address=endpoint.mac_address,
            joined=joined,
        )

    def delete_endpoint(self, endpoint_id: str) -> None:
        endpoint = self._find_endpoint(endpoint_id)
        if endpoint.sandbox_id is not None:
            raise Forbidden(
                f"endpoint {endpoint.name} is joined to sandbox {endpoint.sandbox_id[:12]}; "
                "leave first"
            )
        network = self._find_network(endpoint.network_id)
        with self._net_lock(network.id):
            self._delete_endpoint(network, endpoint)

    def _delete_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        driver = self._driver(network.driver)
        self.store.delete(f"endpoint/{endpoint.id}")
        with self._lock:
            self._drop_endpoint(endpoint.id)
        driver.delete_endpoint(network.id, endpoint.id)
        ipam = self.ipams.get(network.ipam_driver)
        if ipam is not None:
            for pools, text in (
                (network.ipv4_pools, endpoint.ipv4_address),
                (network.ipv6_pools, endpoint.ipv6_address),
            ):
                if text:
                    self._release_address(ipam, pools, ipaddress.ip_interface(text))

    # ----------------------------------------------------------------- sandboxes

    def create_sandbox(self, options: SandboxOptions | None = None) -> Sandbox:
        options = options or SandboxOptions()
        sandbox_id = secrets.token_hex(32)
        container_id = options.container_id or sandbox_id
        sandbox = Sandbox(
            id=sandbox_id,
            container_id=container_id,
            key=str(self.netns_dir / sandbox_id),
            hostname=options.hostname or container_id[:12],
            domainname=options.domainname,
            use_host_network=options.use_host_network,
            dns=list(options.dns),
            dns_search=list(options.dns_search),
            dns_options=list(options.dns_options),
            extra_hosts=list(options.extra_hosts),
            embedded_dns=options.embedded_dns and not options.use_host_network,
        )
        for entry in sandbox.extra_hosts:
            validate.extra_host(entry)
        for server in sandbox.dns:
            validate.dns_server(server)
        files = self.sandbox_dir / sandbox_id
        with transaction() as txn:
            if sandbox.use_host_network:
                sandbox.key = self.host.pin_at(str(self.netns_dir / HOST_NAMESPACE_KEY))
            else:
                namespace = create_netns(sandbox.key)
                txn.on_failure("netns", lambda: delete_netns(sandbox.key))
                with SandboxNetwork(namespace) as sandbox_net:
                    sandbox_net.bring_up_loopback(ipv6=False)
                namespace.close()
            files.mkdir(parents=True)
            txn.on_failure("sandbox files", lambda: _remove_tree(files))
            self._write_sandbox_files(sandbox)
            self.store.put(f"sandbox/{sandbox.id}", sandbox.to_json(), expect_revision=0)
            with self._lock:
                self._sandboxes[sandbox.id] = sandbox
        self._emit(Event("sandbox-create", None, sandbox=replace(sandbox)))
        return replace(sandbox)

    def sandbox_file(self, sandbox_id: str, name: str) -> Path:
        """Path of a sandbox's generated ``hosts``, ``resolv.conf`` or ``hostname`` file."""
        return self.sandbox_dir / sandbox_id / name

    def _write_sandbox_files(self, sandbox: Sandbox) -> None:
        """Write a new sandbox's resolv.conf, hostname and (address-less) hosts."""
        files = self.sandbox_dir / sandbox.id
        try:
            host_conf = self.config.host_resolv_conf.read_text()
        except OSError:
            host_conf = ""
        if sandbox.embedded_dns:
            resolv_conf = sandbox_files.render_embedded_resolv_conf(
                host_conf, sandbox.dns_search, sandbox.dns_options
            )
        else:
            resolv_conf = sandbox_files.render_resolv_conf(
                host_conf, sandbox.dns or self.config.dns, sandbox.dns_search, sandbox.dns_options
            )
        sandbox_files.write_in_place(files / "resolv.conf", resolv_conf)
        sandbox_files.write_in_place(files / "hostname", sandbox.hostname + "\n")
        self._write_hosts(sandbox, [])

    def _write_hosts(self, sandbox: Sandbox, endpoints: list[Endpoint]) -> None:
        """Rewrite the sandbox's hosts file for its joined ``endpoints`` (only this file
        changes on join and leave)."""
        own = [
            ipaddress.ip_interface(text).ip.compressed
            for e in sorted(endpoints, key=lambda e: e.join_order)
            for text in (e.ipv4_address, e.ipv6_address)
            if text
        ]
        sandbox_files.write_in_place(
            self.sandbox_dir / sandbox.id / "hosts",
            sandbox_files.render_hosts(
                sandbox.hostname, sandbox.domainname, own, sandbox.extra_hosts
            ),
        )

    def delete_sandbox(self, sandbox_id: str) -> None:
        """Leave and delete every endpoint of the sandbox, then remove it. The namespace goes
        first: the kernel then drops all its links at once instead of one veth at a time.

        That relies on nothing else holding the namespace: a caller whose processes may still
        be inside it (a container sharing the sandbox) disconnects the endpoints first."""
        sandbox = self._find_sandbox(sandbox_id)
        with self._sb_lock(sandbox.id):
            joined = self._joined(sandbox.id)
            ops: list[Put | Delete] = [Delete(f"sandbox/{sandbox.id}")]
            ops += [Delete(f"endpoint/{e.id}") for e in joined]
            if sandbox.id in self._published:
                ops.append(Delete(f"ports/{sandbox.id}"))
            self.store.commit(ops)
            with self._lock:
                self._published.pop(sandbox.id, None)
                self._sandboxes.pop(sandbox.id, None)
                for endpoint in joined:
                    self._drop_endpoint(endpoint.id)
            self._emit(Event("sandbox-delete", None, sandbox=replace(sandbox)))
            if not sandbox.use_host_network:
                delete_netns(sandbox.key)
            for endpoint in joined:
                network = self._networks.get(endpoint.network_id)
                if network is None:
                    continue
                with self._net_lock(network.id):
                    driver = self._driver(network.driver)
                    try:
                        driver.revoke_external_connectivity(network.id, endpoint.id)
                        driver.leave(network.id, endpoint.id, namespace_deleted=True)
                        driver.delete_endpoint(network.id, endpoint.id)
                    except CnmError:
                        log.exception("driver cleanup of endpoint %s", endpoint.id[:12])
                    ipam = self.ipams.get(network.ipam_driver)
                    if ipam is not None:
                        for pools, text in (
                            (network.ipv4_pools, endpoint.ipv4_address),
                            (network.ipv6_pools, endpoint.ipv6_address),
                        ):
                            if text:
                                self._release_address(ipam, pools, ipaddress.ip_interface(text))
                self._emit(Event("endpoint-leave", replace(network), endpoint, replace(sandbox)))
            _remove_sandbox_files(self.sandbox_dir / sandbox.id)
        with self._lock:
            self._sandbox_locks.pop(sandbox.id, None)
            self._endpoints_by_sandbox.pop(sandbox.id, None)

    def _joined(self, sandbox_id: str) -> list[Endpoint]:
        with self._lock:
            return sorted(
                (self._endpoints[i] for i in self._endpoints_by_sandbox.get(sandbox_id, ())),
                key=lambda e: e.join_order,
            )

    # ----------------------------------------------------------------- join / leave

    def join(self, endpoint_id: str, sandbox_id: str) -> Endpoint:
        sandbox = self._find_sandbox(sandbox_id)
        with self._sb_lock(sandbox.id):
            endpoint = self._find_endpoint(endpoint_id)
            network = self._find_network(endpoint.network_id)
            with self._net_lock(network.id):
                return replace(self._join(network, endpoint, sandbox))

    def _join(self, network: Network, endpoint: Endpoint, sandbox: Sandbox) -> Endpoint:
        if endpoint.sandbox_id is not None:
            raise Forbidden(f"endpoint {endpoint.name} is already joined to a sandbox")
        joined = self._joined(sandbox.id)
        if any(e.network_id == network.id for e in joined):
            raise Forbidden(f"sandbox is already connected to network {network.name}")
        driver = self._driver(network.driver)
        caps = driver.capabilities()
        exclusive = [
            e
            for e in joined
            if not self._driver(self._networks[e.network_id].driver).capabilities().uses_addresses
        ]
        if joined and (exclusive or not caps.uses_addresses):
            raise Forbidden(
                "container cannot be connected to multiple networks with one of the networks "
                "in private (none) or host mode"
            )
        if network.driver == "host" and not sandbox.use_host_network:
            raise Forbidden("only a sandbox made for the host network can join the host network")
        if sandbox.use_host_network and network.driver != "host":
            raise Forbidden(f"a host-network sandbox cannot join network {network.name}")
        used = {e.ifname for e in joined}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        namespace = None if sandbox.use_host_network else NetNamespace(sandbox.key)
        updated = replace(endpoint, sandbox_id=sandbox.id, ifname=ifname, join_order=sandbox.joins)
        try:
            with transaction() as txn:
                info = driver.join(network.id, endpoint.id, namespace, ifname)
                txn.on_failure("driver join", lambda: driver.leave(network.id, endpoint.id))
                if info.configure_interface and namespace is not None:
                    moved = self._configure_interface(namespace, updated, info, joined)
                    txn.on_failure(
                        "default route",
                        lambda: self._set_default_routes(namespace, joined, moved),
                    )
                    updated.gateway_v4 = str(info.gateway) if info.gateway else None
                    updated.gateway_v6 = str(info.gateway_v6) if info.gateway_v6 else None
                self._place_ports(sandbox.id, [*joined, updated])
                txn.on_failure("published ports", lambda: self._place_ports(sandbox.id, joined))
                new_sandbox = replace(sandbox, joins=sandbox.joins + 1)
                self._write_hosts(new_sandbox, [*joined, updated])
                txn.on_failure("hosts file", lambda: self._write_hosts(sandbox, joined))
                self.store.commit(
                    [
                        Put(f"endpoint/{updated.id}", updated.to_json()),
                        Put(f"sandbox/{sandbox.id}", new_sandbox.to_json()),
                    ]
                )
        finally:
            if namespace is not None:
                namespace.close()
        with self._lock:
            self._put_endpoint(updated)
            self._sandboxes[sandbox.id] = new_sandbox
        self._emit(Event("endpoint-join", replace(network), replace(updated), replace(new_sandbox)))
        return updated

    def _configure_interface(
        self,
        namespace: NetNamespace,
        endpoint: Endpoint,
        info: JoinInfo,
        joined: list[Endpoint],
    ) -> list[int]:
        """Address the joined interface, add its routes, and take the default route where the
        rule makes it the winner; returns the IP versions whose default route moved."""
        addresses = [
            ipaddress.ip_interface(text)
            for text in (endpoint.ipv4_address, endpoint.ipv6_address)
            if text
        ]
        moved: list[int] = []
        with SandboxNetwork(namespace) as sandbox_net:
            index = sandbox_net.configure_interface(endpoint.ifname or "", addresses)
            for route in info.static_routes:
                sandbox_net.links.add_route(route.destination, gateway=route.next_hop, oif=index)
            candidate = replace(
                endpoint,
                gateway_v4=str(info.gateway) if info.gateway else None,
                gateway_v6=str(info.gateway_v6) if info.gateway_v6 else None,
            )
            for version, gateway in ((4, info.gateway), (6, info.gateway_v6)):
                if gateway is None:
                    continue
                winner = _gateway_endpoint([*joined, candidate], version)
                if winner is not None and winner.id == endpoint.id:
                    sandbox_net.set_default_route(gateway, index)
                    moved.append(version)
        return moved

    def _set_default_routes(
        self, namespace: NetNamespace, endpoints: list[Endpoint], versions: list[int]
    ) -> None:
        """Point the default route of each of ``versions`` at the rule's winner among
        ``endpoints``, or remove it when none offers a gateway."""
        if not versions:
            return
        with SandboxNetwork(namespace) as sandbox_net:
            for version in versions:
                winner = _gateway_endpoint(endpoints, version)
                gateway = None
                if winner is not None:
                    gateway = winner.gateway_v4 if version == 4 else winner.gateway_v6
                index = sandbox_net.links.index_of(winner.ifname or "") if winner else None
                if gateway is None or index is None:
                    sandbox_net.remove_default_route(version)
                else:
                    sandbox_net.set_default_route(ipaddress.ip_address(gateway), index)

    def leave(self, endpoint_id: str) -> None:
        endpoint = self._find_endpoint(endpoint_id)
        if endpoint.sandbox_id is None:
            raise Forbidden(f"endpoint {endpoint.name} is not joined to a sandbox")
        sandbox = self._find_sandbox(endpoint.sandbox_id)
        with self._sb_lock(sandbox.id):
            network = self._find_network(endpoint.network_id)
            with self._net_lock(network.id):
                self._leave(network, self._find_endpoint(endpoint_id), sandbox)

    def _leave(self, network: Network, endpoint: Endpoint, sandbox: Sandbox) -> None:
        driver = self._driver(network.driver)
        left = replace(endpoint, sandbox_id=None, ifname=None, gateway_v4=None, gateway_v6=None)
        remaining = [e for e in self._joined(sandbox.id) if e.id != endpoint.id]
        self.store.put(f"endpoint/{endpoint.id}", left.to_json())
        with self._lock:
            self._put_endpoint(left)
        try:
            self._place_ports(sandbox.id, remaining)
        except CnmError:
            log.exception("moving the published ports of sandbox %s", sandbox.id[:12])
        driver.leave(network.id, endpoint.id)
        if not sandbox.use_host_network:
            self._restore_default_routes(sandbox, endpoint, remaining)
        self._write_hosts(sandbox, remaining)
        self._emit(Event("endpoint-leave", replace(network), replace(endpoint), replace(sandbox)))

    def _restore_default_routes(
        self, sandbox: Sandbox, departed: Endpoint, remaining: list[Endpoint]
    ) -> None:
        """After ``departed`` left: where it carried a default route, give it to the next
        winner."""
        versions = [
            version
            for version in (4, 6)
            if (winner := _gateway_endpoint([*remaining, departed], version)) is not None
            and winner.id == departed.id
        ]
        namespace = NetNamespace(sandbox.key)
        try:
            self._set_default_routes(namespace, remaining, versions)
        finally:
            namespace.close()

    def connect(
        self, network_ref: str, sandbox_id: str, options: EndpointOptions | None = None
    ) -> Endpoint:
        """Create an endpoint on the network and join it to the sandbox, as one operation."""
        sandbox = self._find_sandbox(sandbox_id)
        network = self._find_network(network_ref)
        with self._sb_lock(sandbox.id), self._net_lock(network.id):
            endpoint = self._create_endpoint(network, options or EndpointOptions(), persist=False)
            try:
                return replace(self._join(network, endpoint, self._find_sandbox(sandbox.id)))
            except BaseException:
                self._delete_endpoint(network, endpoint)
                raise

    def disconnect(self, network_ref: str, sandbox_id: str) -> None:
        """Leave the sandbox's endpoint on the network and delete it."""
        sandbox = self._find_sandbox(sandbox_id)
        network = self._find_network(network_ref)
        with self._sb_lock(sandbox.id), self._net_lock(network.id):
            endpoint = next(
                (e for e in self._joined(sandbox.id) if e.network_id == network.id), None
            )
            if endpoint is None:
                raise NotFound(
                    f"sandbox {sandbox.id[:12]} is not connected to network {network.name}"
                )
            self._leave(network, endpoint, self._find_sandbox(sandbox.id))
            self._delete_endpoint(network, self._find_endpoint(endpoint.id))

    def rename_endpoints(self, sandbox_id: str, name: str) -> None:
        """Give every endpoint joined to the sandbox a new name (a container's endpoints carry
        the container's name, and so do its DNS records), in one store commit."""
        sandbox = self._find_sandbox(sandbox_id)
        with self._sb_lock(sandbox.id), ExitStack() as locks:
            joined = self._joined(sandbox.id)
            for network_id in sorted({e.network_id for e in joined}):
                locks.enter_context(self._net_lock(network_id))
            with self._lock:
                for endpoint in joined:
                    holder = self._endpoint_names.get((endpoint.network_id, name))
                    if holder is not None and holder != endpoint.id:
                        network = self._networks[endpoint.network_id]
                        raise Conflict(
                            f"endpoint with name {name} already exists in network {network.name}"
                        )
            renamed = [replace(e, name=name) for e in joined]
            self.store.commit([Put(f"endpoint/{e.id}", e.to_json()) for e in renamed])
            with self._lock:
                for endpoint in renamed:
                    self._put_endpoint(endpoint)
            for endpoint in renamed:
                network = self._find_network(endpoint.network_id)
                self._emit(
                    Event("endpoint-rename", replace(network), replace(endpoint), replace(sandbox))
                )

    # ----------------------------------------------------------------- published ports

    def publish(self, sandbox_id: str, requests: list[PortRequest]) -> list[PortMapping]:
        """Publish ports for the sandbox, replacing those it had, on its gateway endpoint; they
        are bound when it has one (the mappings returned), else when one joins. An error
        leaves the sandbox's earlier ports as they were."""
        sandbox = self._find_sandbox(sandbox_id)
        with self._sb_lock(sandbox.id):
            joined = self._joined(sandbox.id)
            if requests and _ports_endpoint(joined) is None:
                for endpoint in joined:
                    network = self._networks[endpoint.network_id]
                    if network.internal:
                        raise InvalidParameter(
                            f"ports cannot be published on internal network {network.name}"
                        )
            previous = self._published.get(sandbox.id)
            owner = previous.owner if previous else None
            self._published[sandbox.id] = _Published(list(requests), owner)
            try:
                self._place_ports(sandbox.id, joined, force=True)
            except BaseException:
                if previous is None:
                    self._published.pop(sandbox.id, None)
                else:
                    self._published[sandbox.id] = replace(previous, owner=None, mappings=[])
                    self._place_ports(sandbox.id, joined)
                raise
            return list(self._published[sandbox.id].mappings)

    def published(self, sandbox_id: str) -> list[PortMapping]:
        """The sandbox's ports as bound now."""
        entry = self._published.get(sandbox_id)
        return list(entry.mappings) if entry else []

    def _place_ports(self, sandbox_id: str, endpoints: list[Endpoint], force: bool = False) -> None:
        """Put the sandbox's published ports on the gateway endpoint among ``endpoints``,
        moving them from where they were (with ``force`` even if that is the same endpoint)."""
        entry = self._published.get(sandbox_id)
        if entry is None:
            return
        winner = _ports_endpoint(endpoints)
        owner = (winner.network_id, winner.id) if winner is not None else None
        if owner == entry.owner and not force:
            return
        if entry.owner is not None:
            network_id, endpoint_id = entry.owner
            gone = self._networks.get(network_id)
            if gone is not None:
                self._driver(gone.driver).revoke_external_connectivity(network_id, endpoint_id)
            entry = self._published[sandbox_id] = replace(entry, owner=None, mappings=[])
        mappings: list[PortMapping] = []
        if owner is not None:
            network = self._networks[owner[0]]
            driver = self._driver(network.driver)
            mappings = driver.program_external_connectivity(*owner, entry.requests)
        requests = [m.as_request() for m in mappings] or entry.requests
        placed = _Published(requests, owner, mappings)
        try:
            self.store.put(f"ports/{sandbox_id}", placed.to_json())
        except BaseException:
            if owner is not None:
                self._driver(self._networks[owner[0]].driver).revoke_external_connectivity(*owner)
            raise
        self._published[sandbox_id] = placed

    def _restore_ports(self) -> None:
        """Bind each restored sandbox's ports again, on the endpoint that had them."""
        stale: list[Put | Delete] = []
        for entry in self.store.list("ports/"):
            sandbox_id = entry.key.removeprefix("ports/")
            if sandbox_id not in self._sandboxes:
                stale.append(Delete(entry.key))
                continue
            published = _Published.from_json(entry.value)
            self._published[sandbox_id] = replace(published, owner=None, mappings=[])
            try:
                self._place_ports(sandbox_id, self._joined(sandbox_id))
            except CnmError as err:
                log.error("cannot publish the ports of sandbox %s again: %s", sandbox_id[:12], err)
        if stale:
            self.store.commit(stale)

    # ----------------------------------------------------------------- restore

    def _restore(self) -> None:
        """Load the records, drop those whose kernel objects vanished, remove orphaned kernel
        objects, replay IPAM allocations and let each driver reconcile its own objects."""
        networks = {
            n.id: n for n in map(Network.from_json, (e.value for e in self.store.list("network/")))
        }
        endpoints = {
            e.id: e
            for e in map(Endpoint.from_json, (e.value for e in self.store.list("endpoint/")))
        }
        sandboxes = {
            s.id: s for s in map(Sandbox.from_json, (e.value for e in self.store.list("sandbox/")))
        }
        stale: list[Put | Delete] = []
        for sandbox in list(sandboxes.values()):
            if not sandbox.use_host_network and not is_netns_mount(sandbox.key):
                log.warning("sandbox %s lost its namespace; dropping it", sandbox.id[:12])
                stale.append(Delete(f"sandbox/{sandbox.id}"))
                del sandboxes[sandbox.id]
        for endpoint in list(endpoints.values()):
            orphaned = endpoint.network_id not in networks or (
                endpoint.sandbox_id is not None and endpoint.sandbox_id not in sandboxes
            )
            if orphaned:
                stale.append(Delete(f"endpoint/{endpoint.id}"))
                del endpoints[endpoint.id]
        if stale:
            self.store.commit(stale)
        for path in self.netns_dir.iterdir():
            if path.name not in sandboxes and path.name != HOST_NAMESPACE_KEY:
                log.warning("removing orphaned namespace %s", path)
                delete_netns(path)
        for path in self.sandbox_dir.iterdir():
            if path.name not in sandboxes:
                _remove_tree(path)
        for network in networks.values():
            self._replay_ipam(
                network, [e for e in endpoints.values() if e.network_id == network.id]
            )
        for name, driver in self.drivers.items():
            driver.restore(
                [self._network_spec(n) for n in networks.values() if n.driver == name],
                [
                    self._endpoint_spec(e, joined=e.sandbox_id is not None)
                    for e in endpoints.values()
                    if networks[e.network_id].driver == name
                ],
            )
        with self._lock:
            self._networks = networks
            self._endpoints = {}
            for endpoint in endpoints.values():
                self._put_endpoint(endpoint)
            self._sandboxes = sandboxes
        self._restore_ports()
        log.info(
            "restored networks=%d endpoints=%d sandboxes=%d",
            len(networks),
            len(endpoints),
            len(sandboxes),
        )

    def _replay_ipam(self, network: Network, endpoints: list[Endpoint]) -> None:
        ipam = self.ipams.get(network.ipam_driver)
        if ipam is None:
            log.error("network %s uses unknown IPAM driver %s", network.name, network.ipam_driver)
            return
        for pools, v6 in ((network.ipv4_pools, False), (network.ipv6_pools, True)):
            for pool in pools:
                ipam.request_pool(LOCAL_ADDRESS_SPACE, pool.subnet, pool.ip_range, {}, v6)
                if pool.gateway:
                    ipam.request_address(pool.pool_id, ipaddress.ip_interface(pool.gateway).ip, {})
                for address in pool.aux_addresses.values():
                    ipam.request_address(pool.pool_id, ipaddress.ip_address(address), {})
        for endpoint in endpoints:
            for pools, text in (
                (network.ipv4_pools, endpoint.ipv4_address),
                (network.ipv6_pools, endpoint.ipv6_address),
            ):
                if not text:
                    continue
                address = ipaddress.ip_interface(text)
                for pool in pools:
                    if address.ip in ipaddress.ip_network(pool.subnet):
                        ipam.request_address(pool.pool_id, address.ip, {})


def _gateway_endpoint(endpoints: list[Endpoint], version: int) -> Endpoint | None:
    """The default-route rule: highest priority, then earliest join."""
    candidates = [e for e in endpoints if (e.gateway_v4 if version == 4 else e.gateway_v6)]
    if not candidates:
        return None
    return min(candidates, key=lambda e: (-e.gateway_priority, e.join_order))


def _ports_endpoint(endpoints: list[Endpoint]) -> Endpoint | None:
    """Where published ports live: IPv4's default-route endpoint, else IPv6's."""
    return _gateway_endpoint(endpoints, 4) or _gateway_endpoint(endpoints, 6)


def _remove_sandbox_files(path: Path) -> None:
    """Remove a sandbox's file directory: three known files, so no directory scan."""
    for name in ("hosts", "resolv.conf", "hostname"):
        (path / name).unlink(missing_ok=True)
    try:
        path.rmdir()
    except OSError:
        _remove_tree(path)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
