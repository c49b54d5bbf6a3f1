"""Sandboxes that adopt a namespace another runtime made (a CNI container's CNI_NETNS): cnm's
own bind mount at the usual key, interfaces named by the caller, teardown that removes cnm's
interfaces and mount but never the namespace, a restart that keeps them and leaves the
runtime's other links alone, and the refusals (a missing path, no namespace, the host's, one
adopted already, an interface name in use)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnm.controller import Controller
from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest, SandboxOptions
from cnm.osl.namespace import is_netns_mount
from tests.support.cni import container_netns

from .probes import EchoServer, addresses, fails_cleanly, host_veths, links, run, snapshot, tcp_echo


@pytest.fixture
def foreign_netns() -> Iterator[str]:
    with container_netns("adopt") as path:
        yield path


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == path for line in mounts)


def _adopt(controller: Controller, path: str) -> str:
    return controller.create_sandbox(SandboxOptions(container_id="ctr", netns_path=path)).id


def test_an_adopted_namespace_is_cnms_mount_of_the_runtimes_namespace(
    controller: Controller, foreign_netns: str, exec_root: Path
) -> None:
    sandbox = controller.sandbox(_adopt(controller, foreign_netns))
    assert sandbox.key == str(exec_root / "netns" / sandbox.id)
    assert sandbox.adopted_from == foreign_netns
    assert is_netns_mount(sandbox.key)
    assert os.stat(sandbox.key).st_ino == os.stat(foreign_netns).st_ino
    assert "UP" in links(foreign_netns)["lo"]["flags"]  # the embedded DNS needs loopback
    # the runtime's namespace keeps its own defaults: IPv6 is not switched off
    assert (
        run("sysctl", "-n", "net.ipv6.conf.default.disable_ipv6", netns=foreign_netns).strip()
        == "0"
    )


def test_teardown_removes_cnms_interfaces_and_mount_and_keeps_the_namespace(
    controller: Controller, foreign_netns: str
) -> None:
    controller.create_network(
        NetworkRequest(name="lab", ipam_config=[IpamRequest(subnet="10.61.0.0/24")])
    )
    sandbox_id = _adopt(controller, foreign_netns)
    endpoint = controller.connect("lab", sandbox_id, EndpointOptions(name="a", ifname="net1"))
    assert endpoint.ifname == "net1"
    assert addresses("net1", foreign_netns, "4") == ["10.61.0.2/24"]
    assert host_veths()
    key = controller.sandbox(sandbox_id).key

    controller.delete_sandbox(sandbox_id)

    assert sorted(links(foreign_netns)) == ["lo"]  # cnm's interface is gone, lo stays up
    assert not host_veths()
    assert not _mounted(key) and not Path(key).exists()
    assert _mounted(foreign_netns) and os.path.exists(foreign_netns)
    assert controller.endpoints() == []


def test_two_adopted_sandboxes_talk_over_a_network(controller: Controller) -> None:
    controller.create_network(
        NetworkRequest(name="lab", ipam_config=[IpamRequest(subnet="10.62.0.0/24")])
    )
    with container_netns("a") as first, container_netns("b") as second:
        one = controller.create_sandbox(SandboxOptions(container_id="one", netns_path=first))
        two = controller.create_sandbox(SandboxOptions(container_id="two", netns_path=second))
        controller.connect("lab", one.id, EndpointOptions(name="one", ifname="eth0"))
        peer = controller.connect("lab", two.id, EndpointOptions(name="two", ifname="eth0"))
        assert peer.ipv4_address is not None
        address = peer.ipv4_address.split("/")[0]
        with EchoServer(address, 7007, second):
            assert tcp_echo(first, address, 7007, "hi") == "echo:hi"
        controller.delete_sandbox(one.id)
        controller.delete_sandbox(two.id)


def test_a_restart_keeps_an_adopted_sandbox_and_the_runtimes_other_links(
    make_controller: Callable[..., Controller], foreign_netns: str
) -> None:
    controller = make_controller()
    controller.create_network(
        NetworkRequest(name="lab", ipam_config=[IpamRequest(subnet="10.63.0.0/24")])
    )
    sandbox_id = _adopt(controller, foreign_netns)
    controller.connect("lab", sandbox_id, EndpointOptions(name="a", ifname="eth0"))
    # another plugin's interface, with a name cnm would pick next: not cnm's to remove
    run("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth2", netns=foreign_netns)
    controller.close()

    again = make_controller()
    assert again.sandbox(sandbox_id).adopted_from == foreign_netns
    assert {"eth0", "eth1", "eth2"} <= set(links(foreign_netns))
    again.delete_sandbox(sandbox_id)
    assert sorted(links(foreign_netns)) == ["eth1", "eth2", "lo"]


def test_bad_adoptions_are_refused_and_leave_nothing(
    controller: Controller, foreign_netns: str, tmp_path: Path
) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("")
    cases: list[tuple[str, type[Exception], str]] = [
        (str(tmp_path / "missing"), NotFound, "does not exist"),
        (str(plain), InvalidParameter, "is not a network namespace"),
        ("relative/path", InvalidParameter, "not absolute"),
        ("/proc/thread-self/ns/net", InvalidParameter, "the host's network namespace"),
    ]
    for path, error, message in cases:
        fails_cleanly(
            controller,
            lambda path=path: controller.create_sandbox(SandboxOptions(netns_path=path)),
            error,
            message,
        )
    fails_cleanly(
        controller,
        lambda: controller.create_sandbox(
            SandboxOptions(netns_path=foreign_netns, use_host_network=True)
        ),
        InvalidParameter,
        "host-network sandbox",
    )
    first = _adopt(controller, foreign_netns)
    ordinary = controller.create_sandbox()
    for taken in (foreign_netns, ordinary.key):
        fails_cleanly(
            controller,
            lambda taken=taken: controller.create_sandbox(SandboxOptions(netns_path=taken)),
            Conflict,
            "already sandbox",
        )
    controller.delete_sandbox(first)
    controller.delete_sandbox(ordinary.id)


def test_an_interface_name_in_use_is_refused_before_anything_is_made(
    controller: Controller, foreign_netns: str
) -> None:
    controller.create_network(
        NetworkRequest(name="lab", ipam_config=[IpamRequest(subnet="10.64.0.0/24")])
    )
    controller.create_network(
        NetworkRequest(name="lab2", ipam_config=[IpamRequest(subnet="10.65.0.0/24")])
    )
    sandbox_id = _adopt(controller, foreign_netns)
    run("ip", "link", "add", "taken", "type", "veth", "peer", "name", "taken2", netns=foreign_netns)

    def connect(network: str, ifname: str) -> Callable[[], object]:
        return lambda: controller.connect(network, sandbox_id, EndpointOptions(ifname=ifname))

    fails_cleanly(controller, connect("lab", "taken"), Conflict, "interface taken already exists")
    connect("lab", "eth0")()
    fails_cleanly(controller, connect("lab2", "eth0"), Conflict, "interface eth0 already exists")
    for bad in ("", "x" * 16, "a/b", "a b", ".."):
        fails_cleanly(controller, connect("lab2", bad), InvalidParameter, "invalid interface name")
    controller.delete_sandbox(sandbox_id)
    assert snapshot(controller)["endpoints"] == []
