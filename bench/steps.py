"""Where the time of an attach (or a network create/delete) goes, step by step.

Wraps the steps with wall-clock timers (exclusive time: a step's nested timed steps are
subtracted from it, so the rows add up) and runs N attaches through cnm, then the same N bare
attaches (bench/attach.py's pyroute2-only path), or K network creates and deletes. Prints the
mean ms per operation of each step, side by side. The wrappers cost about 2 us per call, so
totals read slightly above bench/attach.py's. A diagnosis aid: it patches internals by name and
skips any that no longer exist. Asserts nothing.

    sudo .venv/bin/python bench/steps.py attach [--n 1000] [--block 100]
    sudo .venv/bin/python bench/steps.py netcreate [--k 50]
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attach as ab
import benchlib as bl
import netcreate as nc
from pyroute2 import IPRoute
from pyroute2.netlink.core import SyncAPI

import cnm.controller.joins as joins_mod
import cnm.controller.sandboxes as sandboxes_mod
import cnm.model as model_mod
import cnm.osl.links as links_mod
import cnm.osl.namespace as namespace_mod
import cnm.sandbox_files as files_mod
import cnm.wiring as wiring_mod
from cnm.controller import Controller, ControllerConfig
from cnm.controller.endpoints import Endpoints
from cnm.controller.files import SandboxFiles
from cnm.controller.joins import Joins
from cnm.ipam.default import DefaultIpam
from cnm.model import IpamRequest, NetworkRequest
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller


class StepTimer:
    """Exclusive wall time per step key, for one phase at a time."""

    def __init__(self) -> None:
        self.self_ns: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[int] = []
        self.enabled = False

    def reset(self) -> None:
        self.self_ns.clear()
        self.calls.clear()

    def timed(self, key: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return fn(*args, **kwargs)
            name = key(*args, **kwargs) if callable(key) else key
            self._stack.append(0)
            start = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter_ns() - start
                children = self._stack.pop()
                self.self_ns[name] += elapsed - children
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1] += elapsed

        return wrapper

    def patch(self, owner: Any, attr: str, key: str | Callable[..., str]) -> None:
        original = getattr(owner, attr, None)
        if original is None:
            print(f"  (not timed: {getattr(owner, '__name__', owner)}.{attr} is gone)")
            return
        setattr(owner, attr, self.timed(key, original))


def _netlink_key(_self: Any, func: Any, *argv: Any, **kwargs: Any) -> str:
    command = argv[0] if argv else "?"
    kind = kwargs.get("kind")
    suffix = f" {kind}" if command == "add" and kind else ""
    return f"netlink {getattr(func, '__name__', '?')} {command}{suffix}"


def _sysctl_key(key: str, *_: Any, **__: Any) -> str:
    which = "conf.default (sandbox)" if ".conf.default." in key else "conf.<link>"
    return f"sysctl write {which}"


def install(timer: StepTimer) -> None:
    """Wrap every step worth a row. Controller-level wrappers get the remainder (Python work
    in the controller, model copies, locks, JSON) as their own exclusive time."""
    timer.patch(IPRoute, "_run_generic_rtnl", _netlink_key)
    timer.patch(IPRoute, "__init__", "netlink socket open (IPRoute())")
    timer.patch(SyncAPI, "close", "netlink socket close")
    timer.patch(namespace_mod, "setns", "setns (enter/leave a namespace)")
    timer.patch(namespace_mod._libc, "unshare", "netns: unshare(CLONE_NEWNET)")
    timer.patch(namespace_mod._libc, "mount", "netns: bind mount")
    timer.patch(namespace_mod._libc, "umount2", "netns: umount")
    timer.patch(namespace_mod, "create_netns", "netns: create_netns rest (file, open)")
    timer.patch(sandboxes_mod, "create_netns", "netns: create_netns rest (file, open)")
    timer.patch(ab, "create_netns", "netns: create_netns rest (file, open)")
    timer.patch(links_mod, "write_sysctl", _sysctl_key)
    timer.patch(ab, "_write_sysctl", _sysctl_key)
    timer.patch(SqliteStore, "commit", "store commit (SQLite)")
    timer.patch(files_mod, "write_in_place", "sandbox files: write")
    timer.patch(SandboxFiles, "write_new", "sandbox files: render + read resolv.conf")
    timer.patch(pathlib.Path, "mkdir", "mkdir")
    timer.patch(DefaultIpam, "request_address", "IPAM request_address")
    timer.patch(DefaultIpam, "release_address", "IPAM release_address")
    timer.patch(DefaultIpam, "request_pool", "IPAM request_pool (incl. route dump)")
    timer.patch(wiring_mod, "reserved_networks", "IPAM reserved networks (other)")
    timer.patch(Endpoints, "joined_to", "controller: endpoints joined to a sandbox")
    timer.patch(Endpoints, "create", "controller: endpoint create (other)")
    timer.patch(Joins, "_join", "controller: _join (other)")
    timer.patch(SandboxFiles, "remove", "sandbox files: remove")
    timer.patch(joins_mod, "replace", "controller: dataclasses.replace (copies)")
    for model in (model_mod.Endpoint, model_mod.Sandbox, model_mod.Network):
        timer.patch(model, "to_json", "controller: record to JSON")
    timer.patch(Controller, "create_sandbox", "controller: create_sandbox (other)")
    timer.patch(Controller, "connect", "controller: connect (other)")
    timer.patch(Controller, "delete_sandbox", "controller: delete_sandbox (other)")
    timer.patch(Controller, "create_network", "controller: create_network (other)")
    timer.patch(Controller, "delete_network", "controller: delete_network (other)")
    timer.patch(ab.BareRunner, "attach", "bare: attach (other)")
    timer.patch(ab, "delete_netns", "netns: delete_netns rest (unlink)")
    timer.patch(sandboxes_mod, "delete_netns", "netns: delete_netns rest (unlink)")
    timer.patch(namespace_mod, "delete_netns", "netns: delete_netns rest (unlink)")


def _snapshot(timer: StepTimer, count: int) -> dict[str, tuple[float, float]]:
    return {key: (ns / 1e6 / count, timer.calls[key] / count) for key, ns in timer.self_ns.items()}


def _print_table(
    title: str, columns: list[tuple[str, dict[str, tuple[float, float]]]], unit: str
) -> None:
    keys = sorted(
        {k for _, data in columns for k in data},
        key=lambda k: -max(data.get(k, (0, 0))[0] for _, data in columns),
    )
    print(f"\n{title} (mean ms per {unit}; calls per {unit} in brackets)")
    print(f"{'step':>44} | " + " | ".join(f"{name:>17}" for name, _ in columns))
    for key in keys:
        cells = []
        for _, data in columns:
            ms, calls = data.get(key, (0.0, 0.0))
            cells.append(f"{ms:7.3f} [{calls:5.2f}]   " if calls else f"{'':>17}")
        print(f"{key:>44} | " + " | ".join(cells))
    print(
        f"{'total':>44} | "
        + " | ".join(f"{sum(v[0] for v in data.values()):7.3f}{'':>10}" for _, data in columns)
    )


Snapshot = dict[str, tuple[float, float]]


def _first_and_last_block(
    timer: StepTimer, n: int, block: int, body: Callable[[int], None], labels: Callable[..., str]
) -> list[tuple[str, Snapshot]]:
    """Run body(0..n-1) and time the first and the last ``block`` iterations separately."""
    out: list[tuple[str, Snapshot]] = []
    first_end = min(block, n)
    last_start = max(n - block, first_end)
    timer.reset()
    timer.enabled = True
    try:
        for i in range(n):
            if i == first_end:
                timer.enabled = False
                out.append((labels(0, first_end), _snapshot(timer, first_end)))
            if i == last_start and i >= first_end:
                timer.reset()
                timer.enabled = True
            body(i)
    finally:
        timer.enabled = False
    if first_end == n:
        out.append((labels(0, n), _snapshot(timer, n)))
    elif last_start < n:
        out.append((labels(last_start, n), _snapshot(timer, n - last_start)))
    return out


def steps_attach(root: Path, n: int, block: int, timer: StepTimer) -> None:
    columns: list[tuple[str, Snapshot]] = []
    teardown: list[tuple[str, Snapshot]] = []

    def attach_label(kind: str) -> Callable[[int, int], str]:
        return lambda start, end: f"{kind} {start + 1}-{end}"

    def teardown_label(kind: str) -> Callable[[int, int], str]:
        return lambda start, end: f"{kind} {n - start}-{n - end + 1}"

    phase_dir = root / "cnm"
    with bl.throwaway_host(phase_dir):
        store = SqliteStore(phase_dir / "store.db")
        controller = build_controller(ControllerConfig(exec_root=phase_dir / "exec"), store)
        try:
            controller.start()
            network = controller.create_network(
                NetworkRequest(
                    name="bench",
                    ipam_config=[IpamRequest(subnet=str(ab.SUBNET), gateway=str(ab.GATEWAY))],
                )
            )
            ids: list[str] = []

            def cnm_attach(_: int) -> None:
                sandbox = controller.create_sandbox()
                ids.append(sandbox.id)
                controller.connect(network.id, sandbox.id)

            columns += _first_and_last_block(timer, n, block, cnm_attach, attach_label("cnm"))
            teardown += _first_and_last_block(
                timer,
                n,
                block,
                lambda _: controller.delete_sandbox(ids.pop()),
                teardown_label("cnm"),
            )
            controller.delete_network(network.id)
        finally:
            ab._close_controller(controller)
            store.close()
    bl.settle(30)
    phase_dir = root / "bare"
    with bl.throwaway_host(phase_dir):
        host = ab.BareRunner(phase_dir, ipv6=False)
        try:
            host.setup()
            columns += _first_and_last_block(
                timer, n, block, lambda i: host.attach(i + 1), attach_label("bare")
            )
            teardown += _first_and_last_block(
                timer, n, block, lambda _: ab.delete_netns(host.paths.pop()), teardown_label("bare")
            )
        finally:
            host.close()
    _print_table(f"Attach, first and last {block} of {n}", columns, "attach")
    _print_table(f"Teardown, first and last {block} torn down of {n}", teardown, "teardown")


def steps_netcreate(root: Path, k: int, timer: StepTimer) -> None:
    phase_dir = root / "netcreate"
    first: dict[str, tuple[float, float]] = {}
    last: dict[str, tuple[float, float]] = {}
    deletes: dict[str, tuple[float, float]] = {}
    tail = min(10, k)
    with bl.throwaway_host(phase_dir):
        store = SqliteStore(phase_dir / "store.db")
        pools = list(nc.DEFAULT_POOLS)
        if k > nc.DOCKER_DEFAULT_USER_NETWORKS:
            pools.append(nc.EXTRA_POOL)
        controller = build_controller(
            ControllerConfig(exec_root=phase_dir / "exec"), store, address_pools=pools
        )
        try:
            controller.start()
            ids = []
            timer.reset()
            timer.enabled = True
            for i in range(k):
                if i == k - tail:
                    timer.enabled = False
                    first = _snapshot(timer, k - tail)
                    timer.reset()
                    timer.enabled = True
                ids.append(controller.create_network(NetworkRequest(name=f"bench-{i}")).id)
            timer.enabled = False
            last = _snapshot(timer, tail)
            timer.reset()
            timer.enabled = True
            for network_id in reversed(ids):
                controller.delete_network(network_id)
            timer.enabled = False
            deletes = _snapshot(timer, k)
        finally:
            timer.enabled = False
            ab._close_controller(controller)
            store.close()
    _print_table(
        f"Network create (first {k - tail} and last {tail} of {k})",
        [(f"create 1-{k - tail}", first), (f"create {k - tail + 1}-{k}", last)],
        "create",
    )
    _print_table(f"Network delete ({k}..1)", [("delete", deletes)], "delete")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["attach", "netcreate"])
    parser.add_argument("--n", type=int, default=1000, help="attaches (default 1000)")
    parser.add_argument("--block", type=int, default=100, help="attach: block size (default 100)")
    parser.add_argument("--k", type=int, default=50, help="networks (default 50)")
    parser.add_argument("--tmpdir", default=None, help=bl.TMPDIR_HELP)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, bind mounts)")
    if not 1 <= args.n <= 1000 or not 1 <= args.k <= 200 or args.block < 1:
        sys.exit("--n must be 1..1000, --k 1..200, --block positive")
    bl.install_signal_handlers()
    links_before = bl.host_link_names()
    timer = StepTimer()
    install(timer)
    with bl.bench_root("cnm-bench-steps-", args.tmpdir) as root:
        print(f"temp dir {root} on {bl.describe_fs(root)}")
        bl.settle(30)
        if args.what == "attach":
            steps_attach(root, args.n, args.block, timer)
        else:
            steps_netcreate(root, args.k, timer)
    print("\n" + bl.leftover_report(root, links_before))


if __name__ == "__main__":
    bl.run_main(main)
