"""The overlay driver: networks that span hosts, on VXLAN (RFC 7348) with static forwarding.

Kernel objects per network and per host, only while the host has a joined endpoint on the
network (made on the first local join, removed after the last leave):

    <exec-root>/overlay-netns/<network id>   the network's own namespace, holding
        br0        bridge carrying the network's gateway address(es), the same on every host;
                   MTU 1450 by default
        vxlan0     vxlan id <VNI> local <advertise address> dstport 4789 nolearning proxy, a
                   port of br0 (its UDP socket is the host's: cnm/osl/vxlan.py)
        veth...    one port per joined endpoint (``veth`` + 11 hex of the endpoint id), its
                   peer born in the sandbox
        uplink     the inner end of the uplink, fe80::2
    ov-<first 12 hex of the network id>      in the host: the uplink's host end, fe80::1; the
                                             network's subnets are routed into it

``br0``, ``vxlan0`` and ``ov-<id>`` are tagged with IFLA_IFALIAS ``cnm:overlay:<network id>``.
``create_network`` and ``delete_network`` run on every host of the cluster, so they make
nothing in the kernel: a host with no container on a network carries none of it.

Why a namespace per network, as Docker's overlay: there its bridge's frames skip br_netfilter
(cnm/osl/uplink.py), which otherwise costs every frame between hosts a pass through netfilter
and conntrack in the host. Frames between a network's containers, local or remote, are never
seen by the host's hooks; the host sees only the tunnel's UDP packets, as it would for a
hand-built VXLAN pair.

Why an uplink and not docker_gwbridge: the namespace routes between its bridge and the host,
so the uplink's host end stands for the network in the host as a bridge network's bridge
does. It is reported to the firewall seam as the network's interface: egress masqueraded,
ports published, isolation from other overlays and from bridge networks and anti-spoofing
exactly as for a bridge network. A container has one interface, with its gateway on br0.
An internal network has no uplink: nothing leaves its namespace, and the host cannot reach its
containers (as in Docker, where an internal overlay has no docker_gwbridge leg).

Why nothing is flooded between hosts: each remote endpoint (``add_peer``) gets a permanent FDB
entry (its MAC -> its host's VTEP) and a permanent neighbour entry (its addresses -> its MAC)
on the VXLAN device. With ``proxy`` the device answers ARP and IPv6 neighbour solicitations
from those entries and drops the rest; with no all-zeros FDB entry broadcast and unknown
unicast frames go nowhere; ``nolearning`` ignores what arrives (cnm/osl/vxlan.py). No
l2miss/l3miss callouts: the state is pushed before it is needed, never pulled.

Why one gateway address on every host works: ARP for it never crosses hosts, so every
container resolves it to its own host's bridge, and its traffic beyond the network leaves
through the host it runs on. The bridge is given a fixed MAC, so the gateway's MAC never
changes as ports come and go. The host itself reaches the containers it runs, not those of
other hosts on the network (their replies go to their own host's uplink) -- as in Docker,
where the host has no address on an overlay at all.

Why an endpoint's MAC is derived from its IPv4 address (02:42 and the address, as Docker's
overlay does): the global IPAM hands a freed address out again, and a container that cached
the old holder's MAC (in its own neighbour table, which no peer entry here reaches) keeps
reaching the new holder.

Why the tag differs from the bridge driver's ``cnm:net:``: that driver's ``restore`` deletes
every link tagged ``cnm:net:`` it has no record of. ``restore`` here removes the namespaces and
tagged host links of networks with no joined endpoint on this host, and those an earlier
layout left (a bridge or VXLAN device tagged ``cnm:overlay:`` in the host itself).

VNIs are allocated once, cluster-wide, through the controller's ``IdAllocator`` (from 4096, as
Docker does, to the configured upper bound); a user may name one with ``-o
com.docker.network.driver.overlay.vxlanid_list=N`` (one VNI per network: cnm puts every subnet
of a network on one bridge). Every host reads the VNI from that option.

Peers are remembered per network whether or not the devices exist, even before the network
itself is known here; they are programmed when the devices are made, and their entries go
with the devices. ``add_peer`` is idempotent (every write is a replace). ``sync_peers`` sets a
network's peers to exactly a given list and sweeps kernel entries no peer names (entries an
earlier run left on devices ``restore`` adopted).

The kernel's neighbour tables get room for the permanent entries (cnm/osl/neighbour_table.py:
the gc thresholds are raised, never lowered, when the entries approach them).

``--opt encrypted`` is refused at create with what the kernel lacks (cnm/osl/ipsec.py); the
design is in docs/overlay-encryption.md.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnm.driverapi import (
    Capability,
    EndpointInfo,
    EndpointSpec,
    IdAllocator,
    JoinInfo,
    NetworkDriver,
    NetworkSpec,
    Peer,
    Scope,
    mac_from_ip,
    random_mac,
)
from cnm.drivers.bridging import (
    BRIDGE_NAME_OPTION,
    OPT_MTU,
    Attachment,
    BridgedEndpoint,
    TaggedLinks,
    attach,
    detach,
    endpoint_addresses,
    host_veth_name,
    join_info,
    make_bridge,
    network_rules,
    parse_mtu,
    publish_endpoint,
    report_network,
    revoke_endpoint,
)
from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound, Unavailable
from cnm.firewall.api import EndpointRules, Firewall
from cnm.model import PortMapping, PortRequest
from cnm.osl import ipsec
from cnm.osl.links import HostNetwork, NamespaceNetwork
from cnm.osl.namespace import NetNamespace, create_netns, delete_netns, is_netns_mount
from cnm.osl.neighbour_table import NeighbourTableRoom
from cnm.osl.uplink import (
    UPLINK,
    bridge_netfilter_off,
    connect_uplink,
    prepare_router,
    route_uplink,
)
from cnm.osl.vxlan import (
    MAX_VNI,
    VXLAN_OVERHEAD,
    VXLAN_PORT,
    create_vxlan,
    forwarding_entries,
    neighbour_entries,
    remove_forwarding,
    remove_neighbour,
    set_forwarding,
    set_neighbour,
    vxlan_settings,
)
from cnm.portmap.mapper import PortMapper

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

OPT_VNI = "com.docker.network.driver.overlay.vxlanid_list"
OPT_ENCRYPTED = "encrypted"
KNOWN_OPTIONS = (OPT_VNI, OPT_MTU, OPT_ENCRYPTED)
FIRST_VNI = 4096  # Docker's first automatic VNI; lower ones only when asked for by name
DEFAULT_MTU = 1500 - VXLAN_OVERHEAD
IPV6_MIN_MTU = 1280  # RFC 8200 section 5
NETWORK_ALIAS = "cnm:overlay:"
VNI_KIND = "vxlan"  # the IdAllocator's name for VNIs
CLUSTER_STORE_NEEDED = (
    "overlay networks need a cluster store: start the daemon with "
    "--cluster-store etcd://HOST:2379 --cluster-advertise IP"
)
ENCRYPTION_DESIGN = "docs/overlay-encryption.md"


BRIDGE = "br0"  # in the network's namespace
VXLAN = "vxlan0"  # in the network's namespace
NAMESPACE_OPTION = "com.cnm.overlay.namespace"  # network_info's key for the namespace's path


def uplink_name(network_id: str) -> str:
    """The host end of the network's uplink: what the host and its firewall see of it."""
    return "ov-" + network_id[:12]


def parse_vni(value: str) -> int:
    """A VNI named by ``com.docker.network.driver.overlay.vxlanid_list``: one number in
    1-16777215."""
    if "," in value:
        raise InvalidParameter(
            f"invalid {OPT_VNI} {value!r}: cnm gives an overlay network one VNI, not one per subnet"
        )
    try:
        vni = int(value)
    except ValueError:
        raise InvalidParameter(f"invalid VNI {value!r}: not a number") from None
    if not 1 <= vni <= MAX_VNI:
        raise InvalidParameter(f"invalid VNI {vni}: must be between 1 and {MAX_VNI}")
    return vni


def encryption_refusal() -> str:
    """Why ``--opt encrypted`` cannot be honoured here."""
    missing = ipsec.esp_missing()
    if missing:
        return (
            "encrypted overlay networks need IPsec ESP in the kernel, and this kernel lacks it ("
            + ", ".join(missing)
            + f"); the design is in {ENCRYPTION_DESIGN}"
        )
    return f"cnm does not encrypt overlay networks yet; the design is in {ENCRYPTION_DESIGN}"


def _addresses(peer: Peer) -> tuple[IPAddress, ...]:
    return tuple(a.ip for a in (peer.address, peer.address_v6) if a is not None)


def _mac(peer: Peer) -> str:
    return peer.mac_address.lower()


@dataclass
class _Devices:
    net: NamespaceNetwork  # the network's namespace
    bridge: int  # in it
    vxlan: int  # in it


@dataclass
class _OverlayNetwork:
    spec: NetworkSpec
    vni: int
    mtu: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    devices: _Devices | None = None  # None: no joined endpoint on this host
    joined: set[str] = field(default_factory=set)
    peers: dict[str, Peer] = field(default_factory=dict)  # change through set_peer/pop_peer
    addresses: dict[int, int] = field(default_factory=lambda: {4: 0, 6: 0})  # of peers, by IP

    def set_peer(self, peer: Peer) -> Peer | None:
        """Remember ``peer``; the one it replaces, if any."""
        old = self.pop_peer(peer.endpoint_id)
        self.peers[peer.endpoint_id] = peer
        for address in _addresses(peer):
            self.addresses[address.version] += 1
        return old

    def pop_peer(self, endpoint_id: str) -> Peer | None:
        old = self.peers.pop(endpoint_id, None)
        for address in _addresses(old) if old is not None else ():
            self.addresses[address.version] -= 1
        return old

    @property
    def uplink(self) -> str:
        return uplink_name(self.spec.network_id)

    @property
    def firewall_name(self) -> str | None:
        """The name the firewall knows the network by, if it has a way out."""
        return None if self.spec.internal else self.uplink


def _subnets(spec: NetworkSpec) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [data.pool for data in (*spec.ipv4, *spec.ipv6)]


def _open_namespace(path: Path) -> NamespaceNetwork:
    namespace = NetNamespace(path)
    try:
        with namespace.entered():
            return NamespaceNetwork()
    finally:
        namespace.close()


class OverlayDriver(NetworkDriver):
    """``advertise_address`` is this host's underlay address (``--cluster-advertise``), the
    local VTEP; without it (no cluster store) the driver refuses every network. Automatic VNIs
    run from 4096 to ``max_vni``. Networks' namespaces are bind-mounted in ``namespace_dir``."""

    name = "overlay"

    def __init__(
        self,
        host: HostNetwork,
        firewall: Firewall,
        ports: PortMapper,
        *,
        namespace_dir: Path,
        advertise_address: IPAddress | None = None,
        max_vni: int = MAX_VNI,
        default_host_ip: str = "0.0.0.0",
    ) -> None:
        if not FIRST_VNI <= max_vni <= MAX_VNI:
            raise InvalidParameter(
                f"invalid VNI upper bound {max_vni}: must be between {FIRST_VNI} and {MAX_VNI}"
            )
        self.host = host
        self.firewall = firewall
        self.ports = ports
        self.namespace_dir = namespace_dir
        self.advertise_address = advertise_address
        self.max_vni = max_vni
        self.default_host_ip = default_host_ip
        self._room = NeighbourTableRoom(host)
        self._networks: dict[str, _OverlayNetwork] = {}
        self._endpoints: dict[str, BridgedEndpoint] = {}
        self._pending_peers: dict[str, dict[str, Peer]] = {}  # for networks not known yet
        self._lock = threading.Lock()  # guards the three dictionaries above
        self._reported: set[str] = set()  # uplinks the firewall was told of (network.lock)

    # ----------------------------------------------------------------- configuration

    def configure(self, config: Mapping[str, Any]) -> None:
        if config:
            raise InvalidParameter(
                f"the overlay driver takes no driver-wide options, got {sorted(config)}"
            )

    def capabilities(self) -> Capability:
        return Capability(Scope.GLOBAL, Scope.GLOBAL)

    def _local_vtep(self) -> IPAddress:
        if self.advertise_address is None:
            raise Forbidden(CLUSTER_STORE_NEEDED)
        return self.advertise_address

    def validate_network_options(self, options: Mapping[str, str]) -> None:
        self._local_vtep()
        unknown = sorted(set(options) - set(KNOWN_OPTIONS))
        if unknown:
            raise InvalidParameter(
                f"unknown option(s) for the overlay driver: {', '.join(unknown)} "
                f"(it takes {', '.join(KNOWN_OPTIONS)})"
            )
        if OPT_ENCRYPTED in options:
            raise InvalidParameter(encryption_refusal())
        if OPT_MTU in options:
            parse_mtu(options[OPT_MTU])
        if OPT_VNI in options:
            parse_vni(options[OPT_VNI])

    @staticmethod
    def _mtu(spec: NetworkSpec) -> int:
        return parse_mtu(spec.options[OPT_MTU]) if OPT_MTU in spec.options else DEFAULT_MTU

    # ----------------------------------------------------------------- cluster-wide

    def allocate_network(self, spec: NetworkSpec, ids: IdAllocator) -> Mapping[str, str]:
        self.validate_network_options(spec.options)
        if spec.enable_ipv6 and self._mtu(spec) < IPV6_MIN_MTU:
            raise InvalidParameter(
                f"invalid MTU {self._mtu(spec)}: an IPv6 network needs at least {IPV6_MIN_MTU}"
            )
        if OPT_VNI in spec.options:
            vni = parse_vni(spec.options[OPT_VNI])
            try:
                ids.allocate(VNI_KIND, vni, vni)
            except Unavailable:
                raise Conflict(f"VNI {vni} is already used by another overlay network") from None
            return {OPT_VNI: str(vni)}
        try:
            vni = ids.allocate(VNI_KIND, FIRST_VNI, self.max_vni)
        except Unavailable as err:
            raise Unavailable(
                f"no free VNI between {FIRST_VNI} and {self.max_vni} for a new overlay network "
                f"({err})"
            ) from None
        return {OPT_VNI: str(vni)}

    def free_network(self, spec: NetworkSpec, ids: IdAllocator) -> None:
        if OPT_VNI in spec.options:
            ids.release(VNI_KIND, parse_vni(spec.options[OPT_VNI]))

    # ----------------------------------------------------------------- networks

    def create_network(self, spec: NetworkSpec) -> None:
        """Learn of a network (on every host of the cluster); no kernel object is made.
        Learning of a known network again changes nothing."""
        self._local_vtep()
        if OPT_VNI not in spec.options:
            raise InvalidParameter(
                f"overlay network {spec.name} has no VNI ({OPT_VNI}): it was not allocated"
            )
        network = _OverlayNetwork(spec, parse_vni(spec.options[OPT_VNI]), self._mtu(spec))
        with self._lock:
            if spec.network_id in self._networks:
                return
            for peer in self._pending_peers.pop(spec.network_id, {}).values():
                network.set_peer(peer)
            self._networks[spec.network_id] = network

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            network = self._networks.pop(network_id, None)
            self._pending_peers.pop(network_id, None)
        if network is None:
            return
        with network.lock:
            if network.devices is not None:
                self._remove_devices(network)

    def _network(self, network_id: str) -> _OverlayNetwork:
        with self._lock:
            network = self._networks.get(network_id)
        if network is None:
            raise NotFound(f"overlay network {network_id[:12]} not found")
        return network

    def network_info(self, network_id: str) -> Mapping[str, str]:
        with self._lock:
            network = self._networks.get(network_id)
        if network is None:
            return {}
        return {
            OPT_VNI: str(network.vni),
            BRIDGE_NAME_OPTION: network.uplink,
            NAMESPACE_OPTION: str(self._namespace_path(network_id)),
        }

    def _namespace_path(self, network_id: str) -> Path:
        return self.namespace_dir / network_id

    # ----------------------------------------------------------------- devices

    def _make_devices(self, network: _OverlayNetwork) -> None:
        """The namespace of ``network`` on this host with its bridge, VXLAN device and uplink,
        reported to the firewall, with every known peer programmed; on failure nothing is
        left."""
        self._local_vtep()  # no advertise address: refused before anything is made
        spec = network.spec
        path = self._namespace_path(spec.network_id)
        if path.exists() or self.host.links.index_of(network.uplink) is not None:
            self.host.drain_deletions()  # a last leave's namespace, on its way out
            self._teardown(path, None, spec.network_id)  # or what a killed daemon left
        alias = NETWORK_ALIAS + spec.network_id
        create_netns(path).close()
        net: NamespaceNetwork | None = None
        reported = False
        try:
            net = _open_namespace(path)
            prepare_router(net, ipv6=spec.enable_ipv6)
            bridge = make_bridge(net, BRIDGE, spec, mtu=network.mtu, alias=alias, mac=random_mac())
            vxlan = self._make_vxlan(network, net, bridge)
            if network.firewall_name is not None:
                self._connect_uplink(network, net)
                self._report(network)
                reported = True
            for peer in network.peers.values():
                self._program(net, vxlan, peer)
        except Exception:
            if reported:
                self._unreport(network)
            self._teardown(path, net, spec.network_id)
            raise
        network.devices = _Devices(net, bridge, vxlan)
        self._make_room()

    def _make_vxlan(self, network: _OverlayNetwork, net: NamespaceNetwork, bridge: int) -> int:
        return create_vxlan(
            self.host,
            net,
            VXLAN,
            vni=network.vni,
            local=self._local_vtep(),
            mtu=network.mtu,
            alias=NETWORK_ALIAS + network.spec.network_id,
            master=bridge,
            ipv6=network.spec.enable_ipv6,
        )

    def _connect_uplink(self, network: _OverlayNetwork, net: NamespaceNetwork) -> None:
        connect_uplink(
            self.host,
            net,
            network.uplink,
            alias=NETWORK_ALIAS + network.spec.network_id,
            mtu=network.mtu,
            subnets=_subnets(network.spec),
            egress=True,
        )

    def _remove_devices(self, network: _OverlayNetwork) -> None:
        devices, network.devices = network.devices, None
        if devices is None:
            return
        path = self._namespace_path(network.spec.network_id)
        try:
            self._unreport(network)
        finally:
            self.host.later(
                lambda: self._teardown(path, devices.net, network.spec.network_id),
                f"removing the namespace of overlay network {network.spec.name}",
            )

    def _report(self, network: _OverlayNetwork) -> None:
        """Tell the firewall of the network's uplink, unless it was told already (a restore
        run again on a running daemon adopts what it reported before)."""
        assert network.firewall_name is not None
        if network.firewall_name in self._reported:
            return
        rules = network_rules(network.firewall_name, network.spec)
        report_network(self.host, self.firewall, rules, network.spec.enable_ipv6)
        self._reported.add(network.firewall_name)

    def _unreport(self, network: _OverlayNetwork) -> None:
        """Take the network's uplink back from the firewall (nothing if it was never told)."""
        self._reported.discard(network.uplink)
        self.firewall.remove_network(network.uplink)

    def _teardown(self, path: Path, net: NamespaceNetwork | None, network_id: str) -> None:
        """Remove a network's uplink (if it carries the network's tag), then its VXLAN device,
        then its namespace with everything else in it. The VXLAN device is deleted rather than
        left to the namespace: until it is gone it holds its VNI on the host's UDP socket, and
        the kernel frees a namespace only later, in a work queue."""
        uplink = self.host.links.details(uplink_name(network_id))
        if uplink is not None and uplink.alias == NETWORK_ALIAS + network_id:
            self.host.links.delete(uplink.index)
        if net is None and is_netns_mount(path):
            net = _open_namespace(path)
        if net is not None:
            try:
                vxlan = net.links.index_of(VXLAN)
                if vxlan is not None:
                    net.links.delete(vxlan)
            finally:
                net.close()
        delete_netns(path)

    # ----------------------------------------------------------------- endpoints

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        self._network(spec.network_id)
        derived = mac_from_ip(spec.address.ip) if spec.address is not None else None
        mac = (spec.mac_address or derived or random_mac()).lower()
        with self._lock:
            self._endpoints[spec.endpoint_id] = BridgedEndpoint(
                spec.network_id, mac, endpoint_addresses(spec)
            )
        return EndpointInfo(mac_address=mac)

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            self._endpoints.pop(endpoint_id, None)

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None, ifname: str
    ) -> JoinInfo:
        if sandbox_key is None:
            raise InvalidParameter("the overlay driver needs a sandbox namespace to join")
        network = self._network(network_id)
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id[:12]} not found on overlay {network.spec.name}")
        with network.lock:
            made = network.devices is None
            if made:
                self._make_devices(network)
            assert network.devices is not None
            if not made:
                bridge_netfilter_off(network.devices.net)  # br_netfilter may be new since
            try:
                attach(
                    network.devices.net,
                    self.firewall,
                    network.firewall_name,
                    network.devices.bridge,
                    Attachment(
                        endpoint_id,
                        ifname,
                        sandbox_key,
                        endpoint.mac,
                        endpoint.addresses,
                        network.mtu,
                        network.spec.enable_ipv6,
                    ),
                )
            except Exception:
                if made:
                    self._remove_devices(network)
                raise
            network.joined.add(endpoint_id)
        endpoint.joined = True
        return join_info(network.spec, network.mtu)

    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is not None:
            endpoint.joined = False
        with self._lock:
            network = self._networks.get(network_id)
        if network is None:
            self.firewall.remove_endpoint(host_veth_name(endpoint_id))
            return
        with network.lock:
            if network.devices is not None:
                detach(
                    network.devices.net,
                    self.firewall,
                    endpoint_id,
                    namespace_deleted=namespace_deleted,
                )
            else:
                self.firewall.remove_endpoint(host_veth_name(endpoint_id))
            network.joined.discard(endpoint_id)
            if not network.joined:
                self._remove_devices(network)

    def endpoint_info(self, network_id: str, endpoint_id: str) -> Mapping[str, str]:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None or not endpoint.joined:
            return {}
        return {"host_interface": host_veth_name(endpoint_id)}

    # ----------------------------------------------------------------- published ports

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, ports: Sequence[PortRequest]
    ) -> list[PortMapping]:
        network = self._network(network_id)
        return publish_endpoint(
            self.ports,
            self.firewall,
            endpoint_id,
            self._endpoints.get(endpoint_id),
            network.uplink,
            ports,
            self.default_host_ip,
            joined_to=network.spec.name,
            internal_network=network.spec.name if network.spec.internal else None,
        )

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:
        revoke_endpoint(self.ports, self.firewall, self._endpoints.get(endpoint_id))

    # ----------------------------------------------------------------- peers

    def add_peer(self, network_id: str, peer: Peer) -> None:
        if peer.vtep == self.advertise_address:
            log.debug("peer %s is on this host; not programmed", peer.endpoint_id[:12])
            return
        with self._lock:
            network = self._networks.get(network_id)
            if network is None:
                self._pending_peers.setdefault(network_id, {})[peer.endpoint_id] = peer
                return
        with network.lock:
            old = network.set_peer(peer)
            if network.devices is None:
                return
            if old is not None and old != peer:
                self._unprogram(network, old)
            self._program(network.devices.net, network.devices.vxlan, peer)
        self._make_room()

    def remove_peer(self, network_id: str, peer: Peer) -> None:
        with self._lock:
            network = self._networks.get(network_id)
            if network is None:
                self._pending_peers.get(network_id, {}).pop(peer.endpoint_id, None)
                return
        with network.lock:
            known = network.pop_peer(peer.endpoint_id)
            if network.devices is not None:
                self._unprogram(network, known or peer)

    def sync_peers(self, network_id: str, peers: Sequence[Peer]) -> None:
        """Make ``peers`` the network's only peers: add the new, remove the others, and sweep
        FDB and neighbour entries that none of them names (left by an earlier run on devices
        ``restore`` adopted). Call it after listing the network's endpoints in the store."""
        wanted = {p.endpoint_id: p for p in peers if p.vtep != self.advertise_address}
        network = self._network(network_id)
        with network.lock:
            for endpoint_id in [e for e in network.peers if e not in wanted]:
                gone = network.pop_peer(endpoint_id)
                if gone is not None and network.devices is not None:
                    self._unprogram(network, gone)
            for peer in wanted.values():
                old = network.set_peer(peer)
                if network.devices is not None and old is not None and old != peer:
                    self._unprogram(network, old)
            if network.devices is not None:
                net, vxlan = network.devices.net, network.devices.vxlan
                for peer in wanted.values():
                    self._program(net, vxlan, peer)
                macs = {_mac(p) for p in wanted.values()}
                addresses = {a for p in wanted.values() for a in _addresses(p)}
                for entry in forwarding_entries(net, vxlan):
                    if entry.mac.lower() not in macs:
                        remove_forwarding(net, vxlan, entry.mac)
                for neighbour in neighbour_entries(net, vxlan):
                    if neighbour.address not in addresses:
                        remove_neighbour(net, vxlan, neighbour.address)
        self._make_room()

    @staticmethod
    def _program(net: NamespaceNetwork, vxlan: int, peer: Peer) -> None:
        set_forwarding(net, vxlan, _mac(peer), peer.vtep)
        for address in _addresses(peer):
            set_neighbour(net, vxlan, address, _mac(peer))

    def _unprogram(self, network: _OverlayNetwork, peer: Peer) -> None:
        """Remove the entries of ``peer`` (no longer among ``network.peers``); an entry another
        peer still needs is written for that one instead."""
        assert network.devices is not None
        net, vxlan = network.devices.net, network.devices.vxlan
        others = list(network.peers.values())
        holder = next((p for p in others if _mac(p) == _mac(peer)), None)
        if holder is None:
            remove_forwarding(net, vxlan, _mac(peer))
        else:
            set_forwarding(net, vxlan, _mac(holder), holder.vtep)
        for address in _addresses(peer):
            holder = next((p for p in others if address in _addresses(p)), None)
            if holder is None:
                remove_neighbour(net, vxlan, address)
            else:
                set_neighbour(net, vxlan, address, _mac(holder))

    def _make_room(self) -> None:
        """Neighbour-table room for every permanent entry programmed, per family."""
        with self._lock:
            networks = list(self._networks.values())
        counts = {4: 0, 6: 0}
        for network in networks:
            if network.devices is not None:
                for version, count in network.addresses.items():
                    counts[version] += count
        for version, count in counts.items():
            self._room.ensure(version, count)

    def close(self) -> None:
        """Close the handles on the networks' namespaces (their sockets and descriptors)."""
        self.host.drain_deletions()
        with self._lock:
            networks = list(self._networks.values())
        for network in networks:
            with network.lock:
                if network.devices is not None:
                    network.devices.net.close()
                    network.devices = None

    # ----------------------------------------------------------------- restore

    def restore(self, networks: list[NetworkSpec], endpoints: list[EndpointSpec]) -> None:
        """Adopt the namespaces of networks with joined endpoints here (remaking what is
        missing or no longer matches), remove those of other networks and every tagged link
        of the host no record names. A network without a valid VNI, or any network when this
        host has no advertise address, is logged and left out (its namespace goes), as are its
        endpoints: records from the cluster store never stop a daemon's start. FDB and
        neighbour entries in adopted namespaces stay until ``remove_peer`` or ``sync_peers``
        says otherwise, so containers keep reaching other hosts while the cluster store is
        away."""
        if networks and self.advertise_address is None:
            log.error("overlay networks cannot work without a cluster advertise address; "
                      "their namespaces on this host are removed")  # fmt: skip
            networks = []
        self.close()  # a restore again (the cluster store's history was compacted) adopts anew
        for spec in networks:
            try:
                vni = parse_vni(spec.options.get(OPT_VNI, ""))
            except InvalidParameter:
                log.error("overlay network %s has no valid VNI; not restored", spec.name)
                continue
            self._networks[spec.network_id] = _OverlayNetwork(spec, vni, self._mtu(spec))
        for endpoint in endpoints:
            if endpoint.network_id not in self._networks:
                log.error(
                    "endpoint %s names an overlay network not restored here; skipped",
                    endpoint.endpoint_id[:12],
                )
                continue
            self._endpoints[endpoint.endpoint_id] = BridgedEndpoint(
                endpoint.network_id,
                (endpoint.mac_address or random_mac()).lower(),
                endpoint_addresses(endpoint),
                joined=endpoint.joined,
            )
            if endpoint.joined:
                self._networks[endpoint.network_id].joined.add(endpoint.endpoint_id)
        joined = {i: n for i, n in self._networks.items() if n.joined}
        if self.namespace_dir.is_dir():
            for path in self.namespace_dir.iterdir():
                if path.name not in joined:
                    log.info("removing the namespace of overlay network %s", path.name[:12])
                    self._teardown(path, None, path.name)
        scan = TaggedLinks.scan(self.host, NETWORK_ALIAS)
        for link in scan.stray_veths(set()):  # ports of an earlier layout's bridges
            self.host.links.delete(link.index)
        for link in scan.links:
            network_id = scan.tagged.get(link.index)
            if network_id is None:
                continue
            network = joined.get(network_id)
            is_uplink = link.kind == "veth" and network is not None and link.name == network.uplink
            if not is_uplink or network is None or network.spec.internal:
                self.host.links.delete(link.index)
        for network in list(joined.values()):
            try:
                self._restore_devices(network)
            except CnmError:
                log.exception(
                    "overlay network %s cannot be restored here; its namespace is removed and "
                    "its containers here lose their interface on it",
                    network.spec.name,
                )
                self._unreport(network)
                self._teardown(self._namespace_path(network.spec.network_id), None,
                               network.spec.network_id)  # fmt: skip
                del joined[network.spec.network_id]
        for endpoint_id, known in self._endpoints.items():
            network = joined.get(known.network_id)
            if known.joined and network is not None and network.firewall_name is not None:
                self.firewall.add_endpoint(
                    EndpointRules(
                        network.firewall_name, host_veth_name(endpoint_id), known.addresses
                    )
                )

    def _restore_devices(self, network: _OverlayNetwork) -> None:
        spec = network.spec
        path = self._namespace_path(spec.network_id)
        if not is_netns_mount(path):
            log.warning(
                "overlay network %s lost its namespace here, and its containers their "
                "interfaces on it; made again",
                spec.name,
            )
            self._make_devices(network)
            return
        net = _open_namespace(path)
        try:
            network.devices = self._adopt(network, net)
        except Exception:
            net.close()
            raise

    def _adopt(self, network: _OverlayNetwork, net: NamespaceNetwork) -> _Devices:
        spec = network.spec
        alias = NETWORK_ALIAS + spec.network_id
        ports = {host_veth_name(e) for e in network.joined}
        bridge = net.links.index_of(BRIDGE)
        if bridge is None:
            log.warning("bridge of overlay network %s was missing; made again", spec.name)
            bridge = make_bridge(net, BRIDGE, spec, mtu=network.mtu, alias=alias, mac=random_mac())
        for link in net.links.summaries():
            if link.kind == "veth" and link.name != UPLINK:
                if link.name not in ports:
                    net.links.delete(link.index)
                elif link.master != bridge:
                    net.links.set_master(link.index, bridge)
        vxlan = net.links.index_of(VXLAN)
        if vxlan is not None and not self._matches(network, net, vxlan):
            log.warning(
                "VXLAN device of overlay network %s no longer matches it; remade", spec.name
            )
            net.links.delete(vxlan)
            vxlan = None
        if vxlan is None:
            vxlan = self._make_vxlan(network, net, bridge)
        else:
            net.links.set_master(vxlan, bridge)  # a bridge made again has no ports yet
            net.links.set_up(vxlan)
        prepare_router(net, ipv6=spec.enable_ipv6)
        if network.firewall_name is None:
            return _Devices(net, bridge, vxlan)
        uplink = self.host.links.index_of(network.uplink)
        inner = net.links.index_of(UPLINK)
        if uplink is not None and inner is not None:
            route_uplink(self.host, net, uplink, inner, subnets=_subnets(spec), egress=True)
        else:
            for found, where in ((uplink, self.host), (inner, net)):
                if found is not None:
                    where.links.delete(found)
            self._connect_uplink(network, net)
        self._report(network)
        return _Devices(net, bridge, vxlan)

    def _matches(self, network: _OverlayNetwork, net: NamespaceNetwork, vxlan: int) -> bool:
        settings = vxlan_settings(net, vxlan)
        return settings is not None and (
            settings.vni,
            settings.local,
            settings.port,
            settings.learning,
            settings.proxy,
            settings.mtu,
        ) == (network.vni, self.advertise_address, VXLAN_PORT, False, True, network.mtu)
