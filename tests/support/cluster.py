"""Simulated cluster hosts for multi-host tests: network namespaces joined by an underlay.

Why: overlay networking spans hosts, and a test needs several of them with a real network
between them and a real etcd, on one machine, without touching its interfaces. The shape:

    underlay namespace:  bridge "underlay" (no address)
                           |-- u-h1    <veth>  eth0 10.77.0.1/24   host h1
                           |-- u-h2    <veth>  eth0 10.77.0.2/24   host h2
                           '-- u-etcd0 <veth>  eth0 10.77.0.100/24 etcd member etcd0

Every host and every etcd member is a namespace of its own whose only link, besides loopback,
is eth0 on the underlay; etcd listens on its underlay address. Processes enter a host with
``nsenter --net=<host.netns>`` (``host.run``), threads with ``host.namespace.entered()``.
Leaving the ``with`` block, also on failure, kills every etcd member by its PID and deletes
every namespace, which removes the bridge and the veths with them.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from cnm.osl.namespace import NetNamespace, delete_netns
from tests.support.etcd import PEER_PORT, EtcdServer
from tests.support.netns import make_test_netns

UNDERLAY = ipaddress.ip_network("10.77.0.0/24")
UNDERLAY_BRIDGE = "underlay"
UNDERLAY_LINK = "eth0"  # each host's link to the underlay
FIRST_ETCD_OFFSET = 100  # etcd members at .100, .101, ...; hosts at .1, .2, ...
MAX_HOSTS = FIRST_ETCD_OFFSET - 1


@dataclass
class SimHost:
    """One simulated machine: a namespace with ``eth0`` on the underlay."""

    name: str
    namespace: NetNamespace
    address: str  # its underlay address, e.g. 10.77.0.1

    @property
    def netns(self) -> str:
        return self.namespace.path

    def run(self, *command: str, check: bool = True, timeout: float = 20) -> str:
        """Run a command inside this host; returns its standard output."""
        done = subprocess.run(
            ["nsenter", f"--net={self.netns}", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{command} on {self.name}: {done.stderr.strip()}")
        return done.stdout

    def route_to(self, address: str) -> dict[str, Any]:
        """The kernel's route from this host to ``address`` (``ip -j route get``)."""
        routes: list[dict[str, Any]] = json.loads(self.run("ip", "-j", "route", "get", address))
        return routes[0]

    def check_underlay_route(self, address: str) -> None:
        """Fail unless traffic to ``address`` would leave through this host's underlay link
        from its underlay address: call it before sending anything to ``address``."""
        route = self.route_to(address)
        if (route.get("dev"), route.get("prefsrc")) != (UNDERLAY_LINK, self.address):
            raise AssertionError(f"{self.name} would not reach {address} on the underlay: {route}")


class SimulatedCluster:
    """Hosts and etcd members on one underlay; use it as a context manager. etcd keeps its
    data and logs under ``data_root``."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self.hosts: list[SimHost] = []
        self.etcd: list[EtcdServer] = []
        self._underlay: NetNamespace | None = None
        self._nodes: list[SimHost] = []  # hosts and etcd members

    def __enter__(self) -> SimulatedCluster:
        self._underlay = make_test_netns("underlay")
        self._underlay_run("ip", "link", "add", UNDERLAY_BRIDGE, "type", "bridge")
        self._underlay_run("ip", "link", "set", UNDERLAY_BRIDGE, "up")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _underlay_run(self, *command: str) -> None:
        assert self._underlay is not None, "use SimulatedCluster in a with block"
        subprocess.run(
            ["nsenter", f"--net={self._underlay.path}", *command],
            check=True,
            capture_output=True,
            timeout=20,
        )

    def _attach(self, name: str, offset: int) -> SimHost:
        """A new namespace wired to the underlay with address ``.offset``."""
        assert self._underlay is not None, "use SimulatedCluster in a with block"
        port = f"u-{name}"
        if len(port) > 15:
            raise ValueError(f"name {name!r} is too long for a link name")
        node = SimHost(name, make_test_netns(name), str(UNDERLAY[offset]))
        self._nodes.append(node)
        veth = ["ip", "link", "add", port, "type", "veth", "peer", "name", UNDERLAY_LINK]
        self._underlay_run(*veth, "netns", node.netns)
        self._underlay_run("ip", "link", "set", port, "master", UNDERLAY_BRIDGE, "up")
        node.run("ip", "addr", "add", f"{node.address}/{UNDERLAY.prefixlen}", "dev", UNDERLAY_LINK)
        node.run("ip", "link", "set", UNDERLAY_LINK, "up")
        return node

    def add_host(self) -> SimHost:
        """One more host: h1 at 10.77.0.1, h2 at 10.77.0.2, ..."""
        number = len(self.hosts) + 1
        if number > MAX_HOSTS:
            raise ValueError(f"at most {MAX_HOSTS} simulated hosts")
        host = self._attach(f"h{number}", number)
        self.hosts.append(host)
        return host

    def start_etcd(self, members: int = 1) -> list[EtcdServer]:
        """Start an etcd cluster of ``members`` (1 or 3) on the underlay and wait until every
        member is healthy."""
        if self.etcd:
            raise RuntimeError("this simulated cluster already has etcd")
        if members not in (1, 3):
            raise ValueError("an etcd cluster of 1 or 3 members")
        nodes = [self._attach(f"etcd{i}", FIRST_ETCD_OFFSET + i) for i in range(members)]
        initial_cluster = ",".join(f"{n.name}=http://{n.address}:{PEER_PORT}" for n in nodes)
        for node in nodes:
            server = EtcdServer(
                name=node.name,
                netns=node.netns,
                address=node.address,
                data_dir=self.data_root / node.name,
                initial_cluster=initial_cluster,
            )
            self.etcd.append(server)
            server.start()
        for server in self.etcd:
            server.wait_healthy()
        return self.etcd

    @property
    def namespace_paths(self) -> list[str]:
        """Every namespace this cluster made: hosts, etcd members, the underlay."""
        underlay = [self._underlay.path] if self._underlay is not None else []
        return [node.netns for node in self._nodes] + underlay

    @property
    def etcd_endpoints(self) -> list[str]:
        return [server.endpoint for server in self.etcd]

    @property
    def cluster_store(self) -> str:
        """The ``--cluster-store`` value naming every etcd member."""
        return "etcd://" + ",".join(self.etcd_endpoints)

    def etcd_leader(self) -> int:
        """The index of the member that is the raft leader now."""
        leader = next(s.status()["leader"] for s in self.etcd if s.process is not None)
        for index, server in enumerate(self.etcd):
            if server.process is not None and server.status()["header"]["member_id"] == leader:
                return index
        raise AssertionError(f"no running etcd member is the leader {leader}")

    def kill_etcd(self, member: int) -> EtcdServer:
        """SIGKILL one etcd member (a crash); ``restart_etcd`` brings it back."""
        server = self.etcd[member]
        server.kill()
        return server

    def restart_etcd(self, member: int) -> EtcdServer:
        """Start a killed member again on its data directory and wait until it is healthy."""
        server = self.etcd[member]
        server.start()
        server.wait_healthy()
        return server

    def close(self) -> None:
        """Kill every etcd member, then delete every namespace; goes on past failures and
        raises the first one at the end."""
        failures: list[BaseException] = []
        for server in self.etcd:
            try:
                server.kill()
            except Exception as error:
                failures.append(error)
        namespaces = [node.namespace for node in self._nodes]
        if self._underlay is not None:
            namespaces.append(self._underlay)
        for namespace in namespaces:  # the bridge and the veths go with them
            try:
                namespace.close()
                delete_netns(namespace.path)
            except Exception as error:
                failures.append(error)
        self._nodes.clear()
        self._underlay = None
        if failures:
            raise failures[0]
