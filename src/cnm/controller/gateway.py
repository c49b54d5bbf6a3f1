"""The order of a sandbox's endpoints, and the default-route rule that follows from it.

libnetwork keeps a sandbox's endpoints in one order (sandbox.go's ``epHeap``): endpoints of
internal networks last; then those that offer both an IPv4 and an IPv6 gateway; then the higher
gateway priority; then the network's name. A starting container joins its networks in that
order, so the first gets eth0 (``order_key``; a network joined while it runs gets the next free
ethN). The default route belongs to the first endpoint in that order that offers a gateway, as
Docker's ``getGatewayEndpoint`` has it: connecting a network whose name sorts first moves the
default route to it, and when the winner leaves the next one takes over. IPv4 and IPv6 are
chosen separately (Docker takes both from its one gateway endpoint; as every cnm network has
IPv4, and an endpoint with both gateways sorts first, the two choices agree whenever Docker's
gives an IPv6 route). Published ports live on the IPv4 winner, else the IPv6 one (Docker's
gateway endpoint), and move with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace

from cnm.driverapi import JoinInfo, mac_from_ip
from cnm.model import Endpoint
from cnm.osl.links import sandbox_network

NetworkName = Callable[[str], str]  # a network's name, by its id


def order_key(
    internal: bool, dual_stack: bool, priority: int, network_name: str
) -> tuple[bool, bool, int, str]:
    """libnetwork's order of a sandbox's endpoints: a smaller key comes first."""
    return (internal, not dual_stack, -priority, network_name)


def gateway_endpoint(
    endpoints: list[Endpoint], version: int, network_name: NetworkName
) -> Endpoint | None:
    """The rule's winner for IP ``version``: the first endpoint offering a gateway of that
    version, in the sandbox's order."""
    candidates = [e for e in endpoints if (e.gateway_v4 if version == 4 else e.gateway_v6)]
    if not candidates:
        return None

    def key(e: Endpoint) -> tuple[bool, bool, int, str]:
        dual = bool(e.gateway_v4 and e.gateway_v6)
        return order_key(False, dual, e.gateway_priority, network_name(e.network_id))

    return min(candidates, key=key)


def ports_endpoint(endpoints: list[Endpoint], network_name: NetworkName) -> Endpoint | None:
    """Where published ports live: IPv4's default-route endpoint, else IPv6's."""
    return gateway_endpoint(endpoints, 4, network_name) or gateway_endpoint(
        endpoints, 6, network_name
    )


def _link_local(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """A --link-local-ip with the prefix of its link-local range, as Docker configures it
    (169.254.0.0/16, fe80::/64)."""
    address = ipaddress.ip_address(text)
    return ipaddress.ip_interface(f"{address}/{16 if address.version == 4 else 64}")


def configure_interface(
    sandbox_key: str,
    endpoint: Endpoint,
    info: JoinInfo,
    joined: list[Endpoint],
    network_name: NetworkName,
) -> list[int]:
    """Address the joined interface, add its routes, take the default route where the rule
    makes it the winner, and announce the addresses a neighbour may have cached with another
    MAC (a reused address may come with another one); returns the IP versions whose default
    route moved."""
    addresses = [
        ipaddress.ip_interface(text)
        for text in (endpoint.ipv4_address, endpoint.ipv6_address)
        if text
    ]
    addresses += [_link_local(text) for text in endpoint.link_local_ips]
    moved: list[int] = []
    candidate = replace(
        endpoint,
        gateway_v4=str(info.gateway) if info.gateway else None,
        gateway_v6=str(info.gateway_v6) if info.gateway_v6 else None,
    )
    with sandbox_network(sandbox_key) as sandbox_net:
        index = sandbox_net.configure_interface(endpoint.ifname or "", addresses)
        for route in info.static_routes:
            sandbox_net.links.add_route(route.destination, gateway=route.next_hop, oif=index)
        for version, gateway in ((4, info.gateway), (6, info.gateway_v6)):
            if gateway is None:
                continue
            winner = gateway_endpoint([*joined, candidate], version, network_name)
            if winner is not None and winner.id == endpoint.id:
                sandbox_net.set_default_route(gateway, index)
                moved.append(version)
        stale = [a for a in addresses if _may_be_cached_with_another_mac(a, endpoint.mac_address)]
        sandbox_net.announce(endpoint.ifname or "", index, stale)
    return moved


def _may_be_cached_with_another_mac(
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface, mac: str | None
) -> bool:
    """Whether a neighbour may hold ``address`` with a MAC other than ``mac``: not when the MAC
    is the one derived from that IPv4 address (Docker's rule), which every holder of the address
    has. Announcing only the others keeps the join's sends, and their CPU, off the common path."""
    return not (isinstance(address, ipaddress.IPv4Interface) and mac == mac_from_ip(address.ip))


def set_default_routes(
    sandbox_key: str, endpoints: list[Endpoint], versions: list[int], network_name: NetworkName
) -> None:
    """Point the default route of each of ``versions`` at the rule's winner among
    ``endpoints``, or remove it when none offers a gateway."""
    if not versions:
        return
    with sandbox_network(sandbox_key) as sandbox_net:
        for version in versions:
            winner = gateway_endpoint(endpoints, version, network_name)
            gateway = None
            if winner is not None:
                gateway = winner.gateway_v4 if version == 4 else winner.gateway_v6
            index = sandbox_net.links.index_of(winner.ifname or "") if winner else None
            if gateway is None or index is None:
                sandbox_net.remove_default_route(version)
            else:
                sandbox_net.set_default_route(ipaddress.ip_address(gateway), index)


def hand_over_default_routes(
    sandbox_key: str, departed: Endpoint, remaining: list[Endpoint], network_name: NetworkName
) -> None:
    """After ``departed`` left: where it carried a default route, give it to the next
    winner."""
    versions = [
        version
        for version in (4, 6)
        if (winner := gateway_endpoint([*remaining, departed], version, network_name)) is not None
        and winner.id == departed.id
    ]
    set_default_routes(sandbox_key, remaining, versions, network_name)
