"""Published ports of real containers (busybox httpd under runc): reachable from another host,
the host and other containers, shown in NetworkSettings.Ports, gone at stop; a host port
already taken fails the start with nothing half-made; malformed requests fail at create.

The runtime holds the process-wide reaper, so every command here runs through it."""

from __future__ import annotations

import sys
import time

import pytest

from cnm.errors import Conflict, InvalidParameter
from cnm.model import NetworkRequest
from cnm.osl.links import read_sysctl
from cnm.osl.reaper import REAPER
from cnm.runtime.model import EndpointRequest, PortBinding
from cnm.runtime.runtime import Runtime
from tests.support.runtime import config, host, make_network

from .probes import nft_list
from .topology import Outside

SERVE = "echo hello > /tmp/index.html && exec httpd -f -p 80 -h /tmp"
FETCH = (
    "import sys, urllib.request\n"
    "try:\n"
    "    print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())\n"
    "except OSError as err:\n"
    "    print('failed', err)\n"
)


def _get(netns: str | None, url: str, attempts: int = 30) -> str:
    """An HTTP GET from ``netns`` (None: the host), retried while httpd starts."""
    cmd = [sys.executable, "-c", FETCH, url]
    if netns is not None:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    for _ in range(attempts):
        out = REAPER.run(cmd, timeout=10).stdout.decode().strip()
        if not out.startswith("failed"):
            return out
        time.sleep(0.1)
    return out


def test_published_ports_of_a_container(outside: Outside, runtime: Runtime, busybox: str) -> None:
    make_network(runtime, "web", "10.91.0.0/24")
    make_network(runtime, "other", "10.92.0.0/24")
    published = host(network_mode="web", port_bindings={"80/tcp": [PortBinding("", "8080")]})
    runtime.create_container(
        "web", config(busybox, "sh", "-c", SERVE, exposed_ports=["80/tcp", "53/udp"]), published, {}
    )
    runtime.start_container("web")
    state = runtime.network_state(runtime.container("web"))
    assert state.ports == ["80/tcp", "53/udp"]  # 53/udp: exposed, not published
    assert [(m.key, str(m.host_ip), m.host_port) for m in state.published] == [
        ("80/tcp", "0.0.0.0", 8080),
        ("80/tcp", "::", 8080),
    ]
    assert _get(outside.path, f"http://{outside.host4}:8080/") == "hello"
    assert _get(outside.path, f"http://[{outside.host6}]:8080/") == "hello"
    assert _get(None, "http://127.0.0.1:8080/") == "hello"
    assert _get(None, "http://[::1]:8080/") == "hello"
    runtime.create_container(
        "client", config(busybox, "sleep", "1000"), host(network_mode="other"), {}
    )
    runtime.start_container("client")
    client = runtime.network_state(runtime.container("client")).sandbox_key
    assert _get(client, f"http://{outside.host4}:8080/") == "hello"

    # The same host port again: the start fails and leaves nothing behind.
    runtime.create_container("twin", config(busybox, "sh", "-c", SERVE), published, {})
    sandboxes, rules = len(runtime.controller.sandboxes()), nft_list("inet")
    with pytest.raises(Conflict, match="8080 failed: port is already allocated"):
        runtime.start_container("twin")
    assert not runtime.container("twin").state.running
    assert len(runtime.controller.sandboxes()) == sandboxes
    assert nft_list("inet") == rules

    runtime.stop_container("web", timeout=1)
    stopped = runtime.network_state(runtime.container("web"))
    assert (stopped.ports, stopped.published) == ([], [])
    assert "8080" not in nft_list("inet")
    runtime.start_container("twin")  # the port is free again
    assert _get(None, "http://127.0.0.1:8080/") == "hello"


def test_publish_all_and_refusals_at_create(runtime: Runtime, busybox: str) -> None:
    make_network(runtime, "pub", "10.93.0.0/24")
    runtime.controller.create_network(NetworkRequest(name="sealed", internal=True))
    runtime.create_container(
        "all",
        config(busybox, "sh", "-c", SERVE, exposed_ports=["80/tcp"]),
        host(network_mode="pub", publish_all_ports=True),
        {},
    )
    runtime.start_container("all")
    mapping = runtime.network_state(runtime.container("all")).published[0]
    low, high = (int(v) for v in read_sysctl("net.ipv4.ip_local_port_range").split())
    assert mapping.key == "80/tcp" and low <= mapping.host_port <= high
    assert _get(None, f"http://127.0.0.1:{mapping.host_port}/") == "hello"
    refusals = [
        (host(network_mode="pub", port_bindings={"http/tcp": [PortBinding()]}), "container port"),
        (host(network_mode="pub", port_bindings={"80/icmp": [PortBinding()]}), "protocol"),
        (
            host(network_mode="pub", port_bindings={"80/tcp": [PortBinding("", "70000")]}),
            "host port 70000",
        ),
        (
            host(network_mode="pub", port_bindings={"80-81/tcp": [PortBinding("", "8000")]}),
            "differ in length",
        ),
    ]
    for host_config, message in refusals:
        with pytest.raises(InvalidParameter, match=message):
            runtime.create_container(None, config(busybox, "true"), host_config, {})
    # Ports on internal networks only: accepted (Docker's rule), published once a network
    # with a gateway joins.
    sealed = host(network_mode="sealed", port_bindings={"80/tcp": [PortBinding()]})
    runtime.create_container("sealed-box", config(busybox, "sleep", "1000"), sealed, {})
    runtime.start_container("sealed-box")
    assert runtime.network_state(runtime.container("sealed-box")).published == []
    runtime.connect("sealed-box", "pub", EndpointRequest())
    assert runtime.network_state(runtime.container("sealed-box")).published != []
