"""What an overlay's containers reach beyond their network, through the host they run on: one
gateway address on every host, egress masqueraded to each host's own address, ports published
on the container's host only (and through its 127.0.0.1), the host reaching the containers it
runs through the network's uplink, isolation from other overlays and bridge networks, and
nothing at all for internal overlays. The "outside" is one more simulated host on the
underlay."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cnm.drivers.overlay import BRIDGE, VXLAN, uplink_name
from cnm.model import PortRequest
from tests.support.cluster import SimulatedCluster

from .hosts import (
    PYTHON,
    Box,
    MemoryIds,
    OverlayHost,
    TcpServer,
    introduce,
    network_spec,
    overlay_pair,
    overlay_spec,
    tcp_answer,
)

Hosts = Callable[[int], list[OverlayHost]]

BROADCAST = r"""
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    for _ in range(3):
        sock.sendto(b"anyone?", (sys.argv[1], 9))
"""


def gateway_mac(box: Box) -> str:
    """The MAC the sandbox resolved its gateway to (after traffic through it)."""
    neighbours = json.loads(box.run("ip", "-j", "neigh", "show", "dev", "eth0"))
    (entry,) = [n for n in neighbours if n["dst"] == str(box.info.gateway)]
    return str(entry["lladdr"])


def bridge_mac(host: OverlayHost, network_id: str) -> str:
    return str(host.network_links(network_id)[BRIDGE]["address"])


def test_one_gateway_on_every_host_and_egress_masqueraded_through_its_own_host(
    make_hosts: Hosts, cluster: SimulatedCluster, ids: MemoryIds
) -> None:
    h1, h2, spec, a, b = overlay_pair(make_hosts, ids)
    outside = cluster.add_host()
    assert a.info.gateway == b.info.gateway
    for host in (h1, h2):
        host.sim.check_underlay_route(outside.address)

    server = TcpServer(outside.netns, "outside", 8000)
    try:
        assert a.tcp(outside.address, 8000) == f"outside {h1.sim.address}"
        assert b.tcp(outside.address, 8000) == f"outside {h2.sim.address}"
    finally:
        server.close()
    assert gateway_mac(a) == bridge_mac(h1, spec.network_id)
    assert gateway_mac(b) == bridge_mac(h2, spec.network_id)
    assert bridge_mac(h1, spec.network_id) != bridge_mac(h2, spec.network_id)


def test_nothing_is_flooded_between_hosts(make_hosts: Hosts, ids: MemoryIds) -> None:
    _, h2, spec, a, b = overlay_pair(make_hosts, ids)

    def received() -> int:
        command = ("ip", "-s", "-j", "link", "show", "dev", VXLAN)
        (link,) = json.loads(h2.network_run(spec.network_id, *command))
        return int(link["stats64"]["rx"]["packets"])

    before = received()
    assert not a.ping("10.100.0.77", tries=1)  # ARP for an address no peer has
    a.run("busybox", "arping", "-c", "2", "-w", "1", "-I", "eth0", "-b", b.ip, check=False)
    a.check_route("10.100.0.255")
    a.run(PYTHON, "-c", BROADCAST, "10.100.0.255")
    time.sleep(0.2)
    assert received() == before, "a broadcast or an unanswered ARP reached the other host"
    assert a.ping(b.ip)
    assert received() > before


def test_published_ports_are_on_the_host_the_container_runs_on(
    make_hosts: Hosts, cluster: SimulatedCluster, ids: MemoryIds
) -> None:
    h1, h2 = make_hosts(2)
    outside = cluster.add_host()
    spec = overlay_spec(ids, h1.driver, "ov1")
    for host in (h1, h2):
        host.driver.create_network(spec)
    a = h1.attach(spec, "10.100.0.2/24", name="a")
    server = TcpServer(a.key, "a", 80)
    try:
        (mapping,) = h1.driver.program_external_connectivity(
            spec.network_id, a.endpoint_id, [PortRequest("tcp", 80, "0.0.0.0", 8080)]
        )
        assert (str(mapping.host_ip), mapping.host_port, str(mapping.container_ip)) == (
            "0.0.0.0",
            8080,
            a.ip,
        )
        outside.check_underlay_route(h1.sim.address)
        outside.check_underlay_route(h2.sim.address)
        assert tcp_answer(outside.netns, h1.sim.address, 8080) == f"a {outside.address}"
        assert tcp_answer(outside.netns, h2.sim.address, 8080, timeout=1) is None
        # From the host itself, through 127.0.0.1 (masqueraded to the host's address).
        assert tcp_answer(h1.sim.netns, "127.0.0.1", 8080) == f"a {h1.sim.address}"
        h1.driver.revoke_external_connectivity(spec.network_id, a.endpoint_id)
        assert tcp_answer(outside.netns, h1.sim.address, 8080, timeout=1) is None
    finally:
        server.close()


def test_the_host_reaches_the_containers_it_runs_through_the_uplink(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    h1, _, spec, a, b = overlay_pair(make_hosts, ids)
    assert h1.sim.route_to(a.ip)["dev"] == uplink_name(spec.network_id)
    server = TcpServer(a.key, "a", 7000)
    try:
        # The host speaks from its own address (the uplink has no IPv4 one).
        assert tcp_answer(h1.sim.netns, a.ip, 7000) == f"a {h1.sim.address}"
    finally:
        server.close()
    assert h1.sim.route_to(b.ip)["dev"] == uplink_name(spec.network_id)
    server = TcpServer(b.key, "b", 7000)
    try:
        # b answers through its own host's uplink: the host reaches only its own containers.
        assert tcp_answer(h1.sim.netns, b.ip, 7000, timeout=1) is None
    finally:
        server.close()


def test_ipv6_leaves_and_enters_through_the_uplink(
    make_hosts: Hosts, cluster: SimulatedCluster, ids: MemoryIds
) -> None:
    """An IPv6 overlay's traffic beyond the network takes the uplink too: egress masqueraded to
    the host's own address, and the host reaching its container, over IPv6 link-local next
    hops. The underlay gets IPv6 addresses of the test's own for this."""
    (h1,) = make_hosts(1)
    outside = cluster.add_host()
    for sim, address in ((h1.sim, "fd77::1"), (outside, "fd77::9")):
        sim.run("ip", "addr", "add", f"{address}/64", "dev", "eth0", "nodad")
    spec = overlay_spec(ids, h1.driver, "ov6", subnet_v6="fd00:100::/64")
    h1.driver.create_network(spec)
    a = h1.attach(spec, "10.100.0.2/24", address_v6="fd00:100::2/64", name="a")
    uplink = uplink_name(spec.network_id)
    assert f"via fe80::2 dev {uplink}" in h1.run("ip", "-6", "route", "show", "fd00:100::/64")
    assert h1.sim.route_to(a.ip6)["dev"] == uplink
    assert outside.route_to("fd77::1")["dev"] == "eth0"
    server = TcpServer(outside.netns, "outside", 8000, bind="::")
    try:
        assert a.tcp("fd77::9", 8000) == "outside fd77::1"
    finally:
        server.close()
    server = TcpServer(a.key, "a", 7000, bind="::")
    try:
        assert tcp_answer(h1.sim.netns, a.ip6, 7000) == "a fd77::1"
    finally:
        server.close()


def test_overlays_are_isolated_from_each_other_and_from_bridge_networks(
    make_hosts: Hosts, cluster: SimulatedCluster, ids: MemoryIds
) -> None:
    h1, h2 = make_hosts(2)
    outside = cluster.add_host()
    ov1 = overlay_spec(ids, h1.driver, "ov1", "10.100.0.0/24")
    ov2 = overlay_spec(ids, h1.driver, "ov2", "10.101.0.0/24")
    bridged = network_spec("br", "10.200.0.0/24")
    for host in (h1, h2):
        host.driver.create_network(ov1)
        host.driver.create_network(ov2)
    h1.bridge_driver.create_network(bridged)
    a = h1.attach(ov1, "10.100.0.2/24", name="a")
    b = h2.attach(ov1, "10.100.0.3/24", name="b")
    other = h1.attach(ov2, "10.101.0.2/24", name="other")
    plain = h1.attach(bridged, "10.200.0.2/24", name="plain", driver=h1.bridge_driver)
    introduce(a, b)
    servers = [TcpServer(box.key, name, 7000) for box, name in ((a, "a"), (b, "b"))]
    servers.append(TcpServer(plain.key, "plain", 7000))
    try:
        blocked = [(intruder, target) for intruder in (other, plain) for target in (a, b)]
        blocked.append((a, plain))
        with ThreadPoolExecutor(len(blocked)) as pool:
            answers = list(pool.map(lambda pair: pair[0].tcp(pair[1].ip, 7000, 1), blocked))
        assert answers == [None] * len(blocked)
        # A host routing straight to a container address gets nothing either.
        outside.run("ip", "route", "add", "10.100.0.0/24", "via", h1.sim.address)
        assert outside.route_to(a.ip)["dev"] == "eth0"
        assert tcp_answer(outside.netns, a.ip, 7000, timeout=1) is None
        assert a.tcp(b.ip, 7000) == f"b {a.ip}"
    finally:
        for server in servers:
            server.close()


def test_an_internal_overlay_crosses_hosts_but_goes_nowhere_else(
    make_hosts: Hosts, cluster: SimulatedCluster, ids: MemoryIds
) -> None:
    h1, _, spec, a, b = overlay_pair(make_hosts, ids, internal=True)
    outside = cluster.add_host()
    assert a.info.gateway is None and a.info.gateway_v6 is None
    assert "default" not in a.run("ip", "route")
    assert a.ping(b.ip)
    assert uplink_name(spec.network_id) not in h1.links(), "no way out of its namespace"
    assert h1.run("ip", "route", "show", "10.100.0.0/24") == ""
    # Even with a route the test adds, the network's namespace has nowhere to send it.
    a.run("ip", "route", "add", "default", "via", "10.100.0.1")
    server = TcpServer(outside.netns, "outside", 8000)
    try:
        assert a.tcp(outside.address, 8000, timeout=1) is None
    finally:
        server.close()
