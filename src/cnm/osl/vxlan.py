"""VXLAN devices (RFC 7348) and their static forwarding state, over netlink.

Why it looks like this:
* A device is made with ``nolearning`` and ``proxy`` and no default destination (no group, no
  remote, no all-zeros FDB entry). Then the kernel's VXLAN driver (drivers/net/vxlan) sends a
  frame only to the tunnel endpoint a permanent FDB entry names for its destination MAC, drops
  broadcast, multicast and unknown unicast frames (no entry, no default: ``tx_dropped``),
  never learns a MAC from what arrives, and answers every ARP request and IPv6 neighbour
  solicitation it is given from its own neighbour table (``arp_reduce``/``neigh_reduce``),
  consuming the request whether or not it has the answer. Nothing is flooded between hosts and
  nothing is looked up on demand (no l2miss/l3miss callouts).
* FDB entries are written with NLM_F_REPLACE and NTF_SELF (the device's own table, not the
  bridge's above it), neighbour entries with NLM_F_REPLACE and NUD_PERMANENT: writing the same
  entry again changes nothing, and a MAC that moved to another host is re-pointed in one
  message. Deleting one that is gone is not an error.
* A device is made from the host's netlink socket but born in another namespace (the
  network's own, IFLA_NET_NS_FD): the kernel binds its UDP socket in the namespace the request
  came from (vxlan_newlink's source net), so encapsulated packets are routed by the host over
  the underlay while the device, its FDB and its neighbour entries live with the bridge.
* The UDP port is IANA's 4789 (the kernel's default is Linux's historical 8472).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError

from cnm.errors import CnmError
from cnm.osl.links import NamespaceNetwork, netlink_error, write_sysctl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
MAX_VNI = (1 << 24) - 1
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02


@dataclass(frozen=True)
class VxlanSettings:
    """What ``ip -d link`` shows of a VXLAN device, as far as cnm cares."""

    vni: int
    local: IPAddress | None
    port: int
    learning: bool
    proxy: bool
    mtu: int


@dataclass(frozen=True)
class ForwardingEntry:
    """A static FDB entry: frames to ``mac`` go to the tunnel endpoint ``destination``."""

    mac: str
    destination: IPAddress


@dataclass(frozen=True)
class NeighbourEntry:
    """A permanent neighbour entry: ``address`` is at ``mac``."""

    address: IPAddress
    mac: str


def create_vxlan(
    host: NamespaceNetwork,
    inside: NamespaceNetwork,
    name: str,
    *,
    vni: int,
    local: IPAddress,
    mtu: int,
    alias: str,
    master: int,
    ipv6: bool,
) -> int:
    """Make a VXLAN device inside ``inside`` whose tunnel socket is in ``host`` (see the module
    note), tagged with ``alias``, enslave it to the bridge ``master`` there and bring it up;
    with ``ipv6`` False it carries no IPv6 of its own (no link-local address, no MLD or router
    solicitations to drop). On failure nothing is left."""
    spec: dict[str, object] = {
        "ifname": name,
        "kind": "vxlan",
        "vxlan_id": vni,
        "vxlan_port": VXLAN_PORT,
        "vxlan_learning": 0,
        "vxlan_proxy": 1,
        "mtu": mtu,
        "net_ns_fd": inside.namespace.fd,
    }
    spec["vxlan_local6" if local.version == 6 else "vxlan_local"] = str(local)
    try:
        host.links.ipr.link("add", **spec)
    except NetlinkError as err:
        raise netlink_error(err, f"create VXLAN device {name} (VNI {vni})") from err
    index = inside.links.index_of(name)
    if index is None:
        raise CnmError(f"VXLAN device {name} vanished right after creation")
    try:
        inside.tag(index, alias)
        if not ipv6:
            with inside.inside():
                write_sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
        inside.links.set_master(index, master)
        inside.links.set_up(index)
    except Exception:
        inside.links.delete(index)
        raise
    return index


def vxlan_settings(network: NamespaceNetwork, index: int) -> VxlanSettings | None:
    """The settings of the VXLAN device ``index``; None when it is gone or no VXLAN device."""
    try:
        msgs = network.links.ipr.link("get", index=index)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return None
        raise netlink_error(err, f"look up link {index}") from err
    info = msgs[0].get_attr("IFLA_LINKINFO") if msgs else None
    if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
        return None
    data = info.get_attr("IFLA_INFO_DATA")
    local = data.get_attr("IFLA_VXLAN_LOCAL") or data.get_attr("IFLA_VXLAN_LOCAL6")
    return VxlanSettings(
        vni=data.get_attr("IFLA_VXLAN_ID"),
        local=ipaddress.ip_address(local) if local else None,
        port=data.get_attr("IFLA_VXLAN_PORT"),
        learning=bool(data.get_attr("IFLA_VXLAN_LEARNING")),
        proxy=bool(data.get_attr("IFLA_VXLAN_PROXY")),
        mtu=msgs[0].get_attr("IFLA_MTU"),
    )


def set_forwarding(network: NamespaceNetwork, index: int, mac: str, destination: IPAddress) -> None:
    """Send frames for ``mac`` to the tunnel endpoint ``destination`` (replacing any entry
    ``mac`` had)."""
    try:
        network.links.ipr.fdb(
            "replace",
            ifindex=index,
            lladdr=mac,
            dst=str(destination),
            state=NUD_PERMANENT | NUD_NOARP,
            flags=NTF_SELF,
        )
    except NetlinkError as err:
        raise netlink_error(err, f"add FDB entry {mac} -> {destination}") from err


def remove_forwarding(network: NamespaceNetwork, index: int, mac: str) -> None:
    try:
        network.links.ipr.fdb("del", ifindex=index, lladdr=mac, flags=NTF_SELF)
    except NetlinkError as err:
        if err.code not in (errno.ENOENT, errno.ENODEV):
            raise netlink_error(err, f"delete FDB entry {mac}") from err


def forwarding_entries(network: NamespaceNetwork, index: int) -> list[ForwardingEntry]:
    """The device's own permanent FDB entries with a destination (not the bridge's)."""
    found = []
    for msg in network.links.ipr.fdb("dump", ifindex=index):
        if msg["ifindex"] != index or not msg["flags"] & NTF_SELF:
            continue
        destination = msg.get_attr("NDA_DST")
        if msg["state"] & NUD_PERMANENT and destination:
            found.append(
                ForwardingEntry(msg.get_attr("NDA_LLADDR"), ipaddress.ip_address(destination))
            )
    return found


def set_neighbour(network: NamespaceNetwork, index: int, address: IPAddress, mac: str) -> None:
    """Answer ARP / neighbour solicitations for ``address`` with ``mac`` (permanently)."""
    try:
        network.links.ipr.neigh(
            "replace",
            ifindex=index,
            dst=str(address),
            lladdr=mac,
            state=NUD_PERMANENT,
            family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
        )
    except NetlinkError as err:
        raise netlink_error(err, f"add neighbour entry {address} -> {mac}") from err


def remove_neighbour(network: NamespaceNetwork, index: int, address: IPAddress) -> None:
    try:
        network.links.ipr.neigh(
            "del",
            ifindex=index,
            dst=str(address),
            family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
        )
    except NetlinkError as err:
        if err.code not in (errno.ENOENT, errno.ENODEV):
            raise netlink_error(err, f"delete neighbour entry {address}") from err


def neighbour_entries(network: NamespaceNetwork, index: int) -> list[NeighbourEntry]:
    """The permanent neighbour entries on the device, both families."""
    found = []
    for msg in network.links.ipr.neigh("dump", ifindex=index):
        if msg["ifindex"] != index or not msg["state"] & NUD_PERMANENT:
            continue
        address, mac = msg.get_attr("NDA_DST"), msg.get_attr("NDA_LLADDR")
        if address and mac:
            found.append(NeighbourEntry(ipaddress.ip_address(address), mac))
    return found
