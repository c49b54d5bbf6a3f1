"""Figures for seeing the network (issue 13), each with the main thread in a throwaway host
namespace:

* topology: ``build_topology`` and its DOT, SVG and PNG for C containers over K networks
  (default 100 over 10; every tenth container is on a second network, every fifth publishes a
  port);
* page update: the delay from a ``connect`` returning to the topology event reaching a client
  of ``/cnm/topology/events`` (the API application in-process on a Unix socket, the client a
  raw HTTP reader: the server's share of the page's update, without the browser's drawing);
* explain: ``explain()`` for every ordered pair of a 10 x 10 matrix (10 sandboxes over 10
  networks in a ring: each on its own network and its neighbour's), p50 and total;
* fixtures: ``Lab.sandbox`` + ``Lab.remove`` (what the ``cnm_sandbox`` fixture costs per
  sandbox, in-process) against ``create_sandbox`` + ``connect`` and ``delete_sandbox`` on a bare
  controller, alternating, N of each; the target is lab <= attach + 5 ms.

    sudo .venv/bin/python bench/seeing.py            # ~30 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import socket
import sys
import threading
import time
from pathlib import Path

# bench/dns.py would shadow dnspython (Python puts bench/ first on sys.path): bench/ goes last.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]

import benchlib as bl  # noqa: E402

import cnm  # noqa: E402
from cnm.api.common import DaemonInfo  # noqa: E402
from cnm.api.server import make_app  # noqa: E402
from cnm.controller import Controller, ControllerConfig  # noqa: E402
from cnm.model import (  # noqa: E402
    EndpointOptions,
    IpamRequest,
    NetworkRequest,
    PortRequest,
    SandboxOptions,
)
from cnm.observe.dot import render  # noqa: E402
from cnm.observe.explain import explain  # noqa: E402
from cnm.observe.topology import build_topology  # noqa: E402
from cnm.store.sqlite import SqliteStore  # noqa: E402
from cnm.wiring import build_controller  # noqa: E402


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _line(label: str, values: list[float]) -> str:
    return (
        f"{label:>42}: p50 {bl.fmt(bl.percentile(values, 50))} ms  "
        f"p95 {bl.fmt(bl.percentile(values, 95))} ms  (n={len(values)})"
    )


def _controller(root: Path) -> Controller:
    root.mkdir(parents=True, exist_ok=True)
    resolv = root / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    controller = build_controller(
        ControllerConfig(exec_root=root / "exec", host_resolv_conf=resolv),
        SqliteStore(root / "cnm.db"),
    )
    controller.start()
    return controller


def _close(controller: Controller) -> None:
    for sandbox in controller.sandboxes():
        controller.delete_sandbox(sandbox.id)
    controller.close()
    controller.store.close()


def topology(root: Path, containers: int, networks: int, reps: int) -> None:
    controller = _controller(root)
    try:
        for n in range(networks):
            controller.create_network(
                NetworkRequest(f"n{n}", ipam_config=[IpamRequest(subnet=f"10.{100 + n}.0.0/22")])
            )
        for c in range(containers):
            box = controller.create_sandbox(SandboxOptions(hostname=f"c{c}"))
            controller.connect(f"n{c % networks}", box.id, EndpointOptions(name=f"c{c}"))
            if c % 10 == 0:
                controller.connect(f"n{(c + 1) % networks}", box.id, EndpointOptions(name=f"c{c}"))
            if c % 5 == 0:
                controller.publish(box.id, [PortRequest("tcp", 80, "127.0.0.1")])
        print(f"topology: {containers} containers over {networks} networks")
        timings: dict[str, list[float]] = {"build": [], "dot": [], "svg": [], "png": []}
        for _ in range(reps):
            started = time.perf_counter()
            snapshot = build_topology(controller)
            timings["build"].append(_ms(started))
            for fmt in ("dot", "svg", "png"):
                started = time.perf_counter()
                render(snapshot, fmt)
                timings[fmt].append(_ms(started))
        for name, values in timings.items():
            print(_line("build_topology" if name == "build" else f"render {name}", values))
        size = len(json.dumps(build_topology(controller).to_dict()))
        print(f"{'the snapshot as JSON':>42}: {size / 1024:.0f} KiB")
    finally:
        _close(controller)


def page_update(root: Path, reps: int) -> None:
    controller = _controller(root)
    info = DaemonInfo(engine_id="bench", data_root=str(root), exec_root=str(root / "exec"))
    app = make_app(controller, info)
    path = root / "api.sock"
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve() -> None:
        from aiohttp import web

        runner = web.AppRunner(app)
        await runner.setup()
        await web.UnixSite(runner, str(path)).start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    stop = threading.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)
    events: queue.Queue[tuple[float, bytes]] = queue.Queue()
    client = socket.socket(socket.AF_UNIX)

    def read_events() -> None:
        reader = client.makefile("rb")
        while line := reader.readline():
            if line.startswith(b"data:"):
                events.put((time.perf_counter(), line))

    try:
        controller.create_network(NetworkRequest("live", ipam_config=[IpamRequest("10.99.0.0/24")]))
        client.connect(str(path))
        client.sendall(b"GET /cnm/topology/events HTTP/1.1\r\nHost: x\r\n\r\n")
        threading.Thread(target=read_events, daemon=True).start()
        events.get(timeout=10)  # the snapshot at connect time
        delays = []
        for i in range(reps):
            box = controller.create_sandbox(SandboxOptions(hostname=f"p{i}"))
            time.sleep(0.1)  # the create's own event goes by
            while not events.empty():
                events.get()
            started = time.perf_counter()
            endpoint = controller.connect("live", box.id, EndpointOptions(name=f"p{i}"))
            while True:
                arrived, data = events.get(timeout=10)
                if endpoint.id.encode() in data:
                    break
            delays.append((arrived - started) * 1000)
            controller.delete_sandbox(box.id)
        print(_line("page update after a connect (server side)", delays))
    finally:
        client.close()
        stop.set()
        thread.join(10)
        _close(controller)


def explain_matrix(root: Path) -> None:
    controller = _controller(root)
    try:
        controller.create_network(
            NetworkRequest("shared", ipam_config=[IpamRequest("10.98.0.0/24")])
        )
        names = []
        for n in range(10):
            controller.create_network(
                NetworkRequest(f"m{n}", ipam_config=[IpamRequest(subnet=f"10.{120 + n}.0.0/24")])
            )
            box = controller.create_sandbox(SandboxOptions(hostname=f"s{n}"))
            controller.connect(f"m{n}", box.id, EndpointOptions(name=f"s{n}"))
            names.append(f"s{n}")
        for n, name in enumerate(names):  # a ring: each also on its neighbour's network
            box_id = next(b.id for b in controller.sandboxes() if b.hostname == name)
            controller.connect(f"m{(n + 1) % 10}", box_id, EndpointOptions(name=name))
        timings = []
        started_all = time.perf_counter()
        reachable = 0
        for source in names:
            for target in names:
                started = time.perf_counter()
                reachable += explain(controller, None, source, f"{target}:80").reachable
                timings.append(_ms(started))
        total = _ms(started_all)
        print(f"explain: a 10 x 10 matrix ({reachable} of 100 reachable)")
        print(_line("explain A B:80", timings))
        print(f"{'the whole matrix':>42}: {bl.fmt(total)} ms")
    finally:
        _close(controller)


def fixtures(root: Path, n: int) -> None:
    controller = _controller(root / "bare")
    controller.create_network(NetworkRequest("attach", ipam_config=[IpamRequest("10.97.0.0/20")]))
    lab = cnm.Lab(root=root / "lab")
    try:
        net = lab.network("lab", subnet="10.96.0.0/20")
        attach, detach, lab_up, lab_down = [], [], [], []
        for i in range(n):
            started = time.perf_counter()
            box = controller.create_sandbox(SandboxOptions(hostname=f"a{i}"))
            controller.connect("attach", box.id, EndpointOptions(name=f"a{i}"))
            attach.append(_ms(started))
            started = time.perf_counter()
            sandbox = lab.sandbox(f"l{i}", net)
            lab_up.append(_ms(started))
            started = time.perf_counter()
            controller.delete_sandbox(box.id)
            detach.append(_ms(started))
            started = time.perf_counter()
            lab.remove(sandbox)
            lab_down.append(_ms(started))
        print(f"fixtures: {n} sandboxes each way, alternating")
        print(_line("attach (create_sandbox + connect)", attach))
        print(_line("Lab.sandbox (cnm_sandbox set-up)", lab_up))
        print(_line("delete_sandbox", detach))
        print(_line("Lab.remove (cnm_sandbox tear-down)", lab_down))
        over = bl.percentile(lab_up, 50) + bl.percentile(lab_down, 50)
        base = bl.percentile(attach, 50) + bl.percentile(detach, 50)
        verdict = "met" if over <= base + 5 else "MISSED"
        print(
            f"{'set-up + tear-down, p50':>42}: lab {bl.fmt(over)} ms, attach + delete "
            f"{bl.fmt(base)} ms: target (lab <= attach + 5 ms) {verdict}"
        )
    finally:
        lab.close()
        _close(controller)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sandboxes", type=int, default=100, help="for the fixture figure")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    links_before = bl.host_link_names()
    with bl.bench_root("cnm-bench-seeing-", args.tmpdir) as root:
        with bl.throwaway_host(root / "topology"):
            topology(root / "topology", args.containers, args.networks, args.reps)
        with bl.throwaway_host(root / "page"):
            page_update(root / "page", 20)
        with bl.throwaway_host(root / "explain"):
            explain_matrix(root / "explain")
        with bl.throwaway_host(root / "fixtures"):
            fixtures(root / "fixtures", args.sandboxes)
    print("\n" + bl.leftover_report(root, links_before))


if __name__ == "__main__":
    bl.run_main(main)
