"""Restart: a new controller on the same store and exec root restores the records and
reconciles the kernel (recreates what is missing, removes what is orphaned)."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable

import pytest

from cnm.controller import Controller
from cnm.errors import Conflict
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest
from cnm.osl.namespace import create_netns, is_netns_mount

from .probes import (
    EchoServer,
    addresses,
    default_routes,
    link,
    links,
    run,
    stop,
    tcp_echo,
    wait_for,
)

MakeController = Callable[..., Controller]


def _net(ctl: Controller, name: str, subnet: str | None = None, **kwargs: object):
    config = [IpamRequest(subnet=subnet)] if subnet else []
    return ctl.create_network(NetworkRequest(name=name, ipam_config=config, **kwargs))


def _by_id(items: list) -> dict[str, dict]:
    return {item.id: dataclasses.asdict(item) for item in items}


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == path for line in mounts)


def test_restart_restores_networks_endpoints_and_sandboxes(
    make_controller: MakeController,
) -> None:
    first = make_controller()
    net = _net(first, "kept", "10.110.0.0/24")
    auto = _net(first, "auto")
    joined_box = first.create_sandbox()
    joined = first.connect("kept", joined_box.id)
    idle = first.create_endpoint("kept")
    empty_box = first.create_sandbox()
    networks, endpoints, sandboxes = (
        _by_id(first.networks()),
        _by_id(first.endpoints()),
        _by_id(first.sandboxes()),
    )
    kernel = {name: info["ifindex"] for name, info in links().items()}
    inside = links(joined_box.key)
    stop(first)

    second = make_controller()
    assert _by_id(second.networks()) == networks
    assert _by_id(second.endpoints()) == endpoints
    assert _by_id(second.sandboxes()) == sandboxes
    # nothing was recreated or removed: same links with the same indexes
    assert {name: info["ifindex"] for name, info in links().items()} == kernel
    assert links(joined_box.key) == inside
    assert is_netns_mount(empty_box.key)
    # the restored objects work: leave removes the host veth, the network can be deleted
    second.disconnect("kept", joined_box.id)
    assert link(f"veth{joined.id[:11]}") is None
    second.delete_endpoint(idle.id)
    second.delete_network(net.id)
    second.host.drain_deletions()
    assert link(f"br-{net.id[:12]}") is None
    assert link(f"br-{auto.id[:12]}") is not None


def test_ipam_allocations_survive_a_restart(make_controller: MakeController) -> None:
    first = make_controller()
    _net(first, "kept", "10.111.0.0/24")
    _net(first, "auto")  # 172.18.0.0/16
    taken = {
        first.connect("kept", first.create_sandbox().id).ipv4_address,
        first.create_endpoint("kept").ipv4_address,
        first.connect("kept", first.create_sandbox().id).ipv4_address,
    }
    assert taken == {"10.111.0.2/24", "10.111.0.3/24", "10.111.0.4/24"}
    stop(first)

    second = make_controller()
    fresh = second.connect("kept", second.create_sandbox().id)
    assert fresh.ipv4_address not in taken | {"10.111.0.1/24"}
    with pytest.raises(Conflict):
        second.create_endpoint("kept", EndpointOptions(ipv4_address="10.111.0.3"))
    with pytest.raises(Conflict):
        second.create_endpoint("kept", EndpointOptions(ipv4_address="10.111.0.1"))
    with pytest.raises(Conflict):
        _net(second, "clash", "10.111.0.0/24")
    assert [p.subnet for p in _net(second, "auto2").ipv4_pools] == ["172.19.0.0/16"]


def test_restart_recreates_a_bridge_deleted_behind_its_back(
    make_controller: MakeController,
) -> None:
    first = make_controller()
    net = _net(first, "fragile", "10.112.0.0/24")
    bridge = f"br-{net.id[:12]}"
    stop(first)
    run("ip", "link", "del", bridge)
    run("ip", "link", "del", "cnm0")

    make_controller()
    for name, address in ((bridge, "10.112.0.1/24"), ("cnm0", "172.17.0.1/16")):
        info = link(name)
        assert info is not None, f"{name} was not recreated"
        assert info["linkinfo"]["info_kind"] == "bridge"
        assert "UP" in info["flags"]
        assert addresses(name, family="4") == [address]


def test_recreated_bridge_gets_its_joined_veths_back(make_controller: MakeController) -> None:
    first = make_controller()
    net = _net(first, "fragile", "10.113.0.0/24")
    bridge = f"br-{net.id[:12]}"
    sandbox = first.create_sandbox()
    endpoint = first.connect("fragile", sandbox.id)
    stop(first)
    run("ip", "link", "del", bridge)
    assert "master" not in link(f"veth{endpoint.id[:11]}")

    make_controller()
    assert link(f"veth{endpoint.id[:11]}").get("master") == bridge
    with EchoServer("10.113.0.1", 7101, None):
        assert tcp_echo(sandbox.key, "10.113.0.1", 7101, "back") == "echo:back"


def test_restart_removes_orphaned_tagged_links(make_controller: MakeController) -> None:
    first = make_controller()
    net = _net(first, "kept", "10.114.0.0/24")
    bridge = f"br-{net.id[:12]}"
    sandbox = first.create_sandbox()
    endpoint = first.connect("kept", sandbox.id)
    unjoined = first.create_endpoint("kept")
    stop(first)
    # what a crash between making a link and recording it leaves behind: a tagged bridge or
    # veth of a network no record names, and ports of a kept bridge no joined endpoint names
    run("ip", "link", "add", "orph-br", "type", "bridge")
    run("ip", "link", "set", "orph-br", "alias", f"cnm:net:{secrets.token_hex(32)}")
    run("ip", "link", "add", "orph-nv", "type", "veth", "peer", "name", "orph-nv-p")
    run("ip", "link", "set", "orph-nv", "alias", "cnm:net:deadbeef")
    half_joined = f"veth{unjoined.id[:11]}"
    run("ip", "link", "add", half_joined, "type", "veth", "peer", "name", "orph-hj-p")
    run("ip", "link", "set", half_joined, "master", bridge)
    run("ip", "link", "add", "orph-port", "type", "veth", "peer", "name", "orph-port-p")
    run("ip", "link", "set", "orph-port", "master", bridge)
    # links cnm did not tag are not its business
    run("ip", "link", "add", "foreign-br", "type", "bridge")
    run("ip", "link", "add", "foreign-v", "type", "veth", "peer", "name", "foreign-p")
    run("ip", "link", "set", "foreign-v", "alias", "somebody else's")
    run("ip", "link", "set", "foreign-p", "master", "foreign-br")

    second = make_controller()
    present = set(links())
    orphans = {"orph-br", "orph-nv", "orph-nv-p", half_joined, "orph-hj-p"}
    orphans |= {"orph-port", "orph-port-p"}
    assert not present & orphans
    assert {"foreign-br", "foreign-v", "foreign-p"} <= present
    assert {"cnm0", bridge, f"veth{endpoint.id[:11]}"} <= present
    assert link(f"veth{endpoint.id[:11]}")["master"] == bridge
    # the unjoined endpoint can still join: its veth name is free again
    joined = second.join(unjoined.id, second.create_sandbox().id)
    assert link(f"veth{joined.id[:11]}")["master"] == bridge


def test_restart_removes_orphaned_namespaces_and_files(
    make_controller: MakeController, exec_root
) -> None:
    first = make_controller()
    kept = first.create_sandbox()
    stop(first)
    orphan = exec_root / "netns" / secrets.token_hex(32)
    create_netns(orphan).close()
    stray_files = exec_root / "sandboxes" / secrets.token_hex(32)
    stray_files.mkdir()
    (stray_files / "hosts").write_text("127.0.0.1\tlocalhost\n")

    second = make_controller()
    assert not orphan.exists() and not _mounted(str(orphan))
    assert not stray_files.exists()
    assert is_netns_mount(kept.key)
    assert [s.id for s in second.sandboxes()] == [kept.id]
    assert second.sandbox_file(kept.id, "hosts").exists()


def test_sandbox_whose_namespace_vanished_is_dropped(
    make_controller: MakeController, exec_root
) -> None:
    first = make_controller()
    net = _net(first, "kept", "10.115.0.0/24")
    lost = first.create_sandbox()
    lost_ep = first.connect("kept", lost.id, EndpointOptions(ipv4_address="10.115.0.10"))
    alive = first.create_sandbox()
    alive_ep = first.connect("kept", alive.id, EndpointOptions(ipv4_address="10.115.0.11"))
    stop(first)
    run("umount", lost.key)  # behind its back; the empty file stays
    assert not is_netns_mount(lost.key)
    wait_for(lambda: link(f"veth{lost_ep.id[:11]}") is None, what="the lost veth to go")

    second = make_controller()
    assert [s.id for s in second.sandboxes()] == [alive.id]
    assert [e.id for e in second.endpoints()] == [alive_ep.id]
    keys = {entry.key for entry in second.store.list("")}
    assert f"sandbox/{lost.id}" not in keys and f"endpoint/{lost_ep.id}" not in keys
    assert f"sandbox/{alive.id}" in keys and f"endpoint/{alive_ep.id}" in keys
    assert not os.path.exists(lost.key)
    assert not (exec_root / "sandboxes" / lost.id).exists()
    # its address went back to the pool; the survivor keeps its own
    newcomer = second.create_sandbox()
    again = second.connect("kept", newcomer.id, EndpointOptions(ipv4_address="10.115.0.10"))
    assert addresses("eth0", newcomer.key, family="4") == [again.ipv4_address]
    with pytest.raises(Conflict):
        second.create_endpoint("kept", EndpointOptions(ipv4_address="10.115.0.11"))
    assert addresses("eth0", alive.key, family="4") == ["10.115.0.11/24"]
    assert link(f"veth{alive_ep.id[:11]}")["master"] == f"br-{net.id[:12]}"


def test_sandbox_keeps_working_across_a_restart(make_controller: MakeController) -> None:
    first = make_controller()
    _net(first, "live", "10.116.0.0/24")
    _net(first, "live2", "10.117.0.0/24")
    server_box = first.create_sandbox()
    client_box = first.create_sandbox()
    server = first.connect("live", server_box.id)
    first.connect("live", client_box.id)
    first.connect("live2", client_box.id)
    stop(first)

    second = make_controller()
    server_ip = server.ipv4_address.split("/")[0]
    with EchoServer(server_ip, 7102, server_box.key):
        assert tcp_echo(client_box.key, server_ip, 7102, "still") == "echo:still"
    # the default-route rule still knows who joined first
    second.disconnect("live", client_box.id)
    assert [(r["gateway"], r["dev"]) for r in default_routes(client_box.key)] == [
        ("10.117.0.1", "eth1")
    ]
    third = second.connect("live", client_box.id)
    assert third.ifname == "eth0"
