"""Bad input: malformed -p specs, impossible and conflicting host ports, a flushed or edited
cnm table. Clear errors, nothing half-made."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from cnm.controller import Controller
from cnm.errors import Conflict, InvalidParameter
from cnm.firewall.api import NetworkRules
from cnm.firewall.monitor import NftMonitor
from cnm.firewall.nftables import MAX_REWRITES, NftablesFirewall
from cnm.model import PortRequest
from cnm.osl.namespace import NetNamespace
from cnm.portmap.spec import parse_publish, requests_from_config

from .probes import EchoServer, answer, nft_list, run
from .topology import Outside, network, sandbox_on, stop_watching


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no container port"),
        ("8080:", "no container port"),
        ("a:b", "invalid container port 'b'"),
        ("http", "invalid container port 'http'"),
        ("0", "container port 0 .* between 1 and 65535"),
        ("8080:65536", "container port 65536"),
        ("70000:80", "host port 70000"),
        ("8000-8005:80-81", "differ in length"),
        ("90-80", "container port range '90-80'"),
        ("80/icmp", "invalid protocol 'icmp'"),
        ("80/tcp/udp", "invalid protocol 'tcp/udp'"),
        ("1.2.3.4.5:80:80", "invalid host IP address '1.2.3.4.5'"),
        ("[::1:80:80", "invalid host IP address"),
        ("localhost:80:80", "invalid host IP address 'localhost'"),
    ],
)
def test_malformed_publish_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        parse_publish(spec)


def test_publish_specs_docker_accepts() -> None:
    assert parse_publish("80") == [("80/tcp", "", "")]
    assert parse_publish("127.0.0.1::53/UDP") == [("53/udp", "127.0.0.1", "")]
    assert parse_publish("[::1]:8080:80") == [("80/tcp", "::1", "8080")]
    assert parse_publish("8000-8001:80-81/sctp") == [
        ("80/sctp", "", "8000"),
        ("81/sctp", "", "8001"),
    ]
    assert parse_publish("8000-8010:80") == [("80/tcp", "", "8000-8010")]
    assert parse_publish("0:80") == [("80/tcp", "", "0")]


@pytest.mark.parametrize(
    ("bindings", "message"),
    [
        ({"80-81/tcp": [("", "8000")]}, "differ in length"),
        ({"80/tcp": [("999.1.1.1", "8000")]}, "invalid host IP address"),
        ({"80/tcp": [("", "8000")], "81/tcp": [("", "8000")]}, "8000/tcp .* more than once"),
        (
            {"80/tcp": [("127.0.0.1", "8000")], "81/tcp": [("0.0.0.0", "8000")]},
            "more than once",
        ),
        ({"80/tcp": [("", "65536")]}, "host port 65536"),
        ({"0/udp": [("", "")]}, "container port 0"),
    ],
)
def test_bad_port_bindings(bindings: dict[str, list[tuple[str, str]]], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        requests_from_config(bindings, [], False)


def test_same_host_port_of_other_families_and_protocols_is_fine() -> None:
    requests = requests_from_config(
        {
            "80/tcp": [("127.0.0.1", "8000"), ("::1", "8000")],
            "80/udp": [("", "8000")],
        },
        [],
        False,
    )
    assert len(requests) == 3


def _state(controller: Controller, box_id: str) -> tuple[str, str, list[object]]:
    return nft_list("inet"), nft_list("bridge"), controller.published(box_id)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_impossible_and_conflicting_host_ports_leave_nothing_behind(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "busy", "10.71.0.0/24")
    first, second = (
        sandbox_on(controller, "first", "busy"),
        sandbox_on(controller, "second", "busy"),
    )
    servers(first.key, "first", [80])
    controller.publish(first.id, [PortRequest("tcp", 80, host_port=8080)])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 8081))
    listener.listen(1)
    before = _state(controller, second.id)
    cases = [
        # host port held by another container
        (
            [PortRequest("tcp", 80, host_port=8080)],
            Conflict,
            "8080 failed: port is already allocated",
        ),
        # a process listens on it (on 127.0.0.1: 0.0.0.0 cannot be bound either)
        ([PortRequest("tcp", 80, host_port=8081)], Conflict, "8081 failed: port is already in use"),
        # not an address of this host; the good request before it is undone
        (
            [PortRequest("tcp", 80, host_port=8082), PortRequest("tcp", 81, "192.0.2.99", 8083)],
            InvalidParameter,
            "192.0.2.99: not an address of this host",
        ),
        # twice in one request
        (
            [PortRequest("udp", 80, host_port=8084), PortRequest("udp", 81, "0.0.0.0", 8084)],
            Conflict,
            "8084 failed: port is already allocated",
        ),
        # a host range with no free port
        (
            [PortRequest("tcp", 80, "127.0.0.1", 8080, 8081)],
            Conflict,
            "no free host port in 8080-8081",
        ),
    ]
    try:
        for requests, error, message in cases:
            with pytest.raises(error, match=message):
                controller.publish(second.id, requests)
            assert _state(controller, second.id) == before
            assert _free(8082) and _free(8083)
    finally:
        listener.close()
    assert answer(outside.path, "tcp", outside.host4, 8080) == f"first {outside.ip4}"


def test_the_firewall_refuses_interface_names_it_cannot_quote(controller: Controller) -> None:
    before = nft_list("inet")
    with pytest.raises(InvalidParameter, match="interface name"):
        controller.firewall.add_network(NetworkRules('x" accept'))
    assert nft_list("inet") == before


def _until(predicate: Callable[[], bool], what: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "edit",
    [
        ["flush", "table", "inet", "cnm"],
        ["delete", "table", "inet", "cnm"],
        ["delete", "element", "inet", "cnm", "ports4_any", "{ tcp . 8085 }"],
        ["flush", "set", "inet", "cnm", "endpoints4"],
        ["add", "rule", "inet", "cnm", "forward", "drop"],
        ["delete", "table", "bridge", "cnm"],
    ],
    ids=lambda edit: " ".join(edit[:3]),
)
def test_an_edited_table_is_written_again(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer], edit: list[str]
) -> None:
    network(
        controller,
        "kept",
        "10.73.0.0/24",
        options={"com.docker.network.bridge.enable_icc": "false"},
    )
    box = sandbox_on(controller, "box", "kept")
    sandbox_on(controller, "peer", "kept")
    servers(box.key, "box", [80])
    servers(outside.path, "outside", [9])
    controller.publish(box.id, [PortRequest("tcp", 80, host_port=8085)])
    written = nft_list("inet"), nft_list("bridge")
    run("nft", *edit)
    _until(lambda: (nft_list("inet"), nft_list("bridge")) == written, "the ruleset to come back")
    assert answer(outside.path, "tcp", outside.host4, 8085) == f"box {outside.ip4}"
    assert answer(box.key, "tcp", outside.ip4, 9) == f"outside {outside.host4}"
    assert answer(box.key, "tcp", "10.73.0.3", 80, 0.5) is None  # ICC is still off
    # Changes made afterwards apply, and removing what someone else removed is no error.
    controller.delete_sandbox(box.id)
    assert "8085" not in nft_list("inet")


def test_a_change_the_edited_kernel_refuses_rewrites_everything(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    """Without the monitor (or before it reacts), a removal whose element someone else
    already removed fails in the kernel; the firewall then writes the whole ruleset."""
    network(controller, "raced", "10.74.0.0/24")
    box, other = sandbox_on(controller, "box", "raced"), sandbox_on(controller, "other", "raced")
    servers(other.key, "other", [80])
    controller.publish(box.id, [PortRequest("tcp", 80, host_port=8086)])
    controller.publish(other.id, [PortRequest("tcp", 80, host_port=8087)])
    stop_watching(controller)
    run("nft", "delete", "element", "inet", "cnm", "ports4_any", "{ tcp . 8086 }")
    run("nft", "delete", "element", "inet", "cnm", "ports4_any", "{ tcp . 8087 }")
    controller.delete_sandbox(box.id)  # its element is gone already: refused, then rewritten
    assert "8086" not in nft_list("inet")
    assert answer(outside.path, "tcp", outside.host4, 8087) == f"other {outside.ip4}"


def test_two_firewalls_in_one_namespace_stop_fighting(host_netns: NetNamespace) -> None:
    """Two daemons in one namespace each see the other's writes as foreign edits: after a few
    rewrites each gives up for a while instead of rewriting forever."""
    other = subprocess.Popen(
        [sys.executable, "-c", SECOND_DAEMON], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    changes: list[object] = []
    try:
        assert other.stdout is not None and other.stdout.readline() == b"started\n"
        ours = NftablesFirewall()
        ours.start()
        time.sleep(1.5)
        counter = NftMonitor(host_netns, lambda _: False, changes.append)
        time.sleep(0.5)
        counter.close()
        ours.close()
    finally:
        other.kill()
        other.wait()
    assert changes == []
    assert len(ours._rewrites) == MAX_REWRITES  # type: ignore[attr-defined]


SECOND_DAEMON = """
import time
from cnm.firewall.nftables import NftablesFirewall
firewall = NftablesFirewall()
firewall.start()
print("started", flush=True)
time.sleep(30)
"""
