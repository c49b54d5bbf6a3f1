"""The default-route rule (libnetwork's default_gateway.go has the same job).

Among a sandbox's joined endpoints whose network offers a gateway, the one with the highest
gateway priority wins; on a tie, the one that joined first. IPv4 and IPv6 are chosen separately.
When the winner leaves, the next one by the same rule takes over. Published ports live on the
IPv4 winner, else the IPv6 one (Docker's gateway endpoint), and move with it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from cnm.driverapi import JoinInfo
from cnm.model import Endpoint
from cnm.osl.links import sandbox_network


def gateway_endpoint(endpoints: list[Endpoint], version: int) -> Endpoint | None:
    """The rule's winner for IP ``version``: highest priority, then earliest join."""
    candidates = [e for e in endpoints if (e.gateway_v4 if version == 4 else e.gateway_v6)]
    if not candidates:
        return None
    return min(candidates, key=lambda e: (-e.gateway_priority, e.join_order))


def ports_endpoint(endpoints: list[Endpoint]) -> Endpoint | None:
    """Where published ports live: IPv4's default-route endpoint, else IPv6's."""
    return gateway_endpoint(endpoints, 4) or gateway_endpoint(endpoints, 6)


def configure_interface(
    sandbox_key: str, endpoint: Endpoint, info: JoinInfo, joined: list[Endpoint]
) -> list[int]:
    """Address the joined interface, add its routes, take the default route where the rule
    makes it the winner, and announce its addresses (a reused address may come with another
    MAC); returns the IP versions whose default route moved."""
    addresses = [
        ipaddress.ip_interface(text)
        for text in (endpoint.ipv4_address, endpoint.ipv6_address)
        if text
    ]
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
            winner = gateway_endpoint([*joined, candidate], version)
            if winner is not None and winner.id == endpoint.id:
                sandbox_net.set_default_route(gateway, index)
                moved.append(version)
        sandbox_net.announce(endpoint.ifname or "", index, addresses)
    return moved


def set_default_routes(sandbox_key: str, endpoints: list[Endpoint], versions: list[int]) -> None:
    """Point the default route of each of ``versions`` at the rule's winner among
    ``endpoints``, or remove it when none offers a gateway."""
    if not versions:
        return
    with sandbox_network(sandbox_key) as sandbox_net:
        for version in versions:
            winner = gateway_endpoint(endpoints, version)
            gateway = None
            if winner is not None:
                gateway = winner.gateway_v4 if version == 4 else winner.gateway_v6
            index = sandbox_net.links.index_of(winner.ifname or "") if winner else None
            if gateway is None or index is None:
                sandbox_net.remove_default_route(version)
            else:
                sandbox_net.set_default_route(ipaddress.ip_address(gateway), index)


def hand_over_default_routes(
    sandbox_key: str, departed: Endpoint, remaining: list[Endpoint]
) -> None:
    """After ``departed`` left: where it carried a default route, give it to the next
    winner."""
    versions = [
        version
        for version in (4, 6)
        if (winner := gateway_endpoint([*remaining, departed], version)) is not None
        and winner.id == departed.id
    ]
    set_default_routes(sandbox_key, remaining, versions)
