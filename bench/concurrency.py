"""Concurrency under load (issue 10): 16 clients, each in a loop of run (create + start), connect,
disconnect and rm -f, for a bounded time against one daemon; p50/p99/max per operation.

A real daemon runs inside a throwaway namespace playing the host; the busybox fixture is
imported; the clients share two user networks (every run joins the first, every connect the
second), which is the contended case: one network's endpoints change under its lock. At the end
the invariants are checked (no container, sandbox, endpoint or veth left, the networks empty)
and a deadlock would show as a client that never finishes (each call has a 60 s timeout).

    sudo .venv/bin/python bench/concurrency.py [--clients 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

from benchlib import bench_root, fmt, host_namespace, percentile, run_main
from containers import call, check, daemon, import_busybox

OPERATIONS = ("run", "connect", "disconnect", "rm")


def client(
    sock: Path, index: int, until: float, times: dict[str, list[float]], errors: list[str]
) -> None:
    n = 0
    while time.monotonic() < until:
        name = f"c{index}-{n}"
        n += 1
        body = {
            "Image": "busybox:local",
            "Cmd": ["sleep", "1000"],
            "HostConfig": {"NetworkMode": "load-a"},
        }
        steps = (
            ("run", None),
            ("connect", ("POST", "/networks/load-b/connect", {"Container": name})),
            ("disconnect", ("POST", "/networks/load-b/disconnect", {"Container": name})),
            ("rm", ("DELETE", f"/containers/{name}?force=1", None)),
        )
        for operation, request in steps:
            began = time.perf_counter()
            try:
                if request is None:
                    check(*call(sock, "POST", f"/containers/create?name={name}", body), "create")
                    check(*call(sock, "POST", f"/containers/{name}/start"), "start")
                else:
                    check(*call(sock, *request), operation)
            except (RuntimeError, OSError) as err:
                errors.append(f"{name} {operation}: {err}")
                call(sock, "DELETE", f"/containers/{name}?force=1")
                break
            times[operation].append((time.perf_counter() - began) * 1000)


def bench(clients: int, seconds: float) -> None:
    with bench_root("cnm-bench-concurrency-") as root, host_namespace(root / "ns") as ns:
        with daemon(root, ns.path) as sock:
            import_busybox(sock)
            for name in ("load-a", "load-b"):
                check(*call(sock, "POST", "/networks/create", {"Name": name}), "network")
            times: dict[str, list[float]] = defaultdict(list)
            errors: list[str] = []
            until = time.monotonic() + seconds
            threads = [
                threading.Thread(target=client, args=(sock, i, until, times, errors))
                for i in range(clients)
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(seconds + 120)
            elapsed = time.monotonic() - began
            stuck = sum(thread.is_alive() for thread in threads)
            _, listed = call(sock, "GET", "/containers/json?all=1")
            left = [c["Names"] for c in listed]  # type: ignore[union-attr]
            networks = {
                name: call(sock, "GET", f"/networks/{name}")[1]["Containers"]  # type: ignore[index]
                for name in ("load-a", "load-b")
            }
            # A host veth goes with its peer's namespace, which the kernel frees on a
            # workqueue after the last reference: give it a few seconds.
            veths = _host_veths(ns.path)
            deadline = time.monotonic() + 5
            while veths and time.monotonic() < deadline:
                time.sleep(0.2)
                veths = _host_veths(ns.path)
            for name in ("load-a", "load-b"):
                call(sock, "DELETE", f"/networks/{name}")
        total = sum(len(v) for v in times.values())
        print(f"{clients} clients, {seconds:.0f} s: run, connect, disconnect, rm -f in a loop")
        for operation in OPERATIONS:
            values = times[operation]
            print(
                f"  {operation:<11} p50 {fmt(percentile(values, 50))} ms  "
                f"p99 {fmt(percentile(values, 99))} ms  max {fmt(max(values, default=0))} ms  "
                f"(n={len(values)})"
            )
        print(f"  {total} operations in {elapsed:.1f} s: {total / elapsed:.1f} per second")
        print(f"  errors: {len(errors)}{': ' + errors[0] if errors else ''}")
        print(f"  clients still running at the end (a deadlock): {stuck}")
        print(
            f"  left: containers {left}, on the networks {networks}, host veths (after up to 5 s) {veths}"
        )


def _host_veths(netns: str) -> list[str]:
    links = json.loads(
        subprocess.run(
            ["nsenter", f"--net={netns}", "ip", "-j", "-d", "link", "show"],
            capture_output=True,
            check=True,
        ).stdout
    )
    return [link["ifname"] for link in links if link.get("linkinfo", {}).get("info_kind") == "veth"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    bench(args.clients, args.seconds)


if __name__ == "__main__":
    run_main(main)
