"""Network create and delete latency, with the controller in-process in a throwaway host netns.

Per rep: create K user bridge networks back to back with no subnet given (the default IPAM
carves each from the default address pools: bridge + IPAM pool + gateway address + store
record), timing each ``create_network``; then delete them in reverse order, timing each
``delete_network`` (store record, bridge link, pool release).

For reference, the bare kernel work is timed alongside, in its own throwaway host namespace and
interleaved network by network: through pyroute2 only, a bridge added, looked up, given the
same gateway address and set up; deleted with one RTM_DELLINK. A bridge delete waits for the
kernel (RCU) to let go of the device, so the bare delete is the floor for any synchronous delete.

Prints p50/p95 per rep and over all reps, against the targets and Docker 20.10's figures from
../shared/peers/RESULTS.md. Asserts nothing.

Docker's default pools (172.17-172.31 as /16s, then 192.168.0.0/16 as /20s) hold 30 user
networks next to the default bridge, as in Docker. When K is larger, networks 31..K come from an
extra pool appended after them (10.212.0.0/16 in /24s), so the allocator still walks the full
default list first; the output says how many came from where.

    sudo .venv/bin/python bench/netcreate.py [--k 50] [--reps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchlib as bl
from pyroute2 import IPRoute

from cnm.controller import Controller, ControllerConfig
from cnm.ipam.default import DEFAULT_POOLS, PoolSpec
from cnm.model import NetworkRequest
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

TARGET_CREATE_P50_MS = 15.0
TARGET_DELETE_P50_MS = 30.0
EXTRA_POOL = PoolSpec(ipaddress.IPv4Network("10.212.0.0/16"), 24)
DOCKER_DEFAULT_USER_NETWORKS = 30  # 14 x /16 (172.18-172.31) + 16 x /20 (192.168.0.0/16)


@dataclass
class Rep:
    creates: list[float] = field(default_factory=list)
    deletes: list[float] = field(default_factory=list)
    bare_creates: list[float] = field(default_factory=list)
    bare_deletes: list[float] = field(default_factory=list)
    subnets: list[str] = field(default_factory=list)


def _close_controller(controller: Controller) -> None:
    """Close the controller's netlink socket too: it would keep the host namespace alive."""
    links = getattr(getattr(controller.host, "_local", None), "links", None)
    if links is not None:
        links.ipr.close()
    controller.close()


def _ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def _bare_create(ipr: IPRoute, i: int, subnet: str) -> int:
    network = ipaddress.ip_network(subnet)
    name = f"br-bare{i}"
    ipr.link("add", ifname=name, kind="bridge")
    index = ipr.link("get", ifname=name)[0]["index"]
    ipr.addr(
        "add",
        index=index,
        address=str(network.network_address + 1),
        prefixlen=network.prefixlen,
        broadcast=str(network.broadcast_address),
    )
    ipr.link("set", index=index, state="up")
    return index


def run_rep(rep_dir: Path, k: int) -> Rep:
    """Create K networks then delete them in reverse, cnm and bare interleaved."""
    pools = list(DEFAULT_POOLS) + ([EXTRA_POOL] if k > DOCKER_DEFAULT_USER_NETWORKS else [])
    rep = Rep()
    with contextlib.ExitStack() as stack:
        cnm_ns = stack.enter_context(bl.host_namespace(rep_dir / "cnm"))
        bare_ns = stack.enter_context(bl.host_namespace(rep_dir / "bare"))
        with bl.inside(bare_ns):
            ipr = IPRoute(groups=0)
        stack.callback(ipr.close)
        with bl.inside(cnm_ns):
            store = SqliteStore(rep_dir / "cnm" / "store.db")
            stack.callback(store.close)
            controller = build_controller(
                ControllerConfig(exec_root=rep_dir / "cnm" / "exec"),
                store,
                address_pools=pools,
            )
            stack.callback(_close_controller, controller)
            controller.start()
        ids: list[str] = []
        bridges: list[int] = []
        try:
            for i in range(k):
                with bl.inside(cnm_ns):
                    t0 = time.perf_counter_ns()
                    network = controller.create_network(NetworkRequest(name=f"bench-{i}"))
                    rep.creates.append(_ms(t0))
                ids.append(network.id)
                rep.subnets.append(network.ipv4_pools[0].subnet)
                with bl.inside(bare_ns):
                    t0 = time.perf_counter_ns()
                    bridges.append(_bare_create(ipr, i, rep.subnets[-1]))
                    rep.bare_creates.append(_ms(t0))
        finally:
            while ids or bridges:
                if ids:
                    with bl.inside(cnm_ns):
                        t0 = time.perf_counter_ns()
                        controller.delete_network(ids.pop())
                        rep.deletes.append(_ms(t0))
                if bridges:
                    with bl.inside(bare_ns):
                        t0 = time.perf_counter_ns()
                        ipr.link("del", index=bridges.pop())
                        rep.bare_deletes.append(_ms(t0))
    return rep


def _line(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:>24}: -"
    return (
        f"{label:>24}: p50 {bl.percentile(values, 50):7.2f}  p95 {bl.percentile(values, 95):7.2f}"
        f"  min {min(values):7.2f}  max {max(values):7.2f}  (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k", type=int, default=50, help="networks per rep (default 50)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--settle-max", type=float, default=30, help="max seconds to wait for a quiet CPU"
    )
    parser.add_argument("--tmpdir", default=None, help=bl.TMPDIR_HELP)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, bind mounts)")
    if not 1 <= args.k <= 200 or not 1 <= args.reps <= 20:
        sys.exit("--k must be 1..200 and --reps 1..20")
    bl.install_signal_handlers()
    links_before = bl.host_link_names()
    print(
        f"netcreate bench: K={args.k} bridge networks from the default pools, {args.reps} reps; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}, kernel {os.uname().release}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    total = Rep()
    with bl.bench_root("cnm-bench-netcreate-", args.tmpdir) as root:
        print(f"temp dir {root} on {bl.describe_fs(root)}")
        for number in range(1, args.reps + 1):
            waited, busy = bl.settle(args.settle_max)
            rep = run_rep(root / f"rep{number}", args.k)
            for name in ("creates", "deletes", "bare_creates", "bare_deletes"):
                getattr(total, name).extend(getattr(rep, name))
            extra = args.k - DOCKER_DEFAULT_USER_NETWORKS
            print(
                f"\nrep {number} (quiet-CPU wait {waited:.1f} s, then {busy:.0f} % busy); "
                f"subnets {rep.subnets[0]} .. {rep.subnets[-1]}"
                + (f" ({extra} from the extra pool {EXTRA_POOL.base})" if extra > 0 else "")
            )
            print(_line("cnm create_network ms", rep.creates))
            print(_line("first 5", rep.creates[:5]))
            print(_line("last 5", rep.creates[-5:]))
            print(_line("bare bridge create ms", rep.bare_creates))
            print(_line("cnm delete_network ms", rep.deletes))
            print(_line("bare bridge delete ms", rep.bare_deletes))
    docker = bl.peer_netcreate_baseline()
    create50 = bl.percentile(total.creates, 50)
    delete50 = bl.percentile(total.deletes, 50)
    print(f"\nAll reps ({args.reps} x {args.k})")
    print(_line("cnm create_network ms", total.creates))
    print(_line("bare bridge create ms", total.bare_creates))
    print(_line("cnm delete_network ms", total.deletes))
    print(_line("bare bridge delete ms", total.bare_deletes))
    print(
        f"\ntargets: create p50 <= {TARGET_CREATE_P50_MS:g} ms: "
        f"{'met' if create50 <= TARGET_CREATE_P50_MS else 'MISSED'} ({create50:.2f}); "
        f"delete p50 <= {TARGET_DELETE_P50_MS:g} ms: "
        f"{'met' if delete50 <= TARGET_DELETE_P50_MS else 'MISSED'} ({delete50:.2f}; the bare "
        f"kernel delete alone: {bl.percentile(total.bare_deletes, 50):.2f})"
    )
    print(
        "Docker 20.10 (API), baseline from RESULTS.md, not measured in this run: "
        f"create p50 {docker['create_p50_ms']:g} ms, p95 {docker['create_p95_ms']:g} ms; "
        f"rm p50 {docker['rm_p50_ms']:g} ms, p95 {docker['rm_p95_ms']:g} ms"
    )
    print("\n" + bl.leftover_report(root, links_before))


if __name__ == "__main__":
    bl.run_main(main)
