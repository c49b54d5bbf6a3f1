"""The network driver contract.

The calls follow libnetwork's driverapi (the seed's driver.Config, CreateNetwork, DeleteNetwork,
CreateEndpoint, DeleteEndpoint, Join, Leave), with one change that matters for speed: the link
that enters the sandbox is made at ``join`` time, directly inside the sandbox's namespace
(moving an existing link into a namespace costs ~20 ms; creating it there costs ~1 ms).

Division of work. The controller owns IPAM, the store, DNS records and the order of calls; it
hands the driver the addresses it allocated. A driver owns its kernel objects (bridges, host-side
veth ends, VXLAN devices) and touches the kernel only through ``cnm.osl``. In ``join`` the
driver creates the interface named ``ifname`` inside the sandbox; the controller then configures
its addresses and routes from what ``join`` returns. Drivers never touch the store or DNS.

The contract imports only the model's records and the error classes, so a driver written
elsewhere (a remote plugin's proxy, a test double) depends on nothing else of cnm. A remote
plugin (``cnm.drivers.remote``) is one more driver behind it: its ``join`` moves the link the
plugin made into the sandbox and reports the name it got there (``JoinInfo.interface_name``);
its ``create_endpoint`` may report a MAC or address the plugin chose (``EndpointInfo``).

Every call may raise a cnm.errors class. A driver call that fails must leave nothing behind of
its own making; the controller undoes the earlier steps.
"""

from __future__ import annotations

import ipaddress
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from cnm.errors import InvalidParameter
from cnm.model import PortMapping, PortRequest

IPv4Interface = ipaddress.IPv4Interface
IPv6Interface = ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def random_mac() -> str:
    """A MAC for an endpoint nobody gave one: locally administered, unicast, with Docker's
    02:42 prefix (the bridge driver and the controller choose them so)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))


def mac_from_ip(address: ipaddress.IPv4Address) -> str:
    """Docker's MAC for an endpoint with an IPv4 address (netutils.GenerateMACFromIP): 02:42
    and the four bytes, so an address handed out again comes back with the same MAC and the
    neighbour caches of its peers stay right."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


class Scope(StrEnum):
    LOCAL = "local"
    GLOBAL = "global"
    SWARM = "swarm"


@dataclass(frozen=True)
class Capability:
    """``data_scope``: where the driver's network state lives (local store or a global one
    shared by hosts). ``connectivity_scope``: whether endpoints reach across hosts.
    ``uses_addresses``: False for drivers with no interface of their own (host, null): no IPAM,
    and their endpoint must be a sandbox's only one. ``multiple_networks``: False when only the
    predefined network of the driver may exist."""

    data_scope: Scope
    connectivity_scope: Scope
    uses_addresses: bool = True
    multiple_networks: bool = True


@dataclass(frozen=True)
class IpamData:
    """One address pool of a network, as IPAM granted it, in the IPAM's address space."""

    pool: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: IPv4Interface | IPv6Interface | None = None
    aux_addresses: Mapping[str, IPAddress] = field(default_factory=dict)
    address_space: str = "LocalDefault"


@dataclass(frozen=True)
class NetworkSpec:
    network_id: str
    name: str
    options: Mapping[str, str]  # driver options (-o), e.g. com.docker.network.bridge.name
    internal: bool = False
    enable_ipv6: bool = False
    ipv4: tuple[IpamData, ...] = ()
    ipv6: tuple[IpamData, ...] = ()


@dataclass(frozen=True)
class EndpointSpec:
    network_id: str
    endpoint_id: str
    address: IPv4Interface | None = None
    address_v6: IPv6Interface | None = None
    mac_address: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # Only meaningful in ``restore``: whether the endpoint is joined, and if so where (the
    # sandbox's namespace path and the interface's name there), for drivers whose interface
    # lives only inside the sandbox (macvlan) and must find it again to remove it at leave.
    joined: bool = False
    sandbox_key: str | None = None
    ifname: str | None = None


@dataclass(frozen=True)
class EndpointInfo:
    """What ``create_endpoint`` reports back: the MAC it chose (for inspect and DNS), and an
    address it chose where the endpoint had none of that family (a remote plugin may)."""

    mac_address: str | None = None
    address: IPv4Interface | None = None
    address_v6: IPv6Interface | None = None


@dataclass(frozen=True)
class StaticRoute:
    destination: ipaddress.IPv4Network | ipaddress.IPv6Network
    next_hop: IPAddress | None = None  # None: on-link via the joined interface


@dataclass(frozen=True)
class JoinInfo:
    """What ``join`` returns; the controller programs addresses and routes from it.

    ``gateway`` / ``gateway_v6`` are None when the network offers no default route (internal
    networks, the null driver). ``configure_interface`` is False for drivers whose interface is
    not a new link (host, null). ``interface_name`` is the name the interface got inside the
    sandbox when it is not the ``ifname`` asked for (a remote plugin's ``DstPrefix``)."""

    gateway: IPAddress | None = None
    gateway_v6: IPAddress | None = None
    static_routes: tuple[StaticRoute, ...] = ()
    configure_interface: bool = True
    mtu: int | None = None
    interface_name: str | None = None


class IdAllocator(Protocol):
    """Cluster-wide unique numbers, for global-scope drivers (an overlay's VNI): the
    controller backs it with the global store, so the driver itself never touches a store."""

    def allocate(self, kind: str, low: int, high: int) -> int:
        """The lowest free number of ``kind`` in [low, high]; Unavailable when none is."""
        ...

    def release(self, kind: str, value: int) -> None: ...


@dataclass(frozen=True)
class Peer:
    """An endpoint of a global-scope network that lives on another host: where to send its
    frames (the host's tunnel endpoint) and what answers for its addresses."""

    endpoint_id: str
    host: str  # the other host's node id
    vtep: IPAddress  # its underlay address (--cluster-advertise)
    mac_address: str
    address: IPv4Interface | None = None
    address_v6: IPv6Interface | None = None


class NetworkDriver(ABC):
    """A network driver, registered with the controller by ``name``.

    Global-scope drivers (``Capability.data_scope`` GLOBAL) see every network of the cluster:
    ``create_network`` and ``delete_network`` run on every host that learns of the network,
    ``allocate_network``/``free_network`` once, on the host that creates or removes it, and
    ``add_peer``/``remove_peer`` tell them of endpoints on other hosts."""

    name: str

    @abstractmethod
    def configure(self, config: Mapping[str, Any]) -> None:
        """driver.Config: driver-wide configuration given once at registration."""

    @abstractmethod
    def capabilities(self) -> Capability: ...

    def validate_network_options(self, options: Mapping[str, str]) -> None:  # noqa: B027
        """Reject unknown or malformed driver options before any state is made."""

    @abstractmethod
    def create_network(self, spec: NetworkSpec) -> None: ...

    @abstractmethod
    def delete_network(self, network_id: str) -> None: ...

    @abstractmethod
    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo: ...

    @abstractmethod
    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None: ...

    @abstractmethod
    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None, ifname: str
    ) -> JoinInfo:
        """Create the endpoint's interface named ``ifname`` inside the sandbox whose network
        namespace is bind-mounted at ``sandbox_key`` (None: the host namespace, used by the
        host driver). As in libnetwork, the contract hands over a path, not an object of the
        OS layer."""

    @abstractmethod
    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        """Undo ``join``. With ``namespace_deleted`` the sandbox namespace is being deleted and
        the kernel removes its links with it (a veth delete alone waits 40-50 ms for an RCU
        grace period); the driver then only forgets what it knew."""

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, ports: Sequence[PortRequest]
    ) -> list[PortMapping]:
        """Publish the sandbox's ``ports`` on this joined endpoint and return them as bound,
        all or nothing. The controller calls it for the sandbox's gateway endpoint only (the
        one carrying its default route), and moves the ports when that changes."""
        if ports:
            raise InvalidParameter(f"the {self.name} driver cannot publish ports")
        return []

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:  # noqa: B027
        """Undo ``program_external_connectivity`` (nothing to do for an endpoint without
        published ports)."""

    def allocate_network(self, spec: NetworkSpec, ids: IdAllocator) -> Mapping[str, str]:
        """Reserve cluster-wide resources for a new network and return options every host's
        driver then sees in ``NetworkSpec.options`` (libnetwork's NetworkAllocate)."""
        return {}

    def free_network(self, spec: NetworkSpec, ids: IdAllocator) -> None:  # noqa: B027
        """Give back what ``allocate_network`` reserved."""

    def add_peer(self, network_id: str, peer: Peer) -> None:  # noqa: B027
        """An endpoint on another host joined the network (or changed): reach it. Called again
        for a peer already known (after a restart or a reconnection to the store)."""

    def remove_peer(self, network_id: str, peer: Peer) -> None:  # noqa: B027
        """An endpoint on another host is gone, or its host left the cluster."""

    def sync_peers(self, network_id: str, peers: Sequence[Peer]) -> None:
        """The network's peers are exactly ``peers`` (after a restart or a full re-read of
        the cluster's store): forget the others, kernel entries included. By default, each
        is added again."""
        for peer in peers:
            self.add_peer(network_id, peer)

    def network_info(self, network_id: str) -> Mapping[str, str]:
        """Operational data shown in inspect (e.g. the bridge device name)."""
        return {}

    def endpoint_info(self, network_id: str, endpoint_id: str) -> Mapping[str, str]:
        """Operational data of an endpoint (e.g. the host-side veth name)."""
        return {}

    @abstractmethod
    def restore(self, networks: list[NetworkSpec], endpoints: list[EndpointSpec]) -> None:
        """After a daemon restart: adopt the recorded objects, recreate missing network-level
        kernel objects, and remove kernel objects this driver made that are not in the lists."""

    def close(self) -> None:  # noqa: B027
        """The controller is closing: release what the driver holds open (descriptors,
        sockets). Kernel objects stay, for ``restore`` after a restart."""
