"""Egress: masquerading, a fixed SNAT source, no masquerading, internal networks, forged
sources, and nothing reaching a container from outside except through a published port."""

from __future__ import annotations

from collections.abc import Callable

from cnm.controller import Controller

from .probes import EchoServer, answer, probe, run
from .topology import Outside, address, network, sandbox_on

PORT = 9


def test_egress_is_masqueraded_to_the_host_address(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "out", "10.51.0.0/24", ipv6_subnet="fd51::/64")
    box = sandbox_on(controller, "box", "out")
    servers(outside.path, "outside", [PORT])
    answers = probe(
        box.key,
        [("tcp", outside.ip4, PORT), ("udp", outside.ip4, PORT), ("tcp", outside.ip6, PORT)],
    )
    assert answers == {
        ("tcp", outside.ip4, PORT): f"outside {outside.host4}",
        ("udp", outside.ip4, PORT): f"outside {outside.host4}",
        ("tcp", outside.ip6, PORT): f"outside {outside.host6}",
    }


def test_fixed_source_address_and_no_masquerade(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    run("ip", "addr", "add", "198.18.0.9/24", "dev", "vout0")
    network(
        controller, "fixed", "10.52.0.0/24", options={"com.docker.network.host_ipv4": "198.18.0.9"}
    )
    network(
        controller,
        "plain",
        "10.53.0.0/24",
        options={"com.docker.network.bridge.enable_ip_masquerade": "false"},
    )
    fixed, plain = (
        sandbox_on(controller, "fixed", "fixed"),
        sandbox_on(controller, "plain", "plain"),
    )
    run("ip", "route", "add", "10.53.0.0/24", "via", outside.host4, netns=outside.path)
    servers(outside.path, "outside", [PORT])
    assert answer(fixed.key, "tcp", outside.ip4, PORT) == "outside 198.18.0.9"
    assert (
        answer(plain.key, "udp", outside.ip4, PORT)
        == f"outside {address(controller, plain, 'plain')}"
    )


def test_internal_network_has_no_way_out(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "sealed", "10.54.0.0/24", internal=True)
    box = sandbox_on(controller, "box", "sealed")
    servers(outside.path, "outside", [PORT])
    servers(None, "host", [PORT])
    # No default route is given; one added by hand still leads nowhere but the host itself.
    run("ip", "route", "add", "default", "via", "10.54.0.1", netns=box.key)
    answers = probe(
        box.key,
        [("tcp", outside.ip4, PORT), ("udp", outside.ip4, PORT), ("tcp", "10.54.0.1", PORT)],
    )
    assert answers == {
        ("tcp", outside.ip4, PORT): None,
        ("udp", outside.ip4, PORT): None,
        ("tcp", "10.54.0.1", PORT): "host 10.54.0.2",
    }


def test_nothing_routed_from_outside_reaches_a_container(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "shielded", "10.55.0.0/24", ipv6_subnet="fd55::/64")
    box = sandbox_on(controller, "box", "shielded")
    servers(box.key, "box", [PORT])
    servers(None, "host", [PORT + 1])
    run("ip", "route", "add", "10.55.0.0/24", "via", outside.host4, netns=outside.path)
    run("ip", "-6", "route", "add", "fd55::/64", "via", outside.host6, netns=outside.path)
    v4, v6 = address(controller, box, "shielded"), address(controller, box, "shielded", 6)
    answers = probe(
        outside.path,
        [
            ("tcp", v4, PORT),
            ("udp", v4, PORT),
            ("tcp", v6, PORT),
            ("tcp", outside.host4, PORT + 1),  # the host itself stays reachable
        ],
    )
    assert answers == {
        ("tcp", v4, PORT): None,
        ("udp", v4, PORT): None,
        ("tcp", v6, PORT): None,
        ("tcp", outside.host4, PORT + 1): f"host {outside.ip4}",
    }
    # The host reaches the container, over both families.
    assert probe(None, [("tcp", v4, PORT), ("tcp", v6, PORT)]) == {
        ("tcp", v4, PORT): "box 10.55.0.1",
        ("tcp", v6, PORT): "box fd55::1",
    }


def test_a_forged_source_address_is_dropped(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "honest", "10.56.0.0/24")
    box = sandbox_on(controller, "box", "honest")
    servers(outside.path, "outside", [PORT])
    assert answer(box.key, "tcp", outside.ip4, PORT) == f"outside {outside.host4}"
    # The container takes an address that is not its endpoint's and sends from it.
    run("ip", "addr", "add", "10.56.0.200/32", "dev", "eth0", netns=box.key)
    run(
        "ip", "route", "replace", "default", "via", "10.56.0.1", "src", "10.56.0.200", netns=box.key
    )
    assert answer(box.key, "tcp", outside.ip4, PORT) is None
