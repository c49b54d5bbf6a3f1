"""Port publishing in every -p form, reached from another host, from the host (its addresses,
127.0.0.1 and ::1) and from containers through the host address, including a container
reaching its own published port; loopback-published ports stay the host's own."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from cnm.controller import Controller
from cnm.model import PortRequest
from cnm.portmap.spec import parse_publish, requests_from_config

from .probes import EchoServer, answer, nft_list, probe, run
from .topology import Controllers, Outside, address, ipv6_settled, network, sandbox_on

HTTP = 80


def requests_for(
    *specs: str, exposed: Sequence[str] = (), publish_all: bool = False
) -> list[PortRequest]:
    """``-p`` flags as the CLI, the API and the runtime turn them into requests."""
    bindings: dict[str, list[tuple[str, str]]] = {}
    for spec in specs:
        for key, host_ip, host_port in parse_publish(spec):
            bindings.setdefault(key, []).append((host_ip, host_port))
    return requests_from_config(bindings, exposed, publish_all)


def bound(mappings: Sequence[object]) -> set[str]:
    return {f"{m.host_ip}:{m.host_port}->{m.container_port}/{m.proto}" for m in mappings}  # type: ignore[attr-defined]


def test_one_port_reached_every_way(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "web", "10.61.0.0/24")
    network(controller, "other", "10.62.0.0/24")
    web = sandbox_on(controller, "web", "web")
    peer = sandbox_on(controller, "peer", "web")
    stranger = sandbox_on(controller, "stranger", "other")
    servers(web.key, "web", [HTTP])
    mappings = controller.publish(web.id, requests_for("8080:80", "8080:80/udp"))
    assert bound(mappings) == {
        "0.0.0.0:8080->80/tcp",
        ":::8080->80/tcp",
        "0.0.0.0:8080->80/udp",
        ":::8080->80/udp",
    }
    gateway = "10.61.0.1"
    expected = {
        # another host: translated by the kernel, the container sees the real client
        (outside.path, outside.host4): f"web {outside.ip4}",
        (outside.path, outside.host6): f"web {gateway}",  # relayed: the container has no IPv6
        # the host, through its addresses and loopback
        (None, outside.host4): f"web {outside.host4}",
        (None, gateway): f"web {gateway}",
        (None, "127.0.0.1"): f"web {gateway}",
        (None, "::1"): f"web {gateway}",
        # containers through the host address (hairpin), the publisher itself included
        (peer.key, outside.host4): f"web {gateway}",
        (web.key, outside.host4): f"web {gateway}",
        (web.key, gateway): f"web {gateway}",
        (stranger.key, outside.host4): "web 10.61.0.1",
    }
    jobs: dict[str | None, list[tuple[str, str, int]]] = {}
    for (ns, host), _ in expected.items():
        jobs.setdefault(ns, []).extend([("tcp", host, 8080), ("udp", host, 8080)])
    for ns, targets in jobs.items():
        answers = probe(ns, targets)
        for proto, host, _ in targets:
            assert answers[(proto, host, 8080)] == expected[(ns, host)], (ns, proto, host)


def test_ranges_host_ranges_ephemeral_and_publish_all(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "many", "10.63.0.0/24")
    box = sandbox_on(controller, "box", "many")
    servers(box.key, "box", [80, 81, 82, 53])
    run("sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40009")
    taken = socket.socket()
    taken.bind(("0.0.0.0", 8090))
    taken.listen(1)
    try:
        mappings = controller.publish(
            box.id,
            requests_for(
                "8000-8002:80-82",  # one to one
                "8090-8092:80",  # the first free of a host range (8090 is taken)
                "81",  # ephemeral
                "127.0.0.1::82/udp",  # ephemeral on one address
                exposed=["53/udp", "80/tcp"],
                publish_all=True,  # -P: exposed ports not bound above
            ),
        )
    finally:
        taken.close()
    by_port: dict[tuple[int, str], set[int]] = {}
    for m in mappings:
        by_port.setdefault((m.container_port, m.proto), set()).add(m.host_port)
    assert by_port[(80, "tcp")] == {8000, 8091}
    assert by_port[(82, "tcp")] == {8002}
    ephemeral = [by_port[(81, "tcp")] - {8001}, by_port[(82, "udp")], by_port[(53, "udp")]]
    for ports in ephemeral:
        (port,) = ports  # 0.0.0.0 and :: got the same port
        assert 40000 <= port <= 40009
    targets = [("tcp", outside.host4, p) for p in (8000, 8001, 8002, 8091)]
    targets += [("tcp", outside.host4, p) for p in by_port[(81, "tcp")]]
    targets += [("udp", outside.host4, p) for p in by_port[(53, "udp")]]
    assert all(probe(outside.path, targets).values())
    (local,) = by_port[(82, "udp")]
    assert answer(None, "udp", "127.0.0.1", local) == "box 10.63.0.1"


def test_host_addresses_ipv6_and_defaults(
    make_controller: Controllers,
    outside: Outside,
    servers: Callable[..., EchoServer],
) -> None:
    controller = make_controller(default_host_ip="127.0.0.1")  # the daemon's --ip
    network(controller, "v4", "10.64.0.0/24")
    network(controller, "v6", "10.65.0.0/24", ipv6_subnet="fd65::/64")
    network(
        controller,
        "lo-only",
        "10.66.0.0/24",
        options={"com.docker.network.bridge.host_binding_ipv4": outside.host4},
    )
    v4, v6 = sandbox_on(controller, "v4", "v4"), sandbox_on(controller, "v6", "v6")
    third = sandbox_on(controller, "third", "lo-only")
    for box, name in ((v4, "v4"), (v6, "v6"), (third, "third")):
        servers(box.key, name, [HTTP])
    assert bound(
        controller.publish(
            v4.id,
            requests_for(
                f"{outside.host4}:8081:80", "[::1]:8083:80", "[fd99::1]:8084:80", "8085:80"
            ),
        )
    ) == {
        f"{outside.host4}:8081->80/tcp",
        "::1:8083->80/tcp",
        "fd99::1:8084->80/tcp",
        "127.0.0.1:8085->80/tcp",  # the daemon's default host address
    }
    assert bound(controller.publish(v6.id, requests_for("0.0.0.0:8086:80", "[::]:8086:80"))) == {
        "0.0.0.0:8086->80/tcp",
        ":::8086->80/tcp",
    }
    assert bound(controller.publish(third.id, requests_for("8087:80"))) == {
        f"{outside.host4}:8087->80/tcp"  # the network's host_binding_ipv4 wins
    }
    ipv6_settled(controller, "v6")
    from_outside = probe(
        outside.path,
        [
            ("tcp", outside.host4, 8081),
            ("tcp", outside.host6, 8084),  # IPv6 to an IPv4-only container: relayed
            ("tcp", outside.host4, 8085),  # published on 127.0.0.1 only
            ("tcp", outside.host6, 8086),  # IPv6 to an IPv6 container: kernel DNAT
            ("tcp", outside.host4, 8087),
        ],
    )
    assert from_outside == {
        ("tcp", outside.host4, 8081): f"v4 {outside.ip4}",
        ("tcp", outside.host6, 8084): "v4 10.64.0.1",
        ("tcp", outside.host4, 8085): None,
        ("tcp", outside.host6, 8086): f"v6 {outside.ip6}",
        ("tcp", outside.host4, 8087): f"third {outside.ip4}",
    }
    from_host = probe(
        None,
        [
            ("tcp", "127.0.0.1", 8081),  # bound to the host address only
            ("tcp", "::1", 8083),
            ("tcp", "127.0.0.1", 8083),
            ("tcp", "127.0.0.1", 8085),
            ("tcp", "::1", 8086),
        ],
    )
    assert from_host == {
        ("tcp", "127.0.0.1", 8081): None,
        ("tcp", "::1", 8083): "v4 10.64.0.1",
        ("tcp", "127.0.0.1", 8083): None,
        ("tcp", "127.0.0.1", 8085): "v4 10.64.0.1",
        ("tcp", "::1", 8086): "v6 fd65::1",
    }


def _forge(netns: str, match: str, rewrite: str) -> None:
    """Rewrite the destination of matching packets as they leave ``netns`` (a test namespace):
    a neighbour sending to the host's MAC with a destination it chose."""
    run(
        "nft",
        "-f",
        "-",
        netns=netns,
        stdin=f"""
        table ip forge {{
            chain out {{
                type filter hook output priority 0; policy accept;
                {match} ip daddr set {rewrite}
            }}
        }}
    """,
    )


def test_loopback_publishing_stays_the_hosts_own(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "quiet", "10.67.0.0/24")
    network(controller, "nosy", "10.68.0.0/24")
    box = sandbox_on(controller, "box", "quiet")
    nosy = sandbox_on(controller, "nosy", "nosy")
    server = servers(box.key, "box", [HTTP])
    controller.publish(box.id, requests_for("127.0.0.1:8082:80/udp", "8088:80/udp"))
    assert "10.67.0.0" not in run("ip", "route", "show", netns=outside.path)
    assert answer(None, "udp", "127.0.0.1", 8082) == "box 10.67.0.1"
    assert answer(outside.path, "udp", outside.host4, 8082) is None
    assert answer(nosy.key, "udp", outside.host4, 8082) is None
    assert server.seen() == ["udp 10.67.0.1"]
    # A neighbour routing through the host and forging the destination to 127.0.0.1 reaches
    # nothing; the same forgery towards the host address reaches the 0.0.0.0 port (so the
    # forging works).
    run("ip", "route", "add", "198.18.1.0/24", "via", outside.host4, netns=outside.path)
    _forge(outside.path, "ip daddr 198.18.1.1 udp dport 8082", "127.0.0.1")
    _forge(outside.path, "ip daddr 198.18.1.2 udp dport 8088", outside.host4)
    probe(outside.path, [("udp", "198.18.1.1", 8082), ("udp", "198.18.1.2", 8088)], 0.5)
    assert server.seen() == [f"udp {outside.ip4}"]
    # A container forging 127.0.0.1 towards the host (route_localnet is on for its bridge)
    # reaches none of the host's loopback services.
    host_server = servers(None, "host", [9999])
    assert answer(nosy.key, "udp", "10.68.0.1", 9999) == "host 10.68.0.2"
    _forge(nosy.key, "udp dport 9999", "127.0.0.1")
    probe(nosy.key, [("udp", "10.68.0.1", 9999)], 0.5)
    assert host_server.seen() == ["udp 10.68.0.2"]


def test_ports_follow_the_gateway_and_go_with_the_sandbox(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "first", "10.69.0.0/24")
    network(controller, "second", "10.70.0.0/24")
    box = sandbox_on(controller, "box", "first")
    servers(box.key, "box", [HTTP])
    controller.publish(box.id, requests_for("8089:80"))
    assert {str(m.container_ip) for m in controller.published(box.id)} == {"10.69.0.2"}
    from cnm.model import EndpointOptions

    controller.connect("second", box.id, EndpointOptions(gateway_priority=10))
    assert {str(m.container_ip) for m in controller.published(box.id)} == {"10.70.0.2"}
    assert answer(outside.path, "tcp", outside.host4, 8089) == f"box {outside.ip4}"
    controller.disconnect("second", box.id)
    assert {str(m.container_ip) for m in controller.published(box.id)} == {"10.69.0.2"}
    assert address(controller, box, "first") == "10.69.0.2"
    assert answer(outside.path, "tcp", outside.host4, 8089) == f"box {outside.ip4}"
    controller.delete_sandbox(box.id)
    assert answer(None, "tcp", "127.0.0.1", 8089) is None
    assert "8089" not in nft_list("inet")
    with socket.socket() as again:
        again.bind(("0.0.0.0", 8089))  # the host port is free again


def test_ports_on_internal_networks_wait_for_a_gateway(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    """Docker's rule, which Compose relies on (it creates a container on one network and
    connects the others): a sandbox on internal networks only publishes nothing, and its ports
    are bound once a network with a gateway joins, and let go when it leaves."""
    network(controller, "sealed", "10.66.0.0/24", internal=True)
    network(controller, "open", "10.67.0.0/24")
    box = sandbox_on(controller, "box", "sealed")
    servers(box.key, "box", [HTTP])
    assert controller.publish(box.id, requests_for("8090:80")) == []
    assert controller.published(box.id) == []
    assert answer(outside.path, "tcp", outside.host4, 8090) is None
    controller.connect("open", box.id)
    assert bound(controller.published(box.id)) == {"0.0.0.0:8090->80/tcp", ":::8090->80/tcp"}
    assert answer(outside.path, "tcp", outside.host4, 8090) == f"box {outside.ip4}"
    controller.disconnect("open", box.id)
    assert controller.published(box.id) == []
    assert answer(outside.path, "tcp", outside.host4, 8090) is None
