"""An address handed out again (issue 10, finding 3): it is the lowest free one before and after
a restart, it comes back with the same MAC, and when it comes with another MAC (a user-given
one) its neighbours learn it at once from the join's announcement. Before, a peer kept the old
owner's MAC as REACHABLE and the address was unreachable for about 45 s."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from cnm.controller import Controller
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest, SandboxOptions

from .probes import assert_routed_via_test_interface, ip_json, run, stop, wait_for


def _join(controller: Controller, network: str, **options: str) -> tuple[str, str, str]:
    """A new sandbox on the network: (sandbox id, key, address without prefix)."""
    sandbox = controller.create_sandbox(SandboxOptions())
    endpoint = controller.connect(network, sandbox.id, EndpointOptions(**options))
    assert endpoint.ipv4_address is not None
    return sandbox.id, sandbox.key, str(ipaddress.ip_interface(endpoint.ipv4_address).ip)


def _neighbour(netns: str, address: str) -> dict[str, object] | None:
    entries = ip_json("neigh", "show", address, netns=netns)
    return entries[0] if entries else None


def _mac(netns: str) -> str:
    return str(ip_json("link", "show", "eth0", netns=netns)[0]["address"])


def test_the_lowest_free_address_comes_back_with_its_mac_across_a_restart(
    make_controller: Callable[..., Controller],
) -> None:
    controller = make_controller()
    controller.create_network(NetworkRequest("reuse", ipam_config=[IpamRequest("10.31.0.0/24")]))
    made = [_join(controller, "reuse") for _ in range(3)]
    assert [address for _, _, address in made] == ["10.31.0.2", "10.31.0.3", "10.31.0.4"]
    assert _mac(made[1][1]) == "02:42:0a:1f:00:03"
    controller.delete_sandbox(made[1][0])
    again = _join(controller, "reuse")
    assert again[2] == "10.31.0.3"  # lowest free, not the next in a series
    assert _mac(again[1]) == "02:42:0a:1f:00:03"
    controller.delete_sandbox(again[0])
    stop(controller)

    restarted = make_controller()
    after = _join(restarted, "reuse")
    assert after[2] == "10.31.0.3"  # the same order after a restart
    assert _mac(after[1]) == "02:42:0a:1f:00:03"


def test_a_reused_address_with_another_mac_is_learnt_at_once(controller: Controller) -> None:
    controller.create_network(NetworkRequest("garp", ipam_config=[IpamRequest("10.32.0.0/24")]))
    _, x1, _ = _join(controller, "garp")
    x2_id, x2, x2_address = _join(controller, "garp")
    assert_routed_via_test_interface(x1, x2_address)
    run("busybox", "ping", "-c1", "-W2", x2_address, netns=x1)
    old = _neighbour(x1, x2_address)
    assert old is not None and old["lladdr"] == _mac(x2)
    controller.delete_sandbox(x2_id)

    _, _, x3_address = _join(controller, "garp", mac_address="02:00:00:00:be:ef")
    assert x3_address == x2_address
    wait_for(
        lambda: (_neighbour(x1, x2_address) or {}).get("lladdr") == "02:00:00:00:be:ef",
        timeout=2,
        what="x1 to learn the new MAC of the reused address",
    )
    run("busybox", "ping", "-c1", "-W2", x3_address, netns=x1)


def test_a_reused_ipv6_address_with_another_mac_is_learnt_at_once(controller: Controller) -> None:
    controller.create_network(
        NetworkRequest(
            "garp6",
            enable_ipv6=True,
            ipam_config=[IpamRequest("10.33.0.0/24"), IpamRequest("fd00:33::/64")],
        )
    )
    first = controller.create_sandbox(SandboxOptions())
    controller.connect("garp6", first.id, EndpointOptions())
    second = controller.create_sandbox(SandboxOptions())
    endpoint = controller.connect("garp6", second.id, EndpointOptions())
    assert endpoint.ipv6_address is not None
    address = str(ipaddress.ip_interface(endpoint.ipv6_address).ip)
    run("busybox", "ping", "-6", "-c1", "-W2", address, netns=first.key)
    controller.delete_sandbox(second.id)

    third = controller.create_sandbox(SandboxOptions())
    reused = controller.connect("garp6", third.id, EndpointOptions(mac_address="02:00:00:00:be:e6"))
    assert reused.ipv6_address == endpoint.ipv6_address
    wait_for(
        lambda: (_neighbour(first.key, address) or {}).get("lladdr") == "02:00:00:00:be:e6",
        timeout=2,
        what="the first sandbox to learn the new MAC of the reused IPv6 address",
    )
    run("busybox", "ping", "-6", "-c1", "-W2", address, netns=first.key)
