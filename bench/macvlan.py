"""macvlan attach against bridge attach, in the same run, with the controller in-process in a
throwaway host namespace.

The host namespace gets a "LAN": a veth whose host end is the macvlan parent and whose other
end sits in an "outside" namespace (made under the run's temp dir, removed with it). One
controller holds a user bridge network (10.201.0.0/16) and a macvlan network on the parent
(10.202.0.0/16). For i = 1..N, alternately, an attach is timed on each: ``create_sandbox()``
+ ``connect(network, sandbox)``, as bench/attach.py times it; so load from elsewhere on this
shared machine hits both alike. Then every sandbox is deleted, alternately again, timed.

The kernel floor of the macvlan child is timed beside it, in the same host namespace: a child
born inside a namespace (IFLA_NET_NS_FD in the RTM_NEWLINK), against a child made in the host
and moved into the namespace afterwards (the way libnetwork's driver does it), K of each.

Prints p50/p95 per driver and per step, and the difference. Asserts nothing.

    sudo .venv/bin/python bench/macvlan.py [--n 200] [--k 50]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import benchlib as bl
from pyroute2 import IPRoute

from cnm.controller import Controller, ControllerConfig
from cnm.model import IpamRequest, NetworkRequest
from cnm.osl.namespace import create_netns
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

PARENT = "lan0"


def _ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def _line(label: str, values: list[float]) -> str:
    return (
        f"{label:>34}: p50 {bl.fmt(bl.percentile(values, 50))}  "
        f"p95 {bl.fmt(bl.percentile(values, 95))}  (n={len(values)})"
    )


def _make_lan(root: Path) -> None:
    """The parent in the calling thread's namespace, its peer in an outside namespace."""
    outside = create_netns(root / "outside")
    try:
        with IPRoute(groups=0) as ipr:
            ipr.link(
                "add",
                ifname=PARENT,
                kind="veth",
                peer={"ifname": "wire0", "net_ns_fd": outside.fd},
            )
            ipr.link("set", index=ipr.link_lookup(ifname=PARENT)[0], state="up")
    finally:
        outside.close()


def attach_both(root: Path, n: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {
        key: []
        for key in (
            "bridge attach",
            "macvlan attach",
            "bridge connect",
            "macvlan connect",
            "bridge delete",
            "macvlan delete",
        )
    }
    with contextlib.ExitStack() as stack:
        store = SqliteStore(root / "store.db")
        stack.callback(store.close)
        controller: Controller = build_controller(ControllerConfig(exec_root=root / "exec"), store)
        stack.callback(controller.close)
        controller.start()
        controller.create_network(
            NetworkRequest(name="br", ipam_config=[IpamRequest(subnet="10.201.0.0/16")])
        )
        controller.create_network(
            NetworkRequest(
                name="mv",
                driver="macvlan",
                options={"parent": PARENT},
                ipam_config=[IpamRequest(subnet="10.202.0.0/16")],
            )
        )
        sandboxes: list[tuple[str, str]] = []
        for _ in range(n):
            for driver, network in (("bridge", "br"), ("macvlan", "mv")):
                t0 = time.perf_counter_ns()
                sandbox = controller.create_sandbox()
                t1 = time.perf_counter_ns()
                controller.connect(network, sandbox.id)
                figures[f"{driver} attach"].append(_ms(t0))
                figures[f"{driver} connect"].append(_ms(t1))
                sandboxes.append((driver, sandbox.id))
        for driver, sandbox_id in sandboxes:
            t0 = time.perf_counter_ns()
            controller.delete_sandbox(sandbox_id)
            figures[f"{driver} delete"].append(_ms(t0))
    return figures


def kernel_floor(root: Path, k: int) -> dict[str, list[float]]:
    """A macvlan child born in a namespace against one made in the host and moved there."""
    figures: dict[str, list[float]] = {"born inside": [], "made, then moved": []}
    target = create_netns(root / "floor")
    try:
        with IPRoute(groups=0) as ipr:
            parent = ipr.link_lookup(ifname=PARENT)[0]
            for i in range(k):
                t0 = time.perf_counter_ns()
                ipr.link(
                    "add",
                    ifname=f"in{i}",
                    kind="macvlan",
                    link=parent,
                    macvlan_mode="bridge",
                    net_ns_fd=target.fd,
                )
                figures["born inside"].append(_ms(t0))
                t0 = time.perf_counter_ns()
                ipr.link("add", ifname=f"mv{i}", kind="macvlan", link=parent, macvlan_mode="bridge")
                index = ipr.link_lookup(ifname=f"mv{i}")[0]
                ipr.link("set", index=index, net_ns_fd=target.fd, ifname=f"moved{i}")
                figures["made, then moved"].append(_ms(t0))
    finally:
        target.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="attaches per driver (default 200)")
    parser.add_argument("--k", type=int, default=50, help="children per kernel-floor way")
    parser.add_argument("--tmpdir", default=None, help=bl.TMPDIR_HELP)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, bind mounts)")
    if not 1 <= args.n <= 2000 or not 1 <= args.k <= 500:
        sys.exit("--n must be 1..2000 and --k 1..500")
    bl.install_signal_handlers()
    links_before = bl.host_link_names()
    print(
        f"macvlan bench: N={args.n} attaches per driver, interleaved; K={args.k}; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}, kernel {os.uname().release}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    with bl.bench_root("cnm-bench-macvlan-", args.tmpdir) as root:
        print(f"temp dir {root} on {bl.describe_fs(root)}")
        with bl.throwaway_host(root / "run"):
            _make_lan(root / "run")
            figures = attach_both(root / "run", args.n)
            floor = kernel_floor(root / "run", args.k)
    print("\ncreate_sandbox + connect, ms")
    for driver in ("bridge", "macvlan"):
        print(_line(f"{driver} attach", figures[f"{driver} attach"]))
    for driver in ("bridge", "macvlan"):
        print(_line(f"{driver} connect alone", figures[f"{driver} connect"]))
    for driver in ("bridge", "macvlan"):
        print(_line(f"{driver} delete_sandbox", figures[f"{driver} delete"]))
    difference = bl.percentile(figures["macvlan attach"], 50) - bl.percentile(
        figures["bridge attach"], 50
    )
    print(f"\nmacvlan attach p50 - bridge attach p50: {difference:+.2f} ms")
    print("\nkernel floor: one macvlan child into a namespace, ms")
    for way, values in floor.items():
        print(_line(way, values))
    print("\n" + bl.leftover_report(root, links_before))


if __name__ == "__main__":
    bl.run_main(main)
