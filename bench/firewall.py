"""Firewall figures (issue 4), every part in a throwaway namespace playing the host.

(a) Per-update cost against scale. With N-1 published ports present, time publishing the Nth:
    the port mapper binding its host port plus the firewall's one-transaction element insert
    (what the bridge driver does per published port), and the firewall insert alone; the same
    for endpoints (the firewall's part of an attach), for N = 10, 100, 1,000, 10,000. In the same
    run and namespace, Docker's iptables way through ``iptables-nft``: one DNAT rule in the nat
    DOCKER chain and one ACCEPT rule in the filter DOCKER chain per mapping, each update a
    process (N-1 rules loaded with iptables-nft-restore first). Each sample adds one and removes
    it again, so every sample sees N-1 present. Prints p50/p95 and the N=10 -> N=max ratio.
(b) Start cost of 32 published ports: create_sandbox + connect (+ publish of 32 ports on the
    default host address: 0.0.0.0 and [::]), interleaved with the same start without ports.
(c) iperf3 TCP throughput from the host into a container: straight to the container address,
    through the published port on the host address and on 127.0.0.1 (both kernel DNAT), and
    on [::1] (the userland relay, for comparison), interleaved, median of the reps.

Prints figures, asserts nothing, and removes what it made (the ``left behind`` line).

    sudo .venv/bin/python bench/firewall.py [--parts abc] [--max-n 10000] [--samples 30]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import benchlib as bl

from cnm.controller import Controller, ControllerConfig
from cnm.firewall.api import EndpointRules, NetworkRules
from cnm.firewall.nftables import NftablesFirewall
from cnm.model import (
    EndpointOptions,
    IpamRequest,
    NetworkRequest,
    PortMapping,
    PortRequest,
    SandboxOptions,
)
from cnm.osl.links import HostNetwork
from cnm.osl.namespace import create_netns, delete_netns
from cnm.portmap.mapper import PortMapper
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

BRIDGE = "br-benchfw0000"
FILL_BATCH = 1000
HOST_PORT_BASE = 20000  # filled ports: 20000..29998; the timed one: 31000+
TIMED_PORT = 31000
HOST4, OUTSIDE4 = "198.18.0.1", "198.18.0.2"


def _ms(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


def _container_ip(i: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.128.0.2")) + i)


def _stats(values: list[float]) -> str:
    return f"p50 {bl.fmt(bl.percentile(values, 50))} ms  p95 {bl.fmt(bl.percentile(values, 95))} ms"


def _raise_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ----------------------------------------------------------------- (a) per-update cost


def _timed(
    samples: int, add: Callable[[int], object], remove: Callable[[object], None]
) -> list[float]:
    found = []
    for k in range(samples):
        start = time.perf_counter_ns()
        made = add(k)
        found.append(_ms(start))
        remove(made)
    return found


def part_a(phase: Path, ns: list[int], samples: int) -> None:
    print("\n(a) per-update cost against scale (N-1 present, one more added and removed)")
    results: dict[str, dict[int, list[float]]] = {}
    with bl.throwaway_host(phase):
        _raise_open_files()
        host = HostNetwork()
        firewall = NftablesFirewall()
        mapper = PortMapper(host)
        try:
            firewall.add_network(NetworkRules(BRIDGE, (ipaddress.ip_network("10.128.0.0/9"),)))
            firewall.start()
            present: list[PortMapping] = []
            endpoints = 0
            for n in ns:
                while len(present) < n - 1:
                    count = min(FILL_BATCH, n - 1 - len(present))
                    made: list[PortMapping] = []
                    for i in range(len(present), len(present) + count):
                        request = PortRequest("tcp", 80, "0.0.0.0", HOST_PORT_BASE + i)
                        made += mapper.map(
                            [request], ipv4=_container_ip(i), ipv6=None, default_host_ip=""
                        )
                    firewall.add_ports(BRIDGE, made)
                    present += made
                if endpoints < n - 1:
                    for i in range(endpoints, n - 1):
                        firewall.add_endpoint(_endpoint(i))
                    endpoints = n - 1

                def publish(k: int, n: int = n) -> list[PortMapping]:
                    request = PortRequest("tcp", 80, "0.0.0.0", TIMED_PORT + k)
                    mappings = mapper.map(
                        [request], ipv4=_container_ip(n), ipv6=None, default_host_ip=""
                    )
                    firewall.add_ports(BRIDGE, mappings)
                    return mappings

                def unpublish(mappings: object) -> None:
                    firewall.remove_ports(mappings)  # type: ignore[arg-type]
                    mapper.unmap(mappings)  # type: ignore[arg-type]

                def insert(k: int, n: int = n) -> list[PortMapping]:
                    mapping = PortMapping(
                        "tcp",
                        ipaddress.ip_address("0.0.0.0"),
                        TIMED_PORT + k,
                        _container_ip(n),
                        80,
                    )
                    firewall.add_ports(BRIDGE, [mapping])
                    return [mapping]

                series = {
                    "publish (mapper + firewall)": _timed(samples, publish, unpublish),
                    "firewall insert only": _timed(
                        samples,
                        insert,
                        lambda m: firewall.remove_ports(m),  # type: ignore[arg-type]
                    ),
                    "endpoint (firewall)": _timed(
                        samples,
                        lambda k: firewall.add_endpoint(_endpoint(100_000 + k)) or 100_000 + k,
                        lambda k: firewall.remove_endpoint(_endpoint(k).port),  # type: ignore[arg-type]
                    ),
                }
                for name, values in series.items():
                    results.setdefault(name, {})[n] = values
                print(f"  N={n:>6}: " + "; ".join(f"{k} {_stats(v)}" for k, v in series.items()))
        finally:
            firewall.close()
            mapper.close()
            host.close()
    # Docker's way, in a namespace of its own: no cnm monitor there to share the CPUs with.
    if shutil.which("iptables-nft") and shutil.which("iptables-nft-restore"):
        with bl.throwaway_host(phase / "iptables"):
            _docker_way(ns, samples, results)
    else:
        print("  iptables-nft is not installed: no comparison with Docker's iptables way")
    _summary(ns, results)


def _endpoint(i: int) -> EndpointRules:
    return EndpointRules(BRIDGE, f"vb{i:011x}", (_container_ip(i),))


def _iptables(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, input=stdin, text=True, check=True, capture_output=True)


def _docker_rules(i: int, host_port: int) -> tuple[str, str]:
    ip = _container_ip(i)
    return (
        f"-A DOCKER ! -i {BRIDGE} -p tcp -m tcp --dport {host_port} -j DNAT "
        f"--to-destination {ip}:80",
        f"-A DOCKER -d {ip}/32 ! -i {BRIDGE} -o {BRIDGE} -p tcp -m tcp --dport 80 -j ACCEPT",
    )


def _docker_way(ns: list[int], samples: int, results: dict[str, dict[int, list[float]]]) -> None:
    """Docker's iptables backend: rules per mapping, one iptables-nft process per rule."""
    iptables = ["iptables-nft", "-w"]
    _iptables(*iptables, "-t", "nat", "-N", "DOCKER")
    _iptables(*iptables, "-t", "filter", "-N", "DOCKER")
    loaded = 0
    samples = max(5, samples // 3)
    for n in ns:
        nat, filt = [], []
        for i in range(loaded, n - 1):
            dnat, accept = _docker_rules(i, HOST_PORT_BASE + i)
            nat.append(dnat)
            filt.append(accept)
        if nat:
            script = (
                "*nat\n" + "\n".join(nat) + "\nCOMMIT\n*filter\n" + "\n".join(filt) + "\nCOMMIT\n"
            )
            _iptables("iptables-nft-restore", "--noflush", stdin=script)
        loaded = n - 1

        def add(k: int, n: int = n) -> int:
            dnat, accept = _docker_rules(n, TIMED_PORT + k)
            _iptables(*iptables, "-t", "nat", *dnat.split())
            _iptables(*iptables, "-t", "filter", *accept.split())
            return k

        def remove(k: object, n: int = n) -> None:
            dnat, accept = _docker_rules(n, TIMED_PORT + int(k))  # type: ignore[call-overload]
            _iptables(*iptables, "-t", "nat", *dnat.replace("-A", "-D", 1).split())
            _iptables(*iptables, "-t", "filter", *accept.replace("-A", "-D", 1).split())

        values = _timed(samples, add, remove)
        results.setdefault("iptables-nft, rule per mapping (2 processes)", {})[n] = values
        print(f"  N={n:>6}: iptables-nft rule per mapping {_stats(values)}")


def _summary(ns: list[int], results: dict[str, dict[int, list[float]]]) -> None:
    first, last = ns[0], ns[-1]
    print(f"\n  p50 ratio N={first} -> N={last} (target for cnm: within 1.5x)")
    for name, by_n in results.items():
        low = statistics.median(by_n[first])
        high = statistics.median(by_n[last])
        print(f"    {name:<45} {low:8.3f} ms -> {high:8.3f} ms   x{high / low:5.2f}")


# ----------------------------------------------------------------- (b) 32 published ports


@contextmanager
def _controller(phase: Path) -> Iterator[Controller]:
    resolv = phase / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    store = SqliteStore(phase / "cnm.db")
    controller = build_controller(
        ControllerConfig(exec_root=phase / "exec", host_resolv_conf=resolv), store
    )
    controller.start()
    try:
        yield controller
    finally:
        for sandbox in controller.sandboxes():
            controller.delete_sandbox(sandbox.id)
        controller.close()
        store.close()


def part_b(phase: Path, reps: int) -> None:
    print("\n(b) start: create_sandbox + connect, with and without 32 published ports")
    with bl.throwaway_host(phase), _controller(phase) as controller:
        _raise_open_files()
        controller.create_network(
            NetworkRequest(name="bench", ipam_config=[IpamRequest(subnet="10.210.0.0/16")])
        )
        requests = [PortRequest("tcp", 80 + i, host_port=8000 + i) for i in range(32)]
        timings: dict[str, list[float]] = {"no ports": [], "32 ports": []}
        for rep in range(reps * 2 + 2):
            ports = rep % 2 == 1
            start = time.perf_counter_ns()
            sandbox = controller.create_sandbox(SandboxOptions())
            controller.connect("bench", sandbox.id, EndpointOptions())
            if ports:
                controller.publish(sandbox.id, requests)
            elapsed = _ms(start)
            controller.delete_sandbox(sandbox.id)
            if rep >= 2:  # two warm-up starts
                timings["32 ports" if ports else "no ports"].append(elapsed)
        for name, values in timings.items():
            print(f"  {name:<9} {_stats(values)}  (n={len(values)})")
        extra = statistics.median(timings["32 ports"]) - statistics.median(timings["no ports"])
        print(
            f"  32 ports cost p50 +{extra:.2f} ms (target <= +15 ms; Docker 29's nftables: 22.8 s)"
        )


# ----------------------------------------------------------------- (c) iperf3


def _iperf(target: str, port: int, seconds: int, netns: str | None = None) -> float:
    cmd = ["iperf3", "-c", target, "-p", str(port), "-t", str(seconds), "-J"]
    if netns:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20)
    report = json.loads(done.stdout)
    if "error" in report:
        raise RuntimeError(f"iperf3 to {target}:{port}: {report['error']}")
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e9


def part_c(phase: Path, reps: int, seconds: int) -> None:
    print(f"\n(c) iperf3 TCP from the host into a container, {seconds} s per run, {reps} reps")
    if not shutil.which("iperf3"):
        print("  iperf3 is not installed: skipped")
        return
    with bl.throwaway_host(phase), _controller(phase) as controller:
        outside = create_netns(phase / "outside")
        server: subprocess.Popen[bytes] | None = None
        try:
            for args in (
                ["ip", "link", "add", "vout0", "type", "veth", "peer", "name", "vin0", "netns",
                 outside.path],
                ["ip", "addr", "add", f"{HOST4}/24", "dev", "vout0"],
                ["ip", "link", "set", "vout0", "up"],
                ["nsenter", f"--net={outside.path}", "ip", "addr", "add", f"{OUTSIDE4}/24",
                 "dev", "vin0"],
                ["nsenter", f"--net={outside.path}", "ip", "link", "set", "vin0", "up"],
                ["nsenter", f"--net={outside.path}", "ip", "link", "set", "lo", "up"],
            ):  # fmt: skip
                subprocess.run(args, check=True)
            controller.create_network(
                NetworkRequest(name="perf", ipam_config=[IpamRequest(subnet="10.220.0.0/24")])
            )
            sandbox = controller.create_sandbox(SandboxOptions())
            controller.connect("perf", sandbox.id, EndpointOptions())
            controller.publish(sandbox.id, [PortRequest("tcp", 5201, host_port=15201)])
            server = subprocess.Popen(
                ["nsenter", f"--net={sandbox.key}", "iperf3", "-s", "-p", "5201"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
            paths = {
                "direct to the container": ("10.220.0.2", 5201, None),
                "published, host address": (HOST4, 15201, None),
                "published, 127.0.0.1": ("127.0.0.1", 15201, None),
                "published, [::1] (relay)": ("::1", 15201, None),
                "published, from another host": (HOST4, 15201, outside.path),
            }
            found: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(reps):
                for name, (target, port, netns) in paths.items():
                    found[name].append(_iperf(target, port, seconds, netns))
            direct = statistics.median(found["direct to the container"])
            targets = {"published, host address": 90, "published, 127.0.0.1": 80}
            for name, values in found.items():
                value = statistics.median(values)
                note = f" (target >= {targets[name]} %)" if name in targets else ""
                print(
                    f"  {name:<30} {value:6.2f} Gbit/s  {100 * value / direct:5.1f} % of direct"
                    f"{note}   runs: {', '.join(f'{v:.2f}' for v in values)}"
                )
        finally:
            if server is not None:
                server.kill()
                server.wait()
            outside.close()
            delete_netns(outside.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="abc", help="which parts to run (abc)")
    parser.add_argument("--max-n", type=int, default=10_000, help="largest N in (a)")
    parser.add_argument("--samples", type=int, default=30, help="timed updates per N in (a)")
    parser.add_argument("--reps", type=int, default=20, help="starts of each kind in (b)")
    parser.add_argument("--iperf-reps", type=int, default=3, help="runs per path in (c)")
    parser.add_argument("--iperf-seconds", type=int, default=4, help="seconds per run in (c)")
    parser.add_argument("--tmpdir", default=None, help=bl.TMPDIR_HELP)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes network namespaces")
    bl.install_signal_handlers()
    links_before = bl.host_link_names()
    ns = [n for n in (10, 100, 1_000, 10_000, 100_000) if n <= args.max_n]
    with bl.bench_root("cnm-bench-firewall-", args.tmpdir) as root:
        print(f"temp dir {root} ({bl.describe_fs(root)}); {os.cpu_count()} CPUs")
        if "a" in args.parts:
            part_a(root / "a", ns, args.samples)
        if "b" in args.parts:
            part_b(root / "b", args.reps)
        if "c" in args.parts:
            part_c(root / "c", args.iperf_reps, args.iperf_seconds)
    print(bl.leftover_report(root, links_before))


if __name__ == "__main__":
    bl.run_main(main)
