"""Attach cost against scale: cnm against the bare kernel work, in one run.

cnm: the controller runs in-process with the main thread inside a throwaway "host" namespace,
on one user bridge network (10.201.0.0/16). For i = 1..N it times ``create_sandbox()`` +
``connect(network, sandbox)`` (netns, endpoint, IPAM, veth with its peer born in the sandbox,
address, default route, sandbox files, store writes) with i-1 sandboxes already attached; then
``delete_sandbox`` for N..1.

bare: in its own fresh throwaway host namespace, the same kernel work through pyroute2 and
nothing else: a netns (cnm.osl.namespace.create_netns: unshare in the thread, bind mount, setns
back), IPv6 off in it, loopback up, a veth with its peer born in the netns and its host end on
the bridge (IPv6 off on the host end too), address, default route; teardown unmounts the netns.

By default the two alternate sandbox by sandbox (``--mode interleaved``; each keeps its own host
namespace and bridge, so each sees exactly its own i-1 sandboxes), so that load from elsewhere
on this shared machine hits both alike; ``--mode sequential`` runs cnm alone, then bare alone.
``--ipv6-bare`` adds a bare run with IPv6 left on (alone, after the others).

Prints p50/p95 per block, the totals, cnm p50 minus bare p50 per block against the targets,
the process RSS, and the peers' baselines from ../shared/peers/RESULTS.md. Asserts nothing.

    sudo .venv/bin/python bench/attach.py [--n 1000] [--block 100] [--mode sequential]
        [--ipv6-bare] [--tmpdir /dev/shm] [--store-tmpdir /var/tmp] [--peer-docker]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchlib as bl
from pyroute2 import IPRoute

from cnm.controller import Controller, ControllerConfig
from cnm.model import IpamRequest, NetworkRequest
from cnm.osl.namespace import NetNamespace, create_netns, delete_netns
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

SUBNET = ipaddress.IPv4Network("10.201.0.0/16")
GATEWAY = SUBNET.network_address + 1
MAX_BRIDGE_PORTS = 1023
TARGET_DIFF_MS = 3.0
TARGET_FIRST_BLOCK_MS = 10.0
TARGET_RSS_IDLE_MB = 60.0
TARGET_RSS_1000_MB = 120.0


@dataclass
class Phase:
    """Per-sandbox latencies (ms) of one phase, in attach order; teardown in teardown order."""

    name: str
    attach: list[float] = field(default_factory=list)
    split_a: list[float] = field(default_factory=list)  # cnm: create_sandbox; bare: netns
    split_b: list[float] = field(default_factory=list)  # cnm: connect; bare: the rest
    teardown: list[float] = field(default_factory=list)
    attach_wall_s: float = 0.0
    teardown_wall_s: float = 0.0
    error: str | None = None
    rss: dict[str, float] = field(default_factory=dict)
    settle: tuple[float, float] = (0.0, 0.0)
    foreign_cpu: list[float] = field(default_factory=list)  # others' CPU % per block


def _ms(start_ns: int, end_ns: int) -> float:
    return (end_ns - start_ns) / 1e6


def _close_controller(controller: Controller) -> None:
    """Close the controller's netlink socket and namespace handle: an open socket keeps the
    throwaway host namespace alive in the kernel after its mount is gone."""
    links = getattr(getattr(controller.host, "_local", None), "links", None)
    if links is not None:
        links.ipr.close()
    controller.close()


class CnmRunner:
    """The controller in-process, one user bridge network; an attach is create_sandbox +
    connect, a teardown is delete_sandbox."""

    def __init__(self, phase_dir: Path, store_dir: Path | None = None) -> None:
        self.phase = Phase("cnm")
        self.dir = phase_dir
        self.store_path = (store_dir or phase_dir) / "store.db"
        self.sandboxes: list[str] = []
        self.store: SqliteStore | None = None
        self.controller: Controller | None = None
        self.network_id = ""

    def setup(self) -> None:
        self.phase.rss["before controller"] = bl.rss_mb()
        self.store = SqliteStore(self.store_path)
        self.controller = build_controller(
            ControllerConfig(exec_root=self.dir / "exec"), self.store
        )
        self.controller.start()
        network = self.controller.create_network(
            NetworkRequest(
                name="bench",
                ipam_config=[IpamRequest(subnet=str(SUBNET), gateway=str(GATEWAY))],
            )
        )
        self.network_id = network.id
        self.phase.rss["controller idle (started, network made)"] = bl.rss_mb()

    def attach(self, i: int) -> None:
        assert self.controller is not None
        t0 = time.perf_counter_ns()
        sandbox = self.controller.create_sandbox()
        t1 = time.perf_counter_ns()
        self.sandboxes.append(sandbox.id)
        self.controller.connect(self.network_id, sandbox.id)
        t2 = time.perf_counter_ns()
        self.phase.attach.append(_ms(t0, t2))
        self.phase.split_a.append(_ms(t0, t1))
        self.phase.split_b.append(_ms(t1, t2))

    def attached(self) -> None:
        self.phase.rss[f"{len(self.phase.attach)} attached"] = bl.rss_mb()

    def remaining(self) -> int:
        return len(self.sandboxes)

    def teardown_next(self) -> None:
        assert self.controller is not None
        sandbox_id = self.sandboxes.pop()
        t0 = time.perf_counter_ns()
        self.controller.delete_sandbox(sandbox_id)
        self.phase.teardown.append(_ms(t0, time.perf_counter_ns()))

    def close(self) -> None:
        if self.controller is not None:
            try:
                if self.network_id and not self.sandboxes:
                    self.phase.rss["after teardown"] = bl.rss_mb()
                    self.controller.delete_network(self.network_id)
            finally:
                _close_controller(self.controller)
        if self.store is not None:
            self.store.close()


def _write_sysctl(key: str, value: str) -> None:
    """A sysctl of the calling thread's namespace (a function so bench/steps.py can time it)."""
    Path("/proc/sys", *key.split(".")).write_text(value)


class BareRunner:
    """The bare kernel work of one attach, through pyroute2 only (and create_netns)."""

    def __init__(self, phase_dir: Path, ipv6: bool) -> None:
        self.phase = Phase("bare, IPv6 on" if ipv6 else "bare")
        self.dir = phase_dir / "netns"
        self.ipv6 = ipv6
        self.paths: list[str] = []
        self.ipr: IPRoute | None = None
        self.bridge = 0

    def setup(self) -> None:
        self.ipr = IPRoute(groups=0)
        self.ipr.link("add", ifname="br-bare", kind="bridge")
        self.bridge = self.ipr.link("get", ifname="br-bare")[0]["index"]
        self.ipr.addr(
            "add",
            index=self.bridge,
            address=str(GATEWAY),
            prefixlen=SUBNET.prefixlen,
            broadcast=str(SUBNET.broadcast_address),
        )
        self.ipr.link("set", index=self.bridge, state="up")

    def attach(self, i: int) -> None:
        assert self.ipr is not None
        t0 = time.perf_counter_ns()
        path = self.dir / f"sb{i}"
        ns = create_netns(path)
        self.paths.append(str(path))
        t1 = time.perf_counter_ns()
        try:
            with ns.entered():
                if not self.ipv6:
                    _write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
                sandbox = IPRoute(groups=0)
            try:
                sandbox.link("set", index=1, state="up")
                host_name = f"vb{i:x}"
                self.ipr.link(
                    "add",
                    ifname=host_name,
                    kind="veth",
                    master=self.bridge,
                    peer={"ifname": "eth0", "net_ns_fd": ns.fd},
                )
                host_index = self.ipr.link("get", ifname=host_name)[0]["index"]
                if not self.ipv6:
                    _write_sysctl(f"net.ipv6.conf.{host_name}.disable_ipv6", "1")
                self.ipr.link("set", index=host_index, state="up")
                peer_index = sandbox.link("get", ifname="eth0")[0]["index"]
                sandbox.addr(
                    "add",
                    index=peer_index,
                    address=str(SUBNET.network_address + 1 + i),
                    prefixlen=SUBNET.prefixlen,
                    broadcast=str(SUBNET.broadcast_address),
                )
                sandbox.link("set", index=peer_index, state="up")
                sandbox.route("add", dst="0.0.0.0/0", gateway=str(GATEWAY), oif=peer_index)
            finally:
                sandbox.close()
        finally:
            ns.close()
        t2 = time.perf_counter_ns()
        self.phase.attach.append(_ms(t0, t2))
        self.phase.split_a.append(_ms(t0, t1))
        self.phase.split_b.append(_ms(t1, t2))

    def attached(self) -> None:
        pass

    def remaining(self) -> int:
        return len(self.paths)

    def teardown_next(self) -> None:
        path = self.paths.pop()
        t0 = time.perf_counter_ns()
        delete_netns(path)
        self.phase.teardown.append(_ms(t0, time.perf_counter_ns()))

    def close(self) -> None:
        if self.ipr is not None:
            self.ipr.close()


Runner = CnmRunner | BareRunner


def run_phases(root: Path, runners: list[Runner], n: int, block: int, budget_s: float) -> None:
    """Run the runners side by side: each in its own throwaway host namespace, sandbox i of
    every runner attached before sandbox i+1 of any (the order alternates with i), then torn
    down the same way. With one runner this is simply that runner alone."""
    with contextlib.ExitStack() as stack:
        hosts = []
        for index, runner in enumerate(runners):
            ns = stack.enter_context(bl.host_namespace(root / f"{index}-{runner.phase.name}"))
            hosts.append(ns)
            stack.callback(_close_inside, ns, runner)
            with bl.inside(ns):
                runner.setup()
        pairs = list(zip(hosts, runners, strict=True))
        error: str | None = None
        gauge = bl.ForeignCpu()
        t_start = time.monotonic()
        for i in range(1, n + 1):
            if i % block == 1 or block == 1:
                gauge.lap()
            for ns, runner in pairs if i % 2 else reversed(pairs):
                try:
                    with bl.inside(ns):
                        runner.attach(i)
                except Exception as err:  # report how far we got, then tear down what exists
                    error = f"{runner.phase.name}: attach {i} failed: {err}"
                    break
            if error is None and time.monotonic() - t_start > budget_s:
                error = f"budget of {budget_s:.0f} s used up at N={i}"
            if i % block == 0 or i == n or error is not None:
                foreign = gauge.lap()
                for runner in runners:
                    runner.phase.foreign_cpu.append(foreign)
            if error is not None:
                break
        wall = time.monotonic() - t_start
        for ns, runner in pairs:
            runner.phase.attach_wall_s = wall
            runner.phase.error = error
            with bl.inside(ns):
                runner.attached()
        t_start = time.monotonic()
        step = 0
        while any(runner.remaining() for runner in runners):
            for ns, runner in pairs if step % 2 else reversed(pairs):
                if runner.remaining():
                    with bl.inside(ns):
                        runner.teardown_next()
            step += 1
        for runner in runners:
            runner.phase.teardown_wall_s = time.monotonic() - t_start


def _close_inside(ns: NetNamespace, runner: Runner) -> None:
    with bl.inside(ns):
        runner.close()


# ----------------------------------------------------------------- report


def _block_label(start: int, end: int) -> str:
    return f"{start + 1}-{end}"


def _foreign(cnm: Phase, bare: Phase, index: int) -> str:
    """Others' CPU % during a block: one figure when interleaved, cnm/bare when sequential."""
    values = [p.foreign_cpu[index] if index < len(p.foreign_cpu) else math.nan for p in (cnm, bare)]
    if values[0] == values[1] or math.isnan(values[1]):
        return f"{values[0]:.0f}"
    return f"{values[0]:.0f}/{values[1]:.0f}"


def print_attach(phases: list[Phase], block: int) -> None:
    cnm, bare = phases[0], phases[1]
    extra = phases[2:]
    n = max(len(p.attach) for p in phases)
    print(f"\nAttach latency per block of {block} (ms; sandbox i attached with i-1 already there)")
    header = f"{'sandboxes':>11} | {'cnm p50':>7} {'cnm p95':>7} | {'bare p50':>8} {'bare p95':>8}"
    for p in extra:
        header += f" | {p.name + ' p50':>17}"
    header += f" | {'cnm-bare p50':>12} | others' CPU % | target"
    print(header)
    for index, (start, end) in enumerate(bl.blocks(n, block)):
        c = cnm.attach[start:end]
        b = bare.attach[start:end]
        c50, b50 = bl.percentile(c, 50), bl.percentile(b, 50)
        diff = c50 - b50
        line = (
            f"{_block_label(start, end):>11} | {bl.fmt(c50)} {bl.fmt(bl.percentile(c, 95))} | "
            f"{bl.fmt(b50, 8)} {bl.fmt(bl.percentile(b, 95), 8)}"
        )
        for p in extra:
            line += f" | {bl.fmt(bl.percentile(p.attach[start:end], 50), 17)}"
        verdict = "met" if diff <= TARGET_DIFF_MS else "MISSED"
        target = f"diff <= {TARGET_DIFF_MS:g}: {verdict}"
        if index == 0:
            first = "met" if c50 <= TARGET_FIRST_BLOCK_MS else "MISSED"
            target += f"; cnm p50 <= {TARGET_FIRST_BLOCK_MS:g}: {first}"
        print(f"{line} | {bl.fmt(diff, 12)} | {_foreign(cnm, bare, index):>13} | {target}")
    print(
        "  (others' CPU %: CPU time of everything but this process during the block, incl. "
        "kernel workers freeing namespaces; high = noisy)"
    )
    print("\nWhere it goes, p50 per block (ms):")
    print(
        f"{'sandboxes':>11} | {'cnm create_sandbox':>18} {'cnm connect':>11} | "
        f"{'bare netns':>10} {'bare veth+addr+route':>20}"
    )
    for start, end in bl.blocks(n, block):
        print(
            f"{_block_label(start, end):>11} | "
            f"{bl.fmt(bl.percentile(cnm.split_a[start:end], 50), 18)} "
            f"{bl.fmt(bl.percentile(cnm.split_b[start:end], 50), 11)} | "
            f"{bl.fmt(bl.percentile(bare.split_a[start:end], 50), 10)} "
            f"{bl.fmt(bl.percentile(bare.split_b[start:end], 50), 20)}"
        )


def print_teardown(phases: list[Phase], block: int) -> None:
    n = max(len(p.teardown) for p in phases)
    top = n  # sandboxes made, including one whose attach failed (it is torn down too)
    print(f"\nTeardown latency per block of {block} (ms; in teardown order, highest sandbox first)")
    print(
        f"{'sandboxes':>11} | "
        + " | ".join(f"{p.name + ' p50':>17} {p.name + ' p95':>17}" for p in phases)
    )
    for start, end in bl.blocks(n, block):
        label = f"{top - start}-{top - end + 1}"
        cells = " | ".join(
            f"{bl.fmt(bl.percentile(p.teardown[start:end], 50), 17)} "
            f"{bl.fmt(bl.percentile(p.teardown[start:end], 95), 17)}"
            for p in phases
        )
        print(f"{label:>11} | {cells}")


def print_totals(phases: list[Phase]) -> None:
    print("\nTotals")
    for p in phases:
        count = len(p.attach)
        mean = sum(p.attach) / count if count else float("nan")
        print(
            f"  {p.name:>14}: {count} attached in {sum(p.attach) / 1000:.2f} s "
            f"(wall {p.attach_wall_s:.2f} s, mean {mean:.2f} ms, p50 "
            f"{bl.percentile(p.attach, 50):.2f} ms, p95 {bl.percentile(p.attach, 95):.2f} ms); "
            f"torn down in {sum(p.teardown) / 1000:.2f} s (p50 "
            f"{bl.percentile(p.teardown, 50):.2f} ms); quiet-CPU wait before: "
            f"{p.settle[0]:.1f} s (then {p.settle[1]:.0f} % busy)"
        )
        if p.error:
            print(f"  {p.name:>14}: stopped early: {p.error}")


def print_rss(cnm: Phase) -> None:
    print(
        "\nRSS (VmRSS of this bench process = the controller in-process: Python, cnm, pyroute2, "
        "SQLite;\n     the daemon adds the aiohttp API server on top, so its figures are higher)"
    )
    for label, value in cnm.rss.items():
        print(f"  {label:>40}: {value:6.1f} MB")
    print(
        f"  targets for the daemon: idle <= {TARGET_RSS_IDLE_MB:g} MB, 1,000 attached <= "
        f"{TARGET_RSS_1000_MB:g} MB (dockerd: 73 MB idle, 258 MB with 500 attached)"
    )


def print_baselines(cnm: Phase) -> None:
    baselines = bl.peer_attach_baselines()
    print(
        "\nPeers: baseline from RESULTS.md, not measured in this run "
        f"({bl.RESULTS_MD}; mean ms per block of 50, sandboxes 1..500)"
    )
    width = max(len(v) for v in baselines.values())
    labels = [f"{50 * k + 1}-{50 * (k + 1)}" for k in range(width)]
    print(f"{'':>20} | " + " ".join(f"{label:>7}" for label in labels))
    for peer, values in baselines.items():
        print(f"{peer + ' (baseline)':>20} | " + " ".join(bl.fmt(v, 7, 0) for v in values))
    ours = []
    for k in range(width):
        chunk = cnm.attach[50 * k : 50 * (k + 1)]
        ours.append(sum(chunk) / len(chunk) if chunk else float("nan"))
    print(f"{'cnm (this run)':>20} | " + " ".join(bl.fmt(v, 7, 1) for v in ours))
    print(
        "  summary: netavark 1.4 ~55 ms per attach, Docker 20.10 ~100 ms (API connect), "
        "CNI bridge 30 ms growing to 90 ms by the 500th"
    )


# ----------------------------------------------------------------- peer docker


def find_dockerd() -> str | None:
    for candidate in ("/usr/bin/dockerd", "/usr/sbin/dockerd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _dockerd_running() -> bool:
    try:
        pid = int(Path("/tmp/pb-dockerd.pid").read_text().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return Path("/var/run/docker.sock").exists()


def run_peer_docker(n: int, peers_dir: Path = bl.PEERS_DIR) -> None:
    """Run the peer lab's docker attach bench (starts and stops dockerd with its own scripts;
    a dockerd that was already running is used and left running)."""
    print(f"\nPeer docker, measured in this run: {peers_dir}/bench-attach.py --peer docker --n {n}")
    dockerd = find_dockerd()
    if dockerd is None:
        print("  skipped: dockerd is not installed (/usr/bin/dockerd, /usr/sbin/dockerd)")
        return
    already_up = _dockerd_running()
    started = False
    try:
        if not already_up:
            started = True
            subprocess.run([str(peers_dir / "docker-start.sh")], check=True, timeout=180)
        result = subprocess.run(
            [
                "/usr/bin/python3",
                str(peers_dir / "bench-attach.py"),
                "--peer",
                "docker",
                "--n",
                str(n),
                "--reps",
                "1",
                "--budget",
                "300",
                "--settle-max",
                "60",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            print(f"  failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
            return
        text = result.stdout
        start = 0 if text.startswith("{") else text.index("\n{") + 1
        summary = json.loads(text[start : text.rindex("}") + 1])
        for key in (
            "attach_first10_p50_ms",
            "attach_last10_p50_ms",
            "attach_all_p50_ms",
            "attach_wall_s",
            "teardown_all_p50_ms",
            "net_create_ms",
            "net_rm_ms",
        ):
            if key in summary:
                print(f"  docker {key}: {summary[key]}")
        for line in text.splitlines():
            if line.startswith("wrote"):
                print(f"  {line}")
    except (subprocess.SubprocessError, OSError, ValueError) as err:
        print(f"  failed: {err}")
    finally:
        if started:
            with bl.signals_deferred():
                subprocess.run([str(peers_dir / "docker-stop.sh")], timeout=180, check=False)
        elif already_up:
            print("  dockerd was already running before this bench; left running")


# ----------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="sandboxes to attach (default 1000)")
    parser.add_argument("--block", type=int, default=100, help="block size for p50/p95")
    parser.add_argument(
        "--ipv6-bare",
        action="store_true",
        help="also run the bare work with IPv6 left on the veths (shows the chatter growth)",
    )
    parser.add_argument(
        "--mode",
        choices=["interleaved", "sequential"],
        default="interleaved",
        help="interleaved (default): cnm and bare alternate sandbox by sandbox, each in its own "
        "host netns, so load from elsewhere hits both alike; sequential: cnm alone, then bare",
    )
    parser.add_argument(
        "--budget", type=float, default=300, help="max seconds of attaching per run"
    )
    parser.add_argument(
        "--settle-max", type=float, default=60, help="max seconds to wait for a quiet CPU"
    )
    parser.add_argument(
        "--peer-docker",
        action="store_true",
        help="when dockerd is installed, also run the peer lab's docker attach bench",
    )
    parser.add_argument("--peer-docker-n", type=int, default=100, help="N for --peer-docker")
    parser.add_argument("--tmpdir", default=None, help=bl.TMPDIR_HELP)
    parser.add_argument(
        "--store-tmpdir",
        default=None,
        help="put the SQLite store in a temp dir under this dir instead (e.g. /var/tmp with "
        "--tmpdir /dev/shm: exec root on tmpfs, store on disk, as /run/cnm and /var/lib/cnm "
        "are on a usual host)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, bind mounts)")
    if args.n < 1 or args.block < 1:
        sys.exit("--n and --block must be positive")
    if args.n > MAX_BRIDGE_PORTS:
        print(
            f"note: a Linux bridge takes at most {MAX_BRIDGE_PORTS} ports; attach "
            f"{MAX_BRIDGE_PORTS + 1} will fail with 'Exchange full' and the phase stops there"
        )
    bl.install_signal_handlers()
    links_before = bl.host_link_names()
    print(
        f"attach bench: N={args.n}, block {args.block}, bridge network {SUBNET}, IPv6 off on "
        f"the veths; {time.strftime('%Y-%m-%d %H:%M:%S')}, kernel {os.uname().release}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    with contextlib.ExitStack() as dirs:
        root = dirs.enter_context(bl.bench_root("cnm-bench-attach-", args.tmpdir))
        store_dir = root
        if args.store_tmpdir:
            store_dir = dirs.enter_context(bl.bench_root("cnm-bench-store-", args.store_tmpdir))
        print(
            f"temp dir {root} on {bl.describe_fs(root)} (exec root, netns mounts); "
            f"store in {store_dir} on {bl.describe_fs(store_dir)}"
        )
        cnm = CnmRunner(root / "cnm", store_dir)
        bare = BareRunner(root / "bare", ipv6=False)
        if args.mode == "interleaved":
            waited = bl.settle(args.settle_max)
            print(
                f"running cnm and bare interleaved ... (waited {waited[0]:.1f} s for a quiet CPU)"
            )
            cnm.phase.settle = bare.phase.settle = waited
            run_phases(root / "both", [cnm, bare], args.n, args.block, args.budget)
        else:
            for runner in (cnm, bare):
                runner.phase.settle = bl.settle(args.settle_max)
                print(f"running {runner.phase.name} alone ...", flush=True)
                run_phases(root / runner.phase.name, [runner], args.n, args.block, args.budget)
        phases = [cnm.phase, bare.phase]
        if args.ipv6_bare:
            bare6 = BareRunner(root / "bare6", ipv6=True)
            bare6.phase.settle = bl.settle(args.settle_max)
            print("running bare with IPv6 on, alone ...", flush=True)
            run_phases(root / "bare6", [bare6], args.n, args.block, args.budget)
            phases.append(bare6.phase)
    print_attach(phases, args.block)
    print_teardown(phases, args.block)
    print_totals(phases)
    print_rss(phases[0])
    print_baselines(phases[0])
    if args.peer_docker:
        run_peer_docker(args.peer_docker_n)
    print("\n" + bl.leftover_report(root, links_before))


if __name__ == "__main__":
    bl.run_main(main)
