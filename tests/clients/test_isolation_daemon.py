"""Isolation and loopback publishing through the daemon, as issue 10's attacker tried them: six
containers on three networks, every cross-network pair (24 ordered pairs) blocked and every
same-network pair open; a port published on 127.0.0.1 reached from the host and from no
container, neighbour or not. (tests/firewall proves the same of the controller in-process,
packet by packet; this keeps the daemon's whole path honest.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
from docker.models.containers import Container

from tests.support.daemon import Daemon

NETWORKS = {"iso-a": "10.81.0.0/24", "iso-b": "10.82.0.0/24", "iso-c": "10.83.0.0/24"}
LOOPBACK_PORT = 18095
# Each source tries every target at once and prints "open IP" or "shut IP" (busybox's wget -T
# crashes: timeout bounds it instead).
PROBE = (
    "for ip in $TARGETS; do "
    "(timeout 2 wget -q -O /dev/null http://$ip/hostname 2>/dev/null && echo open $ip || echo shut $ip) & "
    "done; wait"
)


@pytest.fixture
def client(daemon: Daemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=daemon.host)
    yield client
    client.close()


@pytest.fixture
def servers(
    client: docker.DockerClient, busybox: str, names: Callable[[str], str]
) -> Iterator[dict[str, tuple[str, Container]]]:
    """Two web servers on each network: name -> (network, container)."""
    made: dict[str, tuple[str, Container]] = {}
    try:
        for network, subnet in NETWORKS.items():
            pool = docker.types.IPAMPool(subnet=subnet)
            client.networks.create(network, ipam=docker.types.IPAMConfig(pool_configs=[pool]))
            for index in (1, 2):
                name = f"{network}-{index}"
                ports = {"80/tcp": ("127.0.0.1", LOOPBACK_PORT)} if name == "iso-a-1" else {}
                container = client.containers.run(
                    busybox,
                    ["httpd", "-f", "-p", "80", "-h", "/etc"],
                    name=name,
                    network=network,
                    ports=ports,
                    detach=True,
                )
                made[name] = (network, container)
        yield made
    finally:
        for _, container in made.values():
            container.remove(force=True)
        for network in NETWORKS:
            for found in client.networks.list(names=[network]):
                found.remove()


def _address(container: Container, network: str) -> str:
    container.reload()
    return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def _probe(container: Container, targets: list[str]) -> dict[str, bool]:
    result = container.exec_run(["sh", "-c", PROBE], environment={"TARGETS": " ".join(targets)})
    lines = result.output.decode().split()
    return {ip: verdict == "open" for verdict, ip in zip(lines[::2], lines[1::2], strict=True)}


def test_every_cross_network_pair_is_blocked(
    servers: dict[str, tuple[str, Container]],
) -> None:
    addresses = {name: _address(c, net) for name, (net, c) in servers.items()}
    with ThreadPoolExecutor(len(servers)) as pool:
        found = dict(
            zip(
                servers,
                pool.map(
                    lambda name: _probe(
                        servers[name][1], [a for n, a in addresses.items() if n != name]
                    ),
                    servers,
                ),
                strict=True,
            )
        )
    by_address = {a: n for n, a in addresses.items()}
    crossing = [
        (source, by_address[ip])
        for source, seen in found.items()
        for ip in seen
        if servers[source][0] != servers[by_address[ip]][0]
    ]
    assert len(crossing) == 24
    leaks = [(s, t) for s, t in crossing if found[s][addresses[t]]]
    assert leaks == [], f"cross-network pairs that connect: {leaks}"
    closed = [
        (source, by_address[ip])
        for source, seen in found.items()
        for ip, is_open in seen.items()
        if servers[source][0] == servers[by_address[ip]][0] and not is_open
    ]
    assert closed == [], f"same-network pairs that do not connect: {closed}"


def test_a_loopback_published_port_is_the_hosts_alone(
    daemon: Daemon, servers: dict[str, tuple[str, Container]]
) -> None:
    fetch = (
        "import sys, urllib.request\n"
        "print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())\n"
    )
    host = subprocess.run(
        [
            "nsenter",
            f"--net={daemon.netns.path}",
            sys.executable,
            "-c",
            fetch,
            f"http://127.0.0.1:{LOOPBACK_PORT}/hostname",
        ],
        capture_output=True,
        text=True,
        timeout=15,
        check=True,
    )
    owner = servers["iso-a-1"][1]
    owner.reload()
    assert host.stdout.strip() == owner.attrs["Config"]["Hostname"]
    for name in ("iso-a-2", "iso-b-1"):  # a neighbour on the same network, one on another
        network, container = servers[name]
        container.reload()
        gateway = container.attrs["NetworkSettings"]["Networks"][network]["Gateway"]
        seen = _probe(container, [f"127.0.0.1:{LOOPBACK_PORT}", f"{gateway}:{LOOPBACK_PORT}"])
        assert seen == {
            f"127.0.0.1:{LOOPBACK_PORT}": False,
            f"{gateway}:{LOOPBACK_PORT}": False,
        }, name
