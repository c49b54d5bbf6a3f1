"""Sandboxes, endpoints, joins and leaves: namespaces, generated files, eth0/eth1, the default
route rule, IPv6, and real TCP packets between sandboxes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnm.controller import Controller
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest, PortRequest, SandboxOptions
from cnm.osl.namespace import is_netns_mount

from .probes import (
    EchoServer,
    addresses,
    default_routes,
    link,
    links,
    routes,
    sysctl,
    tcp_echo,
    wait_for,
)


def _net(ctl: Controller, name: str, *subnets: str, **kwargs: object):
    config = [IpamRequest(subnet=s) for s in subnets]
    return ctl.create_network(NetworkRequest(name=name, ipam_config=config, **kwargs))


def _ip(endpoint_address: str | None) -> str:
    assert endpoint_address is not None
    return endpoint_address.split("/")[0]


def _default(netns: str, family: str = "4") -> list[tuple[str, str]]:
    return [(r["gateway"], r["dev"]) for r in default_routes(netns, family)]


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == path for line in mounts)


# ------------------------------------------------------------------ sandboxes


def test_sandbox_is_a_bind_mounted_namespace_with_loopback_up(
    controller: Controller, exec_root: Path
) -> None:
    sandbox = controller.create_sandbox()
    assert sandbox.key == str(exec_root / "netns" / sandbox.id)
    assert is_netns_mount(sandbox.key) and _mounted(sandbox.key)
    # a namespace of its own, not the host's
    assert os.stat(sandbox.key).st_ino != os.stat("/proc/thread-self/ns/net").st_ino
    inside = links(sandbox.key)
    assert sorted(inside) == ["lo"]
    assert "UP" in inside["lo"]["flags"]
    assert addresses("lo", sandbox.key, family="4") == ["127.0.0.1/8"]
    assert controller.store.get(f"sandbox/{sandbox.id}") is not None


def test_sandbox_files_are_generated(controller: Controller) -> None:
    sandbox = controller.create_sandbox(
        SandboxOptions(hostname="web", extra_hosts=["db:10.99.0.9"])
    )
    resolv = controller.sandbox_file(sandbox.id, "resolv.conf").read_text().splitlines()
    # the tmp host resolv.conf lists 127.0.0.53, 192.0.2.53, ::1, 2001:db8::53
    assert [line.split()[1] for line in resolv if line.startswith("nameserver")] == [
        "192.0.2.53",
        "2001:db8::53",
    ]
    assert "search example.test corp.test" in resolv
    assert "options ndots:2 edns0" in resolv
    assert controller.sandbox_file(sandbox.id, "hostname").read_text() == "web\n"
    hosts = controller.sandbox_file(sandbox.id, "hosts").read_text().splitlines()
    assert "127.0.0.1\tlocalhost" in hosts
    assert "10.99.0.9\tdb" in hosts

    _net(controller, "files", "10.60.0.0/24")
    endpoint = controller.connect("files", sandbox.id)
    hosts = controller.sandbox_file(sandbox.id, "hosts").read_text().splitlines()
    assert f"{_ip(endpoint.ipv4_address)}\tweb" in hosts
    controller.disconnect("files", sandbox.id)
    hosts = controller.sandbox_file(sandbox.id, "hosts").read_text()
    assert _ip(endpoint.ipv4_address) not in hosts


def test_sandbox_hostname_defaults_to_short_id(controller: Controller) -> None:
    sandbox = controller.create_sandbox()
    assert controller.sandbox_file(sandbox.id, "hostname").read_text() == sandbox.id[:12] + "\n"


def test_dns_options_override_host_resolv_conf(controller: Controller) -> None:
    sandbox = controller.create_sandbox(
        SandboxOptions(dns=["198.51.100.7"], dns_search=["svc.test"], dns_options=["timeout:1"])
    )
    resolv = controller.sandbox_file(sandbox.id, "resolv.conf").read_text()
    assert resolv == "nameserver 198.51.100.7\nsearch svc.test\noptions timeout:1\n"


def test_resolv_conf_with_only_loopback_nameservers_gets_none(
    controller: Controller, host_resolv_conf: Path
) -> None:
    host_resolv_conf.write_text("nameserver 127.0.0.53\nnameserver ::1\noptions edns0\n")
    sandbox = controller.create_sandbox()
    resolv = controller.sandbox_file(sandbox.id, "resolv.conf").read_text()
    assert "nameserver" not in resolv
    assert "options edns0" in resolv


# ------------------------------------------------------------------ endpoints and joins


def test_join_creates_eth0_with_address_mac_and_default_route(controller: Controller) -> None:
    net = _net(controller, "one", "10.61.0.0/24")
    bridge = f"br-{net.id[:12]}"
    sandbox = controller.create_sandbox()
    endpoint = controller.create_endpoint("one")
    assert endpoint.ipv4_address == "10.61.0.2/24"
    assert endpoint.mac_address and endpoint.mac_address.startswith("02:42:")
    host_end = f"veth{endpoint.id[:11]}"
    assert link(host_end) is None  # the veth is made at join time

    joined = controller.join(endpoint.id, sandbox.id)
    assert joined.sandbox_id == sandbox.id and joined.ifname == "eth0"
    eth0 = link("eth0", sandbox.key)
    assert eth0 is not None and eth0["linkinfo"]["info_kind"] == "veth"
    assert eth0["address"] == endpoint.mac_address
    assert "UP" in eth0["flags"]
    assert addresses("eth0", sandbox.key, family="4") == ["10.61.0.2/24"]
    assert sorted(links(sandbox.key)) == ["eth0", "lo"]
    veth = link(host_end)
    assert veth is not None
    assert veth["master"] == bridge and "UP" in veth["flags"]
    assert eth0["link_index"] == veth["ifindex"]
    assert _default(sandbox.key) == [("10.61.0.1", "eth0")]
    stored = controller.store.get(f"endpoint/{endpoint.id}")
    assert stored is not None and sandbox.id.encode() in stored.value
    assert controller.endpoint(endpoint.id).sandbox_id == sandbox.id


def test_requested_mac_and_static_address_are_used(controller: Controller) -> None:
    _net(controller, "static", "10.62.0.0/24")
    sandbox = controller.create_sandbox()
    endpoint = controller.connect(
        "static",
        sandbox.id,
        EndpointOptions(ipv4_address="10.62.0.77", mac_address="02:42:0a:3e:00:4d"),
    )
    assert endpoint.ipv4_address == "10.62.0.77/24"
    assert link("eth0", sandbox.key)["address"] == "02:42:0a:3e:00:4d"
    assert addresses("eth0", sandbox.key, family="4") == ["10.62.0.77/24"]


def test_second_network_adds_eth1_without_disturbing_eth0(controller: Controller) -> None:
    _net(controller, "first", "10.63.0.0/24")
    _net(controller, "second", "10.64.0.0/24")
    sandbox = controller.create_sandbox()
    first = controller.connect("first", sandbox.id)
    eth0_before = link("eth0", sandbox.key)
    eth0_addresses = addresses("eth0", sandbox.key)
    eth0_routes = [r for r in routes(sandbox.key) if r["dev"] == "eth0"]

    second = controller.connect("second", sandbox.id)
    assert (first.ifname, second.ifname) == ("eth0", "eth1")
    assert sorted(links(sandbox.key)) == ["eth0", "eth1", "lo"]
    assert addresses("eth1", sandbox.key, family="4") == [second.ipv4_address]
    eth0_after = link("eth0", sandbox.key)
    assert eth0_after["ifindex"] == eth0_before["ifindex"]
    assert eth0_after["address"] == eth0_before["address"]
    assert addresses("eth0", sandbox.key) == eth0_addresses
    assert [r for r in routes(sandbox.key) if r["dev"] == "eth0"] == eth0_routes
    assert _default(sandbox.key) == [("10.63.0.1", "eth0")]
    assert any(r["dst"] == "10.64.0.0/24" and r["dev"] == "eth1" for r in routes(sandbox.key))


def test_higher_gateway_priority_takes_the_default_route(controller: Controller) -> None:
    _net(controller, "low", "10.65.0.0/24")
    _net(controller, "high", "10.66.0.0/24")
    _net(controller, "middle", "10.67.0.0/24")
    sandbox = controller.create_sandbox()
    controller.connect("low", sandbox.id)
    assert _default(sandbox.key) == [("10.65.0.1", "eth0")]
    controller.connect("high", sandbox.id, EndpointOptions(gateway_priority=10))
    assert _default(sandbox.key) == [("10.66.0.1", "eth1")]
    controller.connect("middle", sandbox.id, EndpointOptions(gateway_priority=5))
    assert _default(sandbox.key) == [("10.66.0.1", "eth1")]
    # the winner leaves: the next by the rule (priority 5) takes over
    controller.disconnect("high", sandbox.id)
    assert _default(sandbox.key) == [("10.67.0.1", "eth2")]


def test_default_route_moves_when_its_endpoint_leaves(controller: Controller) -> None:
    _net(controller, "a", "10.68.0.0/24")
    _net(controller, "b", "10.69.0.0/24")
    _net(controller, "c", "10.70.0.0/24")
    sandbox = controller.create_sandbox()
    ep_a = controller.connect("a", sandbox.id)
    ep_b = controller.create_endpoint("b")
    controller.join(ep_b.id, sandbox.id)
    controller.connect("c", sandbox.id)
    assert _default(sandbox.key) == [("10.68.0.1", "eth0")]
    # a non-winner leaving changes nothing
    controller.leave(ep_b.id)
    assert _default(sandbox.key) == [("10.68.0.1", "eth0")]
    assert sorted(links(sandbox.key)) == ["eth0", "eth2", "lo"]
    # the winner leaving moves the default route to the remaining endpoint
    controller.leave(ep_a.id)
    assert sorted(links(sandbox.key)) == ["eth2", "lo"]
    assert _default(sandbox.key) == [("10.70.0.1", "eth2")]
    controller.disconnect("c", sandbox.id)
    assert _default(sandbox.key) == []


def test_rejoining_reuses_the_freed_interface_name(controller: Controller) -> None:
    _net(controller, "x", "10.71.0.0/24")
    _net(controller, "y", "10.72.0.0/24")
    sandbox = controller.create_sandbox()
    controller.connect("x", sandbox.id)
    controller.connect("y", sandbox.id)
    controller.disconnect("x", sandbox.id)
    again = controller.connect("x", sandbox.id)
    assert again.ifname == "eth0"
    assert sorted(links(sandbox.key)) == ["eth0", "eth1", "lo"]
    assert addresses("eth0", sandbox.key, family="4") == [again.ipv4_address]


def test_internal_network_gives_no_default_route(controller: Controller) -> None:
    _net(controller, "inner", "10.73.0.0/24", internal=True)
    _net(controller, "outer", "10.74.0.0/24")
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("inner", sandbox.id)
    assert addresses("eth0", sandbox.key, family="4") == [endpoint.ipv4_address]
    assert _default(sandbox.key) == []
    assert any(r["dst"] == "10.73.0.0/24" for r in routes(sandbox.key))
    controller.connect("outer", sandbox.id)
    assert _default(sandbox.key) == [("10.74.0.1", "eth1")]


def test_dual_stack_network_gives_ipv6_address_and_default_route(
    controller: Controller,
) -> None:
    net = _net(controller, "dual", "10.75.0.0/24", "fd00:75::/64", enable_ipv6=True)
    bridge = f"br-{net.id[:12]}"
    assert "fd00:75::1/64" in addresses(bridge, family="6")
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("dual", sandbox.id)
    assert endpoint.ipv4_address == "10.75.0.2/24"
    assert endpoint.ipv6_address == "fd00:75::2/64"
    assert addresses("eth0", sandbox.key, family="6") == ["fd00:75::2/64"]
    assert addresses("eth0", sandbox.key, family="4") == ["10.75.0.2/24"]
    assert _default(sandbox.key, "6") == [("fd00:75::1", "eth0")]
    assert _default(sandbox.key, "4") == [("10.75.0.1", "eth0")]
    assert sysctl("net.ipv6.conf.eth0.disable_ipv6", sandbox.key) == "0"
    assert sysctl(f"net.ipv6.conf.veth{endpoint.id[:11]}.disable_ipv6") == "0"


def test_ipv6_only_subnet_gets_an_automatic_ipv4_pool(controller: Controller) -> None:
    net = _net(controller, "v6auto", "fd00:76::/64", enable_ipv6=True)
    assert [p.subnet for p in net.ipv4_pools] == ["172.18.0.0/16"]
    assert [p.subnet for p in net.ipv6_pools] == ["fd00:76::/64"]


def test_network_without_ipv6_disables_it_on_both_veth_ends(controller: Controller) -> None:
    _net(controller, "v4only", "10.77.0.0/24")
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("v4only", sandbox.id)
    assert sysctl("net.ipv6.conf.eth0.disable_ipv6", sandbox.key) == "1"
    assert sysctl(f"net.ipv6.conf.veth{endpoint.id[:11]}.disable_ipv6") == "1"
    assert addresses("eth0", sandbox.key, family="6") == []
    assert _default(sandbox.key, "6") == []


# ------------------------------------------------------------------ real packets


def test_two_sandboxes_on_one_network_talk_tcp(controller: Controller) -> None:
    _net(controller, "talk", "10.78.0.0/24")
    server_box = controller.create_sandbox()
    client_box = controller.create_sandbox()
    server = controller.connect("talk", server_box.id)
    client = controller.connect("talk", client_box.id)
    with EchoServer(_ip(server.ipv4_address), 7001, server_box.key) as echo:
        assert tcp_echo(client_box.key, _ip(server.ipv4_address), 7001, "ping") == "echo:ping"
        assert echo.peer() == _ip(client.ipv4_address)


def test_two_sandboxes_on_the_default_bridge_talk_tcp(controller: Controller) -> None:
    server_box = controller.create_sandbox()
    client_box = controller.create_sandbox()
    server = controller.connect("bridge", server_box.id)
    controller.connect("bridge", client_box.id)
    with EchoServer(_ip(server.ipv4_address), 7002, server_box.key):
        assert tcp_echo(client_box.key, _ip(server.ipv4_address), 7002, "hi") == "echo:hi"


def test_two_sandboxes_talk_tcp_over_ipv6(controller: Controller) -> None:
    _net(controller, "talk6", "10.79.0.0/24", "fd00:79::/64", enable_ipv6=True)
    server_box = controller.create_sandbox()
    client_box = controller.create_sandbox()
    server = controller.connect("talk6", server_box.id)
    client = controller.connect("talk6", client_box.id)
    with EchoServer(_ip(server.ipv6_address), 7003, server_box.key) as echo:
        assert tcp_echo(client_box.key, _ip(server.ipv6_address), 7003, "six") == "echo:six"
        assert echo.peer() == _ip(client.ipv6_address)


def test_sandbox_reaches_its_gateway(controller: Controller) -> None:
    _net(controller, "gw", "10.80.0.0/24")
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("gw", sandbox.id)
    # the server runs in the test's host namespace, bound to the gateway on the bridge
    with EchoServer("10.80.0.1", 7004, None) as echo:
        assert tcp_echo(sandbox.key, "10.80.0.1", 7004, "gw") == "echo:gw"
        assert echo.peer() == _ip(endpoint.ipv4_address)


# ------------------------------------------------------------------ leave and delete


def test_leave_removes_the_veth_and_delete_releases_the_address(controller: Controller) -> None:
    _net(controller, "rel", "10.81.0.0/24")
    sandbox = controller.create_sandbox()
    endpoint = controller.create_endpoint("rel", EndpointOptions(ipv4_address="10.81.0.50"))
    controller.join(endpoint.id, sandbox.id)
    host_end = f"veth{endpoint.id[:11]}"
    assert link(host_end) is not None
    controller.leave(endpoint.id)
    assert link(host_end) is None
    assert sorted(links(sandbox.key)) == ["lo"]
    assert _default(sandbox.key) == []
    assert controller.endpoint(endpoint.id).sandbox_id is None
    controller.delete_endpoint(endpoint.id)
    assert controller.store.get(f"endpoint/{endpoint.id}") is None
    again = controller.connect("rel", sandbox.id, EndpointOptions(ipv4_address="10.81.0.50"))
    assert addresses("eth0", sandbox.key, family="4") == [again.ipv4_address]


def test_disconnect_releases_the_address(controller: Controller) -> None:
    _net(controller, "disc", "10.82.0.0/24")
    first = controller.create_sandbox()
    second = controller.create_sandbox()
    endpoint = controller.connect("disc", first.id, EndpointOptions(ipv4_address="10.82.0.9"))
    controller.disconnect("disc", first.id)
    assert link(f"veth{endpoint.id[:11]}") is None
    assert controller.store.get(f"endpoint/{endpoint.id}") is None
    controller.connect("disc", second.id, EndpointOptions(ipv4_address="10.82.0.9"))


def test_delete_sandbox_removes_namespace_files_veths_and_addresses(
    controller: Controller,
) -> None:
    _net(controller, "del1", "10.83.0.0/24")
    _net(controller, "del2", "10.84.0.0/24")
    sandbox = controller.create_sandbox()
    ep1 = controller.connect("del1", sandbox.id, EndpointOptions(ipv4_address="10.83.0.5"))
    ep2 = controller.connect("del2", sandbox.id, EndpointOptions(ipv4_address="10.84.0.5"))
    files = controller.sandbox_file(sandbox.id, "hosts").parent
    assert files.is_dir()
    controller.delete_sandbox(sandbox.id)
    assert not os.path.exists(sandbox.key)
    assert not _mounted(sandbox.key)
    assert not files.exists()
    assert controller.store.list("sandbox/") == []
    assert controller.store.list("endpoint/") == []
    assert controller.sandboxes() == [] and controller.endpoints() == []
    for endpoint in (ep1, ep2):
        wait_for(lambda e=endpoint: link(f"veth{e.id[:11]}") is None, what="host veth gone")
    other = controller.create_sandbox()
    controller.connect("del1", other.id, EndpointOptions(ipv4_address="10.83.0.5"))
    controller.connect("del2", other.id, EndpointOptions(ipv4_address="10.84.0.5"))


def test_host_network_sandbox_uses_the_host_namespace(
    controller: Controller, exec_root: Path
) -> None:
    sandbox = controller.create_sandbox(SandboxOptions(use_host_network=True))
    assert sandbox.key == str(exec_root / "netns" / "default")
    assert os.stat(sandbox.key).st_ino == os.stat("/proc/thread-self/ns/net").st_ino
    before = sorted(links())
    endpoint = controller.connect("host", sandbox.id)
    assert endpoint.ipv4_address is None
    assert sorted(links()) == before
    controller.delete_sandbox(sandbox.id)
    assert sorted(links()) == before
    assert controller.store.list("endpoint/") == []


def test_none_network_gives_loopback_only(controller: Controller) -> None:
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("none", sandbox.id)
    assert endpoint.ipv4_address is None
    assert sorted(links(sandbox.key)) == ["lo"]
    assert _default(sandbox.key) == []


@pytest.mark.parametrize("ref", ["id", "prefix", "name"])
def test_networks_are_found_by_id_prefix_and_name(controller: Controller, ref: str) -> None:
    net = _net(controller, "findme", "10.85.0.0/24")
    key = {"id": net.id, "prefix": net.id[:12], "name": "findme"}[ref]
    sandbox = controller.create_sandbox()
    endpoint = controller.connect(key, sandbox.id)
    assert endpoint.network_id == net.id


def test_a_dual_stack_endpoint_takes_both_default_routes(controller: Controller) -> None:
    """libnetwork's order: an endpoint offering IPv4 and IPv6 gateways comes before those that
    offer IPv4 only, whatever the names and the join order."""
    _net(controller, "v4first", "10.86.0.0/24")
    _net(controller, "dualA", "10.87.0.0/24", "fd00:87::/64", enable_ipv6=True)
    _net(controller, "dualB", "10.88.0.0/24", "fd00:88::/64", enable_ipv6=True)
    sandbox = controller.create_sandbox()
    controller.connect("v4first", sandbox.id)
    assert _default(sandbox.key, "4") == [("10.86.0.1", "eth0")]
    dual_b = controller.connect("dualB", sandbox.id)
    assert _default(sandbox.key, "4") == [("10.88.0.1", "eth1")]
    assert _default(sandbox.key, "6") == [("fd00:88::1", "eth1")]
    controller.connect("dualA", sandbox.id)  # sorts before dualB
    assert _default(sandbox.key, "4") == [("10.87.0.1", "eth2")]
    assert _default(sandbox.key, "6") == [("fd00:87::1", "eth2")]
    hosts = controller.sandbox_file(sandbox.id, "hosts").read_text()
    assert _ip(dual_b.ipv6_address) in hosts and _ip(dual_b.ipv4_address) in hosts
    controller.disconnect("dualA", sandbox.id)
    assert _default(sandbox.key, "6") == [("fd00:88::1", "eth1")]
    assert _default(sandbox.key, "4") == [("10.88.0.1", "eth1")]
    controller.disconnect("dualB", sandbox.id)
    assert _default(sandbox.key, "6") == []
    assert _default(sandbox.key, "4") == [("10.86.0.1", "eth0")]


def test_the_network_name_orders_endpoints_not_the_join(controller: Controller) -> None:
    """Among equals, the default route goes to the network whose name sorts first (Docker's
    rule), and published ports follow it."""
    _net(controller, "zeta", "10.90.0.0/24")
    _net(controller, "alpha", "10.91.0.0/24")
    _net(controller, "mid", "10.92.0.0/24")
    sandbox = controller.create_sandbox()
    controller.connect("zeta", sandbox.id)
    controller.publish(sandbox.id, [PortRequest("tcp", 80)])
    assert _default(sandbox.key) == [("10.90.0.1", "eth0")]
    controller.connect("alpha", sandbox.id)
    assert _default(sandbox.key) == [("10.91.0.1", "eth1")]
    assert {str(m.container_ip) for m in controller.published(sandbox.id)} == {"10.91.0.2"}
    controller.connect("mid", sandbox.id)
    assert _default(sandbox.key) == [("10.91.0.1", "eth1")]
    controller.disconnect("alpha", sandbox.id)
    assert _default(sandbox.key) == [("10.92.0.1", "eth2")]
    assert {str(m.container_ip) for m in controller.published(sandbox.id)} == {"10.92.0.2"}


def test_join_order_is_libnetworks_sandbox_order(controller: Controller) -> None:
    """A starting container joins its networks in this order: dual-stack first, internal
    last, then gateway priority, then name (what dockerd 20.10 gives eth0..eth3)."""
    _net(controller, "net-c", "10.93.0.0/24")
    _net(controller, "net-a", "10.94.0.0/24", internal=True)
    _net(controller, "net-b", "10.95.0.0/24")
    _net(controller, "net-z", "10.96.0.0/24", "fd00:96::/64", enable_ipv6=True)
    _net(controller, "net-p", "10.97.0.0/24")
    options = EndpointOptions()
    given = [(name, options) for name in ("net-c", "net-a", "net-b", "net-z")]
    assert [n for n, _ in controller.join_order(given)] == ["net-z", "net-b", "net-c", "net-a"]
    preferred = [*given, ("net-p", EndpointOptions(gateway_priority=1))]
    assert [n for n, _ in controller.join_order(preferred)][:3] == ["net-z", "net-p", "net-b"]


def test_disconnect_from_the_only_ipv6_network(controller: Controller) -> None:
    net = _net(controller, "dual1", "10.89.0.0/24", "fd00:89::/64", enable_ipv6=True)
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("dual1", sandbox.id, EndpointOptions(ipv4_address="10.89.0.5"))
    assert _default(sandbox.key, "6") == [("fd00:89::1", "eth0")]
    controller.disconnect("dual1", sandbox.id)
    assert sorted(links(sandbox.key)) == ["lo"]
    assert controller.endpoints() == []
    assert controller.store.get(f"endpoint/{endpoint.id}") is None
    assert "10.89.0.5" not in controller.sandbox_file(sandbox.id, "hosts").read_text()
    controller.connect("dual1", sandbox.id, EndpointOptions(ipv4_address="10.89.0.5"))
    controller.disconnect("dual1", sandbox.id)
    controller.delete_network(net.id)
