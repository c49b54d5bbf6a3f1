"""Transactions: failures injected with real objects (a link squatting on a name, a missing
directory, a full pool) must undo every step already taken."""

from __future__ import annotations

import secrets
import shutil

import pytest

import cnm.controller.endpoints
from cnm.controller import Controller
from cnm.errors import CnmError, Conflict, Unavailable
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest

from .probes import addresses, default_routes, host_veths, link, links, run, snapshot

BRIDGE_NAME = "com.docker.network.bridge.name"


def _squat(name: str) -> None:
    """Occupy a link name in the test's host namespace (no dummy links on this kernel)."""
    run("ip", "link", "add", name, "type", "bridge")


def _net(ctl: Controller, name: str, subnet: str | None = None, **kwargs: object):
    config = [IpamRequest(subnet=subnet)] if subnet else []
    return ctl.create_network(NetworkRequest(name=name, ipam_config=config, **kwargs))


def test_bridge_name_collision_fails_and_keeps_no_pool(controller: Controller) -> None:
    _squat("taken0")
    before = snapshot(controller)
    with pytest.raises(Conflict):
        _net(controller, "n", "10.100.0.0/24", options={BRIDGE_NAME: "taken0"})
    assert snapshot(controller) == before
    squatter = link("taken0")
    assert squatter is not None and addresses("taken0") == []  # not touched
    # the subnet and the name are free again
    net = _net(controller, "n", "10.100.0.0/24")
    assert addresses(f"br-{net.id[:12]}", family="4") == ["10.100.0.1/24"]


def test_bridge_name_collision_with_automatic_pool_keeps_no_pool(controller: Controller) -> None:
    _squat("taken1")
    with pytest.raises(Conflict):
        _net(controller, "n", options={BRIDGE_NAME: "taken1"})
    net = _net(controller, "n")
    assert [p.subnet for p in net.ipv4_pools] == ["172.18.0.0/16"]


def test_bridge_name_used_by_another_network_fails_cleanly(controller: Controller) -> None:
    _net(controller, "a", "10.101.0.0/24", options={BRIDGE_NAME: "shared0"})
    before = snapshot(controller)
    with pytest.raises(Conflict):
        _net(controller, "b", "10.102.0.0/24", options={BRIDGE_NAME: "shared0"})
    assert snapshot(controller) == before
    assert addresses("shared0", family="4") == ["10.101.0.1/24"]
    _net(controller, "b", "10.102.0.0/24")


def test_failing_join_leaves_endpoint_unjoined_and_sandbox_empty(controller: Controller) -> None:
    _net(controller, "j", "10.103.0.0/24")
    sandbox = controller.create_sandbox()
    endpoint = controller.create_endpoint("j", EndpointOptions(ipv4_address="10.103.0.7"))
    host_end = f"veth{endpoint.id[:11]}"
    _squat(host_end)
    before = snapshot(controller)
    hosts_before = controller.sandbox_file(sandbox.id, "hosts").read_text()
    with pytest.raises(CnmError):
        controller.join(endpoint.id, sandbox.id)
    assert snapshot(controller) == before
    assert sorted(links(sandbox.key)) == ["lo"]
    assert link(host_end)["linkinfo"]["info_kind"] == "bridge"  # the squatter, untouched
    assert controller.endpoint(endpoint.id).sandbox_id is None
    assert controller.endpoint(endpoint.id).ifname is None
    assert b'"sandbox_id":null' in controller.store.get(f"endpoint/{endpoint.id}").value
    assert controller.sandbox_file(sandbox.id, "hosts").read_text() == hosts_before
    # once the name is free the same endpoint joins as eth0
    run("ip", "link", "del", host_end)
    controller.join(endpoint.id, sandbox.id)
    assert addresses("eth0", sandbox.key, family="4") == ["10.103.0.7/24"]


def test_failing_connect_releases_the_address(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    _net(controller, "c", "10.104.0.0/24")
    sandbox = controller.create_sandbox()
    endpoint_id = secrets.token_hex(32)
    _squat(f"veth{endpoint_id[:11]}")
    before = snapshot(controller)
    # the next endpoint gets a known id, so its host veth name is the squatted one
    monkeypatch.setattr(cnm.controller.endpoints.secrets, "token_hex", lambda n=32: endpoint_id)
    with pytest.raises(CnmError):
        controller.connect("c", sandbox.id, EndpointOptions(ipv4_address="10.104.0.9"))
    monkeypatch.undo()
    assert snapshot(controller) == before
    assert sorted(links(sandbox.key)) == ["lo"]
    # 10.104.0.9 is free again
    again = controller.connect("c", sandbox.id, EndpointOptions(ipv4_address="10.104.0.9"))
    assert addresses("eth0", sandbox.key, family="4") == ["10.104.0.9/24"]
    assert again.id != endpoint_id


def test_failure_after_the_veth_exists_removes_it(controller: Controller) -> None:
    """The sandbox's files directory vanished: writing hosts fails after the veth was made,
    addressed and routed; everything must be undone."""
    net = _net(controller, "late", "10.105.0.0/24")
    sandbox = controller.create_sandbox()
    files = controller.sandbox_file(sandbox.id, "hosts").parent
    shutil.rmtree(files)
    before = snapshot(controller)
    with pytest.raises(OSError):
        controller.connect("late", sandbox.id, EndpointOptions(ipv4_address="10.105.0.9"))
    assert host_veths(f"br-{net.id[:12]}") == {}
    assert sorted(links(sandbox.key)) == ["lo"]
    assert default_routes(sandbox.key) == []
    assert snapshot(controller) == before
    files.mkdir()
    controller.connect("late", sandbox.id, EndpointOptions(ipv4_address="10.105.0.9"))
    assert addresses("eth0", sandbox.key, family="4") == ["10.105.0.9/24"]


def test_failing_create_sandbox_leaves_no_namespace(controller: Controller) -> None:
    """The sandboxes directory is a file: making the sandbox's files fails after its namespace
    was made; the namespace must be unmounted and removed."""
    sandbox_dir = controller.sandbox_dir
    shutil.rmtree(sandbox_dir)
    sandbox_dir.write_text("not a directory")
    before = snapshot(controller)
    try:
        with pytest.raises(OSError):
            controller.create_sandbox()
        assert snapshot(controller) == before
        with open("/proc/self/mountinfo") as mounts:
            assert str(controller.netns_dir) not in mounts.read()
    finally:
        sandbox_dir.unlink()
        sandbox_dir.mkdir()
    controller.create_sandbox()


def test_pool_exhaustion_on_a_slash_30(controller: Controller) -> None:
    _net(controller, "tiny", "10.106.0.0/30")
    first = controller.create_sandbox()
    second = controller.create_sandbox()
    endpoint = controller.connect("tiny", first.id)
    assert endpoint.ipv4_address == "10.106.0.2/30"  # .1 is the gateway, .3 the broadcast
    before = snapshot(controller)
    with pytest.raises(Unavailable) as info:
        controller.connect("tiny", second.id)
    assert info.value.status == 503
    with pytest.raises(Unavailable):
        controller.create_endpoint("tiny")
    assert snapshot(controller) == before
    assert sorted(links(second.key)) == ["lo"]
    controller.disconnect("tiny", first.id)
    again = controller.connect("tiny", second.id)
    assert again.ipv4_address == "10.106.0.2/30"
    assert addresses("eth0", second.key, family="4") == ["10.106.0.2/30"]


def test_failed_join_of_a_preferred_endpoint_keeps_the_old_default_route(
    controller: Controller,
) -> None:
    """A higher-priority endpoint takes the default route during its join; when a later step
    of that join fails, the sandbox must get its previous default route back."""
    _net(controller, "main", "10.107.0.0/24")
    _net(controller, "preferred", "10.108.0.0/24")
    sandbox = controller.create_sandbox()
    controller.connect("main", sandbox.id)
    assert [(r["gateway"], r["dev"]) for r in default_routes(sandbox.key)] == [
        ("10.107.0.1", "eth0")
    ]
    files = controller.sandbox_file(sandbox.id, "hosts").parent
    shutil.rmtree(files)
    with pytest.raises(OSError):
        controller.connect("preferred", sandbox.id, EndpointOptions(gateway_priority=10))
    assert sorted(links(sandbox.key)) == ["eth0", "lo"]
    assert [(r["gateway"], r["dev"]) for r in default_routes(sandbox.key)] == [
        ("10.107.0.1", "eth0")
    ]


def test_kernel_refusing_the_gateway_address_undoes_bridge_and_pools(
    controller: Controller,
) -> None:
    """IPv6 off for new links of the (throwaway) host namespace: the kernel refuses the IPv6
    gateway on the new bridge after the bridge and both pools were made."""
    run("sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
    request = NetworkRequest(
        "dual",
        enable_ipv6=True,
        ipam_config=[IpamRequest(subnet="10.109.0.0/24"), IpamRequest(subnet="fd00:109::/64")],
    )
    before = snapshot(controller)
    with pytest.raises(CnmError, match="fd00:109::1"):
        controller.create_network(request)
    assert snapshot(controller) == before
    run("sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=0")
    net = controller.create_network(request)
    assert "fd00:109::1/64" in addresses(f"br-{net.id[:12]}", family="6")
