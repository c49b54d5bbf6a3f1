"""A network's own namespace, joined to the host by a routed veth: its uplink.

Why a namespace of its own: an overlay network's bridge carries every frame between its
containers and the VXLAN device. With the br_netfilter module loaded (Docker and Kubernetes
load it), ``net.bridge.bridge-nf-call-iptables`` (and ``-ip6tables``, ``-arptables``) is 1 in
every namespace, and each bridged frame then goes through the inet hooks and conntrack
(net/bridge/br_netfilter_hooks.c): on a 2-CPU machine that cost a fifth of the cross-host TCP
throughput (bench/overlay.py). The settings are per namespace (since Linux 5.3), so a
namespace made for the bridge turns them off for its own bridges and leaves the host's alone.
They are written again whenever a container joins, since the module may be loaded after the
namespace was made (it then sets them to 1 in every namespace).

Why a routed uplink and not Docker's docker_gwbridge (a second interface in every container):
the namespace is a router between its bridge and the host. The host end of the uplink is what
the host and its firewall see of the network: egress leaves through it to be masqueraded,
published ports are led in through it, and isolation and anti-spoofing match on its name, as
on a bridge network's bridge. A container keeps one interface, its gateway on the bridge.

Why IPv6 link-local addresses on the uplink, for both families: every uplink is a link of its
own, so every network can use the same two addresses (fe80::1 on the host end, fe80::2 inside)
and the host claims no IPv4 address for it (an IPv4 link-local one would be answered by ARP on
every interface of the host). IPv4 is routed over them with an IPv6 next hop (RFC 8950; Linux
5.2 on): the host routes each subnet ``via inet6 fe80::2``, the namespace its default ``via
inet6 fe80::1``. The addresses skip duplicate address detection (both ends are made here) and
no other link-local address is generated (``addr_gen_mode`` 1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cnm.errors import CnmError, Conflict
from cnm.osl.links import NamespaceNetwork, write_sysctl

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UPLINK = "uplink"  # the namespace's end of the uplink
HOST_SIDE = ipaddress.IPv6Address("fe80::1")
NAMESPACE_SIDE = ipaddress.IPv6Address("fe80::2")
LINK_LOCAL_PREFIX = 64
BRIDGE_NETFILTER = (
    "bridge-nf-call-iptables",
    "bridge-nf-call-ip6tables",
    "bridge-nf-call-arptables",
)
DEFAULT_ROUTES = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def bridge_netfilter_off(inside: NamespaceNetwork) -> None:
    """Keep the namespace's bridged frames out of netfilter (nothing to do without the
    br_netfilter module: then they never enter it)."""
    with inside.inside():
        for name in BRIDGE_NETFILTER:
            path = Path("/proc/sys/net/bridge", name)
            if path.exists() and path.read_text().strip() != "0":
                path.write_text("0")


def prepare_router(inside: NamespaceNetwork, *, ipv6: bool) -> None:
    """A new namespace made ready to route between its bridge and its uplink: loopback up,
    br_netfilter off, forwarding on (IPv6 forwarding only with ``ipv6``)."""
    bridge_netfilter_off(inside)
    with inside.inside():
        write_sysctl("net.ipv4.ip_forward", "1")
        if ipv6:
            write_sysctl("net.ipv6.conf.all.forwarding", "1")
    inside.links.set_up(1)


def connect_uplink(
    host: NamespaceNetwork,
    inside: NamespaceNetwork,
    name: str,
    *,
    alias: str,
    mtu: int,
    subnets: Sequence[IPNetwork],
    egress: bool,
) -> int:
    """Join ``inside`` to ``host`` by a veth: ``name`` in the host (tagged ``alias``), its peer
    ``uplink`` born inside; both addressed and up, ``subnets`` routed from the host into the
    namespace and, with ``egress``, the namespace's default routes (of the subnets' families)
    out through it. The host end's index; on failure nothing is left."""
    index = host.create_veth(
        name,
        UPLINK,
        inside.namespace,
        master=None,
        mtu=mtu,
        peer_mac=None,
        ipv6=True,
        own_link_local=True,
    )
    try:
        host.tag(index, alias)
        host.links.add_address(index, ipaddress.IPv6Interface(f"{HOST_SIDE}/{LINK_LOCAL_PREFIX}"))
        inner = inside.links.index_of(UPLINK)
        if inner is None:
            raise CnmError(f"the inner end of uplink {name} is missing")
        inside.use_own_link_local(UPLINK)
        address = ipaddress.IPv6Interface(f"{NAMESPACE_SIDE}/{LINK_LOCAL_PREFIX}")
        inside.links.add_address(inner, address)
        inside.links.set_up(inner)
        route_uplink(host, inside, index, inner, subnets=subnets, egress=egress)
    except Exception:
        host.links.delete(index)
        raise
    return index


def route_uplink(
    host: NamespaceNetwork,
    inside: NamespaceNetwork,
    index: int,
    inner: int,
    *,
    subnets: Sequence[IPNetwork],
    egress: bool,
) -> None:
    """(Re)write the uplink's routes (see ``connect_uplink``); writing them again changes
    nothing. A host route to a subnet through any other link is never replaced: that is the
    host's own network (which the cluster's overlap checks keep apart), and the uplink is
    refused."""
    for subnet in subnets:
        through = host.links.route_links(subnet)
        if any(link != index for link in through):
            raise Conflict(
                f"{subnet} is already routed through another interface of this host, so the "
                "overlay network's uplink cannot take it"
            )
        if not through:
            host.links.add_route(subnet, gateway=NAMESPACE_SIDE, oif=index)
    if egress:
        versions = {subnet.version for subnet in subnets}
        for default in DEFAULT_ROUTES:
            if default.version in versions:
                inside.links.add_route(default, gateway=HOST_SIDE, oif=inner, replace=True)
