"""Overlay networks across simulated hosts, through real daemons and a real etcd.

Hosts are network namespaces on an underlay bridge (the tests' ``SimulatedCluster``), each
running ``cnm daemon --cluster-store ... --cluster-advertise ...``; containers are busybox
``sleep``s under runc, made through the Engine API. Probes are ICMP echoes sent from inside a
container's namespace by a thread of this process (no exec in the path, so what is timed is the
network's convergence, not a client's start-up).

(a) Convergence: a container started on host A, with a static address, and a prober in a
    container on host B pinging that address every millisecond from the moment A's start call
    returns: the time from that return to B's first echo reply. p50/p99 over --convergence.
    (A prober that asked before the address existed would time its own ARP retry, 1 s, not the
    network: the kernel resends an unanswered ARP request only once a second.)
(b) Scale: --hosts hosts x --per-host containers on one overlay; full mesh checked by pinging
    every container's address from one container on each host; each daemon's RSS; the cost
    of the last endpoint (its start on its host, and until every other host's VXLAN FDB has
    it).
(c) Throughput is bench/overlay.py's (the driver against a hand-built VXLAN pair).
(d) A three-member etcd, its leader killed halfway through --churn container creates on two
    hosts: the creates that failed, and the endpoints lost (a running container whose record
    is missing from etcd, or that the other host cannot reach).

Run as root from the project root: ``.venv/bin/python bench/overlay_cluster.py``.
Everything made lives in namespaces deleted on exit (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchlib as bl

from cnm.osl.namespace import NetNamespace
from cnm.store.etcd import EtcdStore, parse_cluster_store
from tests.support.cluster import SimHost, SimulatedCluster
from tests.support.daemon import Daemon
from tests.support.runtime import BUSYBOX_TAR

SUBNET_PREFIX = "10.100"  # one /16 overlay: 10.100.<host>.<n>


@dataclass
class Node:
    sim: SimHost
    daemon: Daemon

    def api(self, method: str, path: str, body: object = None) -> dict[str, object]:
        reply = self.daemon.request(method, path, body)
        if reply.status >= 300:
            raise RuntimeError(f"{method} {path}: {reply.status} {reply.body[:300]!r}")
        data = json.loads(reply.body) if reply.body else {}
        return data if isinstance(data, dict) else {"list": data}

    def stop(self) -> None:
        """Remove every container (a stopped daemon leaves them running), then stop."""
        if self.daemon.process is not None:
            listed = self.api("GET", "/containers/json?all=1").get("list", [])
            assert isinstance(listed, list)
            for container in listed:
                self.daemon.request("DELETE", f"/containers/{container['Id']}?force=1")
        self.daemon.stop()

    def fdb(self, network_id: str) -> str:
        """``bridge fdb show`` of the network's VXLAN device, in its namespace on this host."""
        namespace = self.daemon.root / "exec" / "overlay-netns" / network_id
        return self.sim.run(
            "nsenter", f"--net={namespace}", "bridge", "fdb", "show", "dev", "vxlan0"
        )

    def rss_mb(self) -> float:
        assert self.daemon.process is not None
        with open(f"/proc/{self.daemon.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def start_node(cluster: SimulatedCluster, sim: SimHost, root: Path) -> Node:
    daemon = Daemon(
        root,
        sim.namespace,
        [
            "--cluster-store",
            cluster.cluster_store,
            "--cluster-advertise",
            sim.address,
            "--cluster-store-opt",
            "discovery.ttl=10",
            "--cluster-store-opt",
            "discovery.heartbeat=2",
            "--log-level",
            "info",
        ],
    )
    daemon.start()
    node = Node(sim, daemon)
    reply = daemon.request(
        "POST",
        "/images/create?fromSrc=-&repo=busybox&tag=local",
        BUSYBOX_TAR.read_bytes(),
        {"Content-Type": "application/x-tar"},
    )
    if reply.status != 200:
        raise RuntimeError(f"image import: {reply.body[:200]!r}")
    return node


@contextlib.contextmanager
def roomy_neighbour_tables() -> Iterator[None]:
    """Simulated hosts share one kernel, and with it one ARP table for every namespace
    (gc_thresh3 1,024 entries by default): a mesh check of hundreds of containers would overflow
    it where real hosts, each with its own table, would not. Raised for the check, then put
    back as they were."""
    keys = [f"/proc/sys/net/ipv4/neigh/default/gc_thresh{n}" for n in (1, 2, 3)]
    before = [Path(key).read_text() for key in keys]
    try:
        for key, value in zip(keys, ("4096", "16384", "32768"), strict=True):
            Path(key).write_text(value)
        yield
    finally:
        for key, value in zip(keys, before, strict=True):
            Path(key).write_text(value)


def run_container(node: Node, name: str, network: str, address: str | None = None) -> float:
    """Create and start a ``sleep``; returns the monotonic time the start call returned."""
    endpoint: dict[str, object] = {}
    if address:
        endpoint["IPAMConfig"] = {"IPv4Address": address}
    node.api(
        "POST",
        f"/containers/create?name={name}",
        {
            "Image": "busybox:local",
            "Cmd": ["sleep", "3600"],
            "HostConfig": {"NetworkMode": network},
            "NetworkingConfig": {"EndpointsConfig": {network: endpoint}},
        },
    )
    node.api("POST", f"/containers/{name}/start")
    return time.monotonic()


def container_netns(node: Node, name: str) -> str:
    data = node.api("GET", f"/containers/{name}/json")
    settings = data["NetworkSettings"]
    assert isinstance(settings, dict)
    return str(settings["SandboxKey"])


def container_ip(node: Node, name: str, network: str) -> str:
    data = node.api("GET", f"/containers/{name}/json")
    settings = data["NetworkSettings"]
    assert isinstance(settings, dict)
    return str(settings["Networks"][network]["IPAddress"])  # type: ignore[index]


# ----------------------------------------------------------------- ICMP from inside a sandbox


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def _echo(identifier: int, sequence: int) -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, identifier, sequence)
    return struct.pack("!BBHHH", 8, 0, _checksum(header), identifier, sequence)


def in_namespace(path: str, work: Callable[[], object]) -> object:
    """Run ``work`` in a thread inside the namespace at ``path``; return its result."""
    result: list[object] = []
    errors: list[BaseException] = []

    def body() -> None:
        namespace = NetNamespace(path)
        try:
            with namespace.entered():
                result.append(work())
        except BaseException as error:
            errors.append(error)
        finally:
            namespace.close()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def first_reply(address: str, deadline: float, stop: threading.Event) -> float | None:
    """Echo requests every millisecond until one is answered; its arrival time."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.settimeout(0.001)
    identifier = os.getpid() & 0xFFFF
    try:
        sequence = 0
        while time.monotonic() < deadline and not stop.is_set():
            sequence = (sequence + 1) & 0xFFFF
            try:
                sock.sendto(_echo(identifier, sequence), (address, 0))
                packet, source = sock.recvfrom(2048)
            except OSError:  # no route yet, a full buffer, or no reply within the millisecond
                continue
            if source[0] == address and packet[20] == 0:  # an echo reply from it
                return time.monotonic()
        return None
    finally:
        sock.close()


class Probe(threading.Thread):
    """``first_reply`` to an address, from inside a sandbox, in a thread of its own."""

    def __init__(self, sandbox: str, address: str) -> None:
        super().__init__()
        self.sandbox, self.address = sandbox, address
        self.replied: float | None = None

    def run(self) -> None:
        stop = threading.Event()
        self.replied = in_namespace(  # type: ignore[assignment]
            self.sandbox, lambda: first_reply(self.address, time.monotonic() + 10, stop)
        )

    def result(self) -> float | None:
        self.join()
        return self.replied


def reachable(addresses: list[str], timeout: float = 2.0) -> list[str]:
    """The addresses that answer an echo: sent in small batches (each new address costs an
    ARP exchange first, and the kernel queues only a few packets per unresolved neighbour),
    replies collected into a large buffer, the silent ones asked again up to five times."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.settimeout(0.05)
    answered: set[str] = set()

    def collect(until: float) -> None:
        while time.monotonic() < until and len(answered) < len(addresses):
            try:
                packet, source = sock.recvfrom(2048)
            except OSError:
                continue
            if packet[20] == 0:
                answered.add(source[0])

    try:
        for _attempt in range(5):
            pending = [a for a in addresses if a not in answered]
            for start in range(0, len(pending), 32):
                for index, address in enumerate(pending[start : start + 32]):
                    with contextlib.suppress(OSError):
                        sock.sendto(_echo(os.getpid() & 0xFFFF, start + index), (address, 0))
                collect(time.monotonic() + 0.05)
            collect(time.monotonic() + timeout)
            if len(answered) == len(addresses):
                break
    finally:
        sock.close()
    return sorted(answered)


# ----------------------------------------------------------------- phases


def convergence(root: Path, count: int) -> None:
    print(f"\n(a) convergence: container started on A -> first echo reply from B, n={count}")
    root.mkdir(parents=True, exist_ok=True)
    with SimulatedCluster(root) as cluster:
        cluster.start_etcd()
        a_sim, b_sim = cluster.add_host(), cluster.add_host()
        a_sim.check_underlay_route(b_sim.address)
        a, b = start_node(cluster, a_sim, root / "a"), start_node(cluster, b_sim, root / "b")
        try:
            a.api(
                "POST",
                "/networks/create",
                {
                    "Name": "ov",
                    "Driver": "overlay",
                    "IPAM": {"Config": [{"Subnet": f"{SUBNET_PREFIX}.0.0/16"}]},
                },
            )
            run_container(b, "prober", "ov", f"{SUBNET_PREFIX}.200.1")
            prober = container_netns(b, "prober")
            times: list[float] = []
            for i in range(count):
                address = f"{SUBNET_PREFIX}.1.{10 + i}"
                started = run_container(a, f"c{i}", "ov", address)
                probe = Probe(prober, address)
                probe.start()
                replied = probe.result()
                if replied is not None:
                    times.append(max(0.0, (replied - started) * 1000))
                else:
                    print(f"  c{i}: no reply within 10 s")
            print(
                f"  p50 {bl.fmt(bl.percentile(times, 50))} ms   p99 {bl.fmt(bl.percentile(times, 99))}"
                f" ms   max {bl.fmt(max(times) if times else float('nan'))} ms"
                f"   ({len(times)}/{count} converged; target p99 <= 100 ms)"
            )
        finally:
            a.stop()
            b.stop()
            bl.unmount_namespaces_under(root)


def scale(root: Path, hosts: int, per_host: int) -> None:
    total = hosts * per_host
    root.mkdir(parents=True, exist_ok=True)
    print(f"\n(b) scale: {hosts} hosts x {per_host} containers on one overlay ({total})")
    with SimulatedCluster(root) as cluster:
        cluster.start_etcd()
        sims = [cluster.add_host() for _ in range(hosts)]
        sims[0].check_underlay_route(sims[-1].address)
        nodes: list[Node] = []
        try:
            for sim in sims:
                nodes.append(start_node(cluster, sim, root / sim.name))
            idle = [n.rss_mb() for n in nodes]
            network = nodes[0].api(
                "POST",
                "/networks/create",
                {
                    "Name": "ov",
                    "Driver": "overlay",
                    "IPAM": {"Config": [{"Subnet": f"{SUBNET_PREFIX}.0.0/16"}]},
                },
            )
            network_id = str(network["Id"])
            started = time.monotonic()
            errors: list[BaseException] = []

            def fill(index: int, node: Node, count: int) -> None:
                try:
                    for n in range(count):
                        run_container(
                            node, f"h{index}c{n}", "ov", f"{SUBNET_PREFIX}.{index + 1}.{n + 2}"
                        )
                except BaseException as error:
                    errors.append(error)

            threads = [
                threading.Thread(
                    target=fill, args=(i, node, per_host - (1 if i == hosts - 1 else 0))
                )
                for i, node in enumerate(nodes)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
            print(f"  {total - 1} containers started in {time.monotonic() - started:.1f} s")
            last = nodes[-1]
            mac_of_last: list[str] = []
            before = time.monotonic()
            run_container(
                last,
                f"h{hosts - 1}c{per_host - 1}",
                "ov",
                f"{SUBNET_PREFIX}.{hosts}.{per_host + 1}",
            )
            start_ms = (time.monotonic() - before) * 1000
            data = last.api("GET", f"/containers/h{hosts - 1}c{per_host - 1}/json")
            mac_of_last.append(str(data["NetworkSettings"]["Networks"]["ov"]["MacAddress"]))  # type: ignore[index]
            programmed: dict[str, float] = {}
            while len(programmed) < hosts - 1 and time.monotonic() - before < 30:
                for node in nodes[:-1]:
                    if node.sim.name in programmed:
                        continue
                    if mac_of_last[0] in node.fdb(network_id):
                        programmed[node.sim.name] = (time.monotonic() - before) * 1000
                time.sleep(0.005)
            print(
                f"  the {total}th endpoint: start {start_ms:.1f} ms on its host; in every other"
                f" host's FDB after {max(programmed.values(), default=float('nan')):.1f} ms"
                f" ({len(programmed)}/{hosts - 1} hosts)"
            )
            counts = [per_host - (1 if i == hosts - 1 else 0) for i in range(hosts)]
            addresses = [
                f"{SUBNET_PREFIX}.{i + 1}.{n + 2}" for i in range(hosts) for n in range(counts[i])
            ] + [f"{SUBNET_PREFIX}.{hosts}.{per_host + 1}"]
            failures = 0
            with roomy_neighbour_tables():
                for i, node in enumerate(nodes):
                    probe = container_netns(node, f"h{i}c0")
                    answered = in_namespace(probe, lambda: reachable(addresses))
                    assert isinstance(answered, list)
                    failures += len(addresses) - len(answered)
            print(f"  full mesh: {hosts} x {len(addresses)} echoes, {failures} unanswered")
            loaded = [n.rss_mb() for n in nodes]
            print(
                f"  daemon RSS per host: idle {bl.fmt(min(idle), 5, 1)}-{bl.fmt(max(idle), 5, 1)} MB,"
                f" with {per_host} containers and {total - per_host} peers"
                f" {bl.fmt(min(loaded), 5, 1)}-{bl.fmt(max(loaded), 5, 1)} MB"
            )
        finally:
            for node in nodes:
                node.stop()
            bl.unmount_namespaces_under(root)


def etcd_failure(root: Path, churn: int) -> None:
    print(f"\n(d) three-member etcd, leader killed halfway through {churn} creates on 2 hosts")
    root.mkdir(parents=True, exist_ok=True)
    with SimulatedCluster(root) as cluster:
        cluster.start_etcd(3)
        sims = [cluster.add_host(), cluster.add_host()]
        nodes = [start_node(cluster, sim, root / sim.name) for sim in sims]
        try:
            nodes[0].api("POST", "/networks/create", {"Name": "ov", "Driver": "overlay"})
            failed = 0
            made: list[tuple[Node, str]] = []
            for i in range(churn):
                if i == churn // 2:
                    cluster.kill_etcd(cluster.etcd_leader())
                node = nodes[i % 2]
                name = f"d{i}"
                try:
                    run_container(node, name, "ov")
                    made.append((node, name))
                except RuntimeError as error:
                    failed += 1
                    print(f"  {name}: {str(error)[:160]}")
                    node.daemon.request("DELETE", f"/containers/{name}?force=1")
            time.sleep(1)
            with sims[0].namespace.entered():
                store = EtcdStore(parse_cluster_store(cluster.cluster_store))
                try:
                    recorded = {
                        json.loads(e.value).get("ipv4_address", "").split("/")[0]
                        for e in store.list("endpoint/")
                    }
                finally:
                    store.close()
            lost = 0
            for node, name in made:
                address = container_ip(node, name, "ov")
                other = nodes[1] if node is nodes[0] else nodes[0]
                probe = container_netns(other, f"d{0 if other is nodes[0] else 1}")
                if address not in recorded or not in_namespace(
                    probe, lambda a=address: reachable([a])
                ):  # type: ignore[misc]
                    lost += 1
            print(f"  creates failed: {failed} of {churn}; endpoints lost: {lost} (target 0)")
        finally:
            for node in nodes:
                node.stop()
            bl.unmount_namespaces_under(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--convergence", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--per-host", type=int, default=50)
    parser.add_argument("--churn", type=int, default=20)
    parser.add_argument("--only", choices=["a", "b", "d"], action="append")
    args = parser.parse_args()
    phases = set(args.only or ["a", "b", "d"])
    with tempfile.TemporaryDirectory(prefix="cnm-bench-cluster-") as tmp:
        root = Path(tmp)
        if "a" in phases:
            convergence(root / "a", args.convergence)
        if "b" in phases:
            scale(root / "b", args.hosts, args.per_host)
        if "d" in phases:
            etcd_failure(root / "d", args.churn)


if __name__ == "__main__":
    bl.run_main(main)
