"""The records of the model: networks, endpoints, sandboxes, published ports.

Plain dataclasses, serialised to JSON in the store. They are the controller's source of truth:
kernel state and IPAM state are rebuilt from them after a restart. Callers outside the
controller get copies and never mutate the controller's own objects.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class PoolRecord:
    """One IPAM pool of a network as granted: the user's request and what IPAM chose."""

    pool_id: str
    subnet: str
    ip_range: str | None = None
    gateway: str | None = None  # "10.10.0.1/24"; None for networks without a gateway
    aux_addresses: dict[str, str] = field(default_factory=dict)
    address_space: str = "LocalDefault"  # the IPAM's local address space when granted


@dataclass
class IpamRequest:
    """A user's IPAM.Config entry (every field optional)."""

    subnet: str | None = None
    ip_range: str | None = None
    gateway: str | None = None
    aux_addresses: dict[str, str] = field(default_factory=dict)


@dataclass
class NetworkRequest:
    name: str
    driver: str = "bridge"
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] | None = None  # None: not given (Docker echoes null)
    ipam_config: list[IpamRequest] = field(default_factory=list)
    scope: str = ""  # "" (the driver's), "local" or "global": must match the driver's


@dataclass
class Network:
    id: str
    name: str
    driver: str
    scope: str
    created: str  # RFC 3339 with nanoseconds, as Docker prints it
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] | None = None  # as given: None when the request had none
    ipv4_pools: list[PoolRecord] = field(default_factory=list)
    ipv6_pools: list[PoolRecord] = field(default_factory=list)
    predefined: bool = False

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Network:
        data = json.loads(raw)
        data["ipv4_pools"] = [_from_dict(PoolRecord, p) for p in data.get("ipv4_pools", [])]
        data["ipv6_pools"] = [_from_dict(PoolRecord, p) for p in data.get("ipv6_pools", [])]
        return _from_dict(cls, data)


@dataclass
class EndpointOptions:
    """Per-endpoint requests (docker run --network-alias / --ip / --ip6 / --mac-address)."""

    name: str | None = None
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    mac_address: str | None = None
    aliases: list[str] = field(default_factory=list)
    gateway_priority: int = 0
    # --link on a user-defined network: alias -> container name, names the embedded DNS
    # answers for this endpoint's sandbox only (Docker's links outside the default bridge).
    links: dict[str, str] = field(default_factory=dict)
    link_local_ips: list[str] = field(default_factory=list)  # put on the interface as well
    driver_options: dict[str, str] = field(default_factory=dict)  # Docker's DriverOpts
    # The interface's name inside the sandbox (CNI_IFNAME); None: the lowest free ethN.
    ifname: str | None = None


@dataclass
class Endpoint:
    id: str
    name: str
    network_id: str
    ipv4_address: str | None = None  # with prefix, "10.10.0.2/24"
    ipv6_address: str | None = None
    mac_address: str | None = None
    requested_ipv4: str | None = None  # a static address asked for (kept across restarts)
    requested_ipv6: str | None = None
    aliases: list[str] = field(default_factory=list)
    gateway_priority: int = 0
    links: dict[str, str] = field(default_factory=dict)  # alias -> container name (--link)
    link_local_ips: list[str] = field(default_factory=list)  # "169.254.1.1", "fe80::1"
    driver_options: dict[str, str] = field(default_factory=dict)
    sandbox_id: str | None = None
    ifname: str | None = None  # "eth0" inside the sandbox once joined
    join_order: int = 0  # the sandbox's join counter when this endpoint joined
    gateway_v4: str | None = None  # the default gateway this endpoint offers once joined
    gateway_v6: str | None = None
    # Endpoints of global-scope networks only: where the endpoint lives and the names its
    # container answers to, for the other hosts of the cluster.
    host: str = ""  # the node id of its host
    vtep: str = ""  # that host's underlay address
    container_id: str = ""
    hostname: str = ""

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Endpoint:
        return _from_dict(cls, json.loads(raw))


@dataclass
class SandboxOptions:
    container_id: str | None = None
    hostname: str | None = None
    domainname: str = ""
    use_host_network: bool = False
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # "name:ip"
    link_hosts: list[str] = field(default_factory=list)  # legacy links: "alias host name:ip"
    # Docker's rule, decided by the runtime: a container whose network mode is a user-defined
    # network asks the embedded resolver (127.0.0.11); others get the host's resolvers.
    embedded_dns: bool = False
    # Adopt the network namespace another runtime made at this path (a CNI container's
    # CNI_NETNS) instead of making one; None: cnm makes the namespace.
    netns_path: str | None = None


@dataclass
class Sandbox:
    id: str
    container_id: str
    key: str  # the network namespace path (Docker's SandboxKey)
    hostname: str
    domainname: str = ""
    use_host_network: bool = False
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    link_hosts: list[str] = field(default_factory=list)  # after extra_hosts, as Docker's
    embedded_dns: bool = False
    joins: int = 0  # endpoints joined so far: the join order of the next one
    # The path of the namespace this sandbox adopted ("" if cnm made its own). ``key`` is then
    # cnm's own bind mount of that namespace: removing it never ends the namespace.
    adopted_from: str = ""

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Sandbox:
        return _from_dict(cls, json.loads(raw))


@dataclass(frozen=True)
class PortRequest:
    """One container port to publish. ``host_ip`` "" means the network's or daemon's default;
    ``host_port`` 0 means any ephemeral port; ``host_port_end`` above ``host_port`` means the
    first free port of that range."""

    proto: str
    container_port: int
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


@dataclass(frozen=True)
class PortMapping:
    """A published port as bound: ``host_ip:host_port`` (0.0.0.0 or :: for every address)
    leads to ``container_ip:container_port``."""

    proto: str
    host_ip: IPAddress
    host_port: int
    container_ip: IPAddress
    container_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "proto": self.proto,
            "host_ip": str(self.host_ip),
            "host_port": self.host_port,
            "container_ip": str(self.container_ip),
            "container_port": self.container_port,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PortMapping:
        return cls(
            proto=data["proto"],
            host_ip=ipaddress.ip_address(data["host_ip"]),
            host_port=int(data["host_port"]),
            container_ip=ipaddress.ip_address(data["container_ip"]),
            container_port=int(data["container_port"]),
        )

    def as_request(self) -> PortRequest:
        """The same binding asked for again (a restart, or a move to another endpoint)."""
        return PortRequest(self.proto, self.container_port, str(self.host_ip), self.host_port)
