"""CNI ADD through ``cnm-cni`` against the reference ``bridge`` plugin's ADD, in the same run.

A real daemon runs inside a throwaway namespace playing the host, with one user bridge network
(10.203.0.0/16); the reference plugin (Debian's containernetworking-plugins, /usr/lib/cni) gets
its own bridge and host-local range (10.204.0.0/16) in the same namespace. The bench process
itself runs the plugins from inside that namespace, as a runtime does: fork, exec, the CNI_*
variables, the configuration on stdin, the result read from stdout. For i = 1..N, alternately,
a container namespace is made and one ADD is timed on each (so load from elsewhere on this
shared machine hits both alike); then every attachment is deleted, alternately again, timed.

Beside them, the floor of each executable: VERSION, which neither plugin forwards anywhere
(the cost of starting the process), and the daemon's own share of a cnm ADD: the same request
sent straight to ``POST /cnm/cni/add`` over the socket, without the plugin process.

Prints p50/p95 per plugin and step. Asserts nothing; everything it made is removed on exit.

    sudo .venv/bin/python bench/cni.py [--n 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import (
    bench_root,
    fmt,
    host_link_names,
    host_namespace,
    inside,
    leftover_report,
    percentile,
    run_main,
)
from containers import call, check, daemon

from cnm.osl.namespace import create_netns, delete_netns

CNM_CNI = Path(sys.executable).parent / "cnm-cni"
REFERENCE = Path("/usr/lib/cni")
CNI_PATH = f"{CNM_CNI.parent}:{REFERENCE}"


def _line(label: str, values: list[float]) -> str:
    return (
        f"{label:>46}: p50 {fmt(percentile(values, 50))} ms  "
        f"p95 {fmt(percentile(values, 95))} ms  (n={len(values)})"
    )


def _invoke(plugin: Path, command: str, config: dict[str, Any], **env: str) -> tuple[float, Any]:
    """One execution as a runtime makes it; its wall time in ms and its parsed stdout."""
    environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, **env}
    started = time.perf_counter_ns()
    done = subprocess.run(
        [str(plugin)],
        input=json.dumps(config).encode(),
        env=environment,
        capture_output=True,
        timeout=60,
        check=False,
    )
    elapsed = (time.perf_counter_ns() - started) / 1e6
    if done.returncode != 0:
        raise RuntimeError(f"{plugin.name} {command} failed: {done.stdout!r} {done.stderr!r}")
    return elapsed, json.loads(done.stdout) if done.stdout.strip() else None


def bench(n: int) -> None:
    links_before = host_link_names()
    with (
        bench_root("cnm-bench-cni-") as root,
        host_namespace(root / "phase") as host,
        daemon(root, host.path) as sock,
    ):
        check(
            *call(
                sock,
                "POST",
                "/networks/create",
                {"Name": "cnibench", "IPAM": {"Config": [{"Subnet": "10.203.0.0/16"}]}},
            ),
            "network create",
        )
        ours = {
            "cniVersion": "1.0.0",
            "name": "cnibench",
            "type": "cnm-cni",
            "socket": str(sock),
        }
        theirs = {
            "cniVersion": "1.0.0",
            "name": "refbench",
            "type": "bridge",
            "bridge": "cniref0",
            "isGateway": True,
            "ipam": {
                "type": "host-local",
                "subnet": "10.204.0.0/16",
                "dataDir": str(root / "host-local"),
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }
        plugins = {"cnm-cni": (CNM_CNI, ours), "bridge": (REFERENCE / "bridge", theirs)}
        adds: dict[str, list[float]] = {name: [] for name in plugins}
        dels: dict[str, list[float]] = {name: [] for name in plugins}
        versions: dict[str, list[float]] = {name: [] for name in plugins}
        direct: list[float] = []
        made: list[tuple[str, str, str]] = []  # (plugin, container id, netns)
        with inside(host):
            try:
                for i in range(n):
                    for name, (plugin, config) in plugins.items():
                        netns = create_netns(root / "ctr" / f"{name}-{i}")
                        netns.close()
                        made.append((name, f"{name}-{i}", netns.path))
                        elapsed, _ = _invoke(
                            plugin,
                            "ADD",
                            config,
                            CNI_CONTAINERID=f"{name}-{i}",
                            CNI_NETNS=netns.path,
                            CNI_IFNAME="eth0",
                            CNI_PATH=CNI_PATH,
                        )
                        adds[name].append(elapsed)
                        versions[name].append(_invoke(plugin, "VERSION", config)[0])
                for i in range(n):
                    netns = create_netns(root / "ctr" / f"direct-{i}")
                    netns.close()
                    made.append(("cnm-cni", f"direct-{i}", netns.path))
                    body = {
                        "env": {
                            "CNI_CONTAINERID": f"direct-{i}",
                            "CNI_NETNS": netns.path,
                            "CNI_IFNAME": "eth0",
                        },
                        "config": ours,
                    }
                    started = time.perf_counter_ns()
                    check(*call(sock, "POST", "/cnm/cni/add", body), "direct add")
                    direct.append((time.perf_counter_ns() - started) / 1e6)
            finally:
                for name, container_id, netns_path in reversed(made):
                    plugin, config = plugins[name]
                    try:
                        elapsed, _ = _invoke(
                            plugin,
                            "DEL",
                            config,
                            CNI_CONTAINERID=container_id,
                            CNI_NETNS=netns_path,
                            CNI_IFNAME="eth0",
                            CNI_PATH=CNI_PATH,
                        )
                        if not container_id.startswith("direct-"):
                            dels[name].append(elapsed)
                    finally:
                        delete_netns(netns_path)
                subprocess.run(["ip", "link", "del", "cniref0"], check=False)
    print(f"CNI ADD, cnm-cni against the reference bridge plugin ({n} of each, alternating)")
    for name in plugins:
        print(_line(f"ADD {name}", adds[name]))
    difference = percentile(adds["cnm-cni"], 50) - percentile(adds["bridge"], 50)
    print(f"{'ADD p50, cnm-cni - bridge':>46}: {fmt(difference)} ms")
    print(_line("cnm's share: POST /cnm/cni/add alone", direct))
    for name in plugins:
        print(_line(f"VERSION {name} (process start)", versions[name]))
    for name in plugins:
        print(_line(f"DEL {name}", dels[name]))
    print(leftover_report(root, links_before))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="ADDs per plugin (100)")
    args = parser.parse_args()
    bench(args.n)


if __name__ == "__main__":
    run_main(main)
