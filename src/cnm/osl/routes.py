"""Route lookups, read-only: what the kernel of a namespace would do with a packet to an
address (``ip route get``), for tools that explain a path (``cnm explain``).

RTM_GETROUTE with a destination asks the kernel's own FIB lookup, so policy routing, local
addresses and on-link prefixes are all answered as a real packet would see them: ``local``
means the namespace itself owns the address (the packet goes up its stack), ``unicast`` names
the output device and, when the destination is not on-link, the next hop.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from cnm.osl.namespace import NetNamespace

RTN_UNICAST = 1
RTN_LOCAL = 2
RTN_BROADCAST = 3
UNREACHABLE = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EINVAL, errno.EACCES)


@dataclass(frozen=True)
class RouteLookup:
    kind: str  # "local", "unicast", "broadcast" or "unreachable"
    device: str = ""  # the output device ("lo" for local)
    gateway: str | None = None  # the next hop, when the destination is not on-link
    source: str | None = None  # the source address the kernel would choose


def lookup_route(namespace: NetNamespace, destination: str) -> RouteLookup:
    """The kernel's answer in ``namespace`` for a packet to ``destination``."""
    with namespace.entered():
        ipr = IPRoute()
    try:
        try:
            (msg,) = ipr.route("get", dst=destination)[:1]
        except NetlinkError as err:
            if err.code in UNREACHABLE:
                return RouteLookup("unreachable")
            raise
        index = msg.get_attr("RTA_OIF")
        device = ""
        if index is not None:
            links = ipr.link("get", index=index)
            device = links[0].get_attr("IFLA_IFNAME") if links else ""
        kind = {RTN_LOCAL: "local", RTN_UNICAST: "unicast", RTN_BROADCAST: "broadcast"}.get(
            msg["type"], "unreachable"
        )
        return RouteLookup(kind, device, msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_PREFSRC"))
    finally:
        ipr.close()
