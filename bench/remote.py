"""A remote driver's attach against the built-in bridge's, in the same run.

Two throwaway host namespaces, one controller in each, attaches interleaved sandbox by sandbox:

* **bridge**: the built-in bridge driver (the veth's inner end is born in the sandbox);
* **remote**: the same bridge driver served by ``cnm plugin serve`` (a separate process, over
  its Unix socket) and used through cnm's remote driver: CreateEndpoint and Join over the
  socket, the plugin makes the veth in the host namespace, cnm moves it into the sandbox (the
  protocol's way; the move waits for an RCU grace period in the kernel). The consumer's own
  firewall is a no-op here: the served plugin's nftables tables live in the same namespace.

Timed per attach: ``connect`` (endpoint, addresses, join, routes, record); then
``disconnect`` in reverse. Inside them, per driver call: the built-in driver's
``create_endpoint`` and ``join`` in-process, and the remote driver's CreateEndpoint and Join
over the socket (the same driver work, done by the plugin), and the moves of the plugin's link.
The overhead per call over the socket is the p50 of the call over the socket minus the p50 of
the same driver call in-process (target: at most 2 ms). Also timed: the bare round trip of a
plugin call that does nothing (GetCapabilities over a kept-alive connection). Asserts nothing.

    sudo .venv/bin/python bench/remote.py [--n 100]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import benchlib as bl
from pyroute2 import IPRoute

from cnm.controller import Controller, ControllerConfig
from cnm.controller.controller import Parts
from cnm.drivers.bridge import BridgeDriver
from cnm.drivers.host import HostDriver
from cnm.drivers.null import NullDriver
from cnm.errors import CnmError
from cnm.firewall.api import EndpointRules, Firewall, NetworkRules
from cnm.ipam.default import DefaultIpam
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest, PortMapping
from cnm.osl.links import HostNetwork
from cnm.osl.namespace import create_netns, delete_netns
from cnm.plugins.client import PluginClient
from cnm.plugins.discovery import PluginConfig, PluginManager
from cnm.portmap.mapper import PortMapper
from cnm.store.sqlite import SqliteStore
from cnm.wiring import PluginFinder, build_controller

TARGET_PER_CALL_MS = 2.0
CNM = str(Path(sys.executable).parent / "cnm")
T = TypeVar("T")


class NoFirewall(Firewall):
    """The consumer's firewall in the remote phase: the served plugin owns cnm's tables."""

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None

    def add_network(self, rules: NetworkRules) -> None:
        return None

    def remove_network(self, bridge: str) -> None:
        return None

    def add_endpoint(self, rules: EndpointRules) -> None:
        return None

    def remove_endpoint(self, port: str) -> None:
        return None

    def add_ports(self, bridge: str, mappings: Sequence[PortMapping]) -> None:
        return None

    def remove_ports(self, mappings: Sequence[PortMapping]) -> None:
        return None


def _ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def _timed(function: Callable[..., T], into: list[float]) -> Callable[..., T]:
    def timed(*args: Any, **kwargs: Any) -> T:
        t0 = time.perf_counter_ns()
        try:
            return function(*args, **kwargs)
        finally:
            into.append(_ms(t0))

    return timed


def _timed_calls(client: PluginClient, into: dict[str, list[float]]) -> None:
    """Time every call ``client`` makes, by method."""
    call = client.call

    def timed(method: str, payload: Any = None) -> dict[str, Any]:
        t0 = time.perf_counter_ns()
        try:
            return call(method, payload)
        finally:
            into.setdefault(method, []).append(_ms(t0))

    client.call = timed  # type: ignore[method-assign]


def _remote_controller(root: Path, plugins: PluginManager) -> Controller:
    host = HostNetwork()
    firewall = NoFirewall()
    port_mapper = PortMapper(host)
    parts = Parts(
        host=host,
        firewall=firewall,
        port_mapper=port_mapper,
        drivers=[BridgeDriver(host, firewall, port_mapper), HostDriver(), NullDriver()],
        ipams=[DefaultIpam()],
        finder=PluginFinder(plugins, host),
    )
    return Controller(ControllerConfig(exec_root=root / "exec"), SqliteStore(root / "db"), parts)


def _close(controller: Controller) -> None:
    links = getattr(getattr(controller.host, "_local", None), "links", None)
    if links is not None:
        links.ipr.close()
    controller.close()
    controller.store.close()


def _serve(root: Path) -> subprocess.Popen[bytes]:
    """``cnm plugin serve`` in the calling thread's namespace, answering."""
    socket = root / "plugins" / "cnm.sock"
    log = open(root / "plugin.log", "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [CNM, "plugin", "serve", "--socket", str(socket), "--data-root", str(root / "pdata")],
        stdout=log,
        stderr=log,
    )
    log.close()
    client = PluginClient("cnm", f"unix://{socket}", 5)
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                client.call("Plugin.Activate")
                return process
            except CnmError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"no cnm plugin; see {root}/plugin.log") from None
                time.sleep(0.05)
    finally:
        client.close()


def _round_trips(socket: Path, n: int) -> list[float]:
    client = PluginClient("cnm", f"unix://{socket}", 5)
    try:
        client.call("NetworkDriver.GetCapabilities")
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            client.call("NetworkDriver.GetCapabilities")
            times.append(_ms(t0))
        return times
    finally:
        client.close()


def _moves(root: Path, n: int) -> list[float]:
    """The kernel's move of a fresh veth end into a fresh namespace, alone."""
    host = HostNetwork()
    times = []
    try:
        with IPRoute(groups=0) as ipr:
            for i in range(n):
                sandbox = create_netns(root / "moves" / str(i))
                try:
                    ipr.link("add", ifname=f"mvsrc{i}", kind="veth", peer={"ifname": f"mvdst{i}"})
                    t0 = time.perf_counter_ns()
                    host.move_into(f"mvsrc{i}", sandbox, "eth0")
                    times.append(_ms(t0))
                finally:
                    sandbox.close()
                    with contextlib.suppress(Exception):
                        ipr.link("del", ifname=f"mvdst{i}")
                    delete_netns(sandbox.path)
    finally:
        links = getattr(host._local, "links", None)
        if links is not None:
            links.ipr.close()
        host.close()
    return times


def _line(label: str, values: list[float]) -> str:
    return (
        f"{label:>34}: p50 {bl.fmt(bl.percentile(values, 50))}  "
        f"p95 {bl.fmt(bl.percentile(values, 95))}  (n={len(values)})"
    )


def run(root: Path, n: int) -> None:
    connect: dict[str, list[float]] = {"bridge": [], "remote": []}
    disconnect: dict[str, list[float]] = {"bridge": [], "remote": []}
    in_process: dict[str, list[float]] = {"CreateEndpoint": [], "Join": []}
    over_socket: dict[str, list[float]] = {}
    moves_in: list[float] = []
    with contextlib.ExitStack() as stack:
        bridge_ns = stack.enter_context(bl.host_namespace(root / "bridge"))
        remote_ns = stack.enter_context(bl.host_namespace(root / "remote"))
        with bl.inside(bridge_ns):
            bridge = build_controller(
                ControllerConfig(exec_root=root / "bridge" / "exec"),
                SqliteStore(root / "bridge" / "db"),
            )
            stack.callback(_close, bridge)
            bridge.start()
            driver = bridge._registry.driver("bridge")
            driver.create_endpoint = _timed(  # type: ignore[method-assign]
                driver.create_endpoint, in_process["CreateEndpoint"]
            )
            driver.join = _timed(driver.join, in_process["Join"])  # type: ignore[method-assign]
            bridge.create_network(
                NetworkRequest(name="b", ipam_config=[IpamRequest("10.230.0.0/16")])
            )
        with bl.inside(remote_ns):
            plugin = _serve(root / "remote")

            def stop_plugin() -> None:
                plugin.send_signal(signal.SIGTERM)
                plugin.wait(10)

            stack.callback(stop_plugin)
            plugins = PluginManager(
                PluginConfig(socket_dirs=(root / "remote" / "plugins",), spec_dirs=(), timeout=30)
            )
            remote = _remote_controller(root / "remote", plugins)
            stack.callback(_close, remote)
            remote.start()
            remote.create_network(
                NetworkRequest(name="r", driver="cnm", ipam_config=[IpamRequest("10.231.0.0/16")])
            )
            served = plugins.get("cnm", "NetworkDriver")
            assert served is not None
            _timed_calls(served.client, over_socket)
            remote.host.move_into = _timed(remote.host.move_into, moves_in)  # type: ignore[method-assign]
            round_trips = _round_trips(root / "remote" / "plugins" / "cnm.sock", 20 * n)
            moves = _moves(root / "remote", max(20, n // 2))
        sandboxes: dict[str, list[str]] = {"bridge": [], "remote": []}
        for _ in range(n):
            for kind, ns, controller, network in (
                ("bridge", bridge_ns, bridge, "b"),
                ("remote", remote_ns, remote, "r"),
            ):
                with bl.inside(ns):
                    sandbox = controller.create_sandbox()
                    t0 = time.perf_counter_ns()
                    controller.connect(network, sandbox.id, EndpointOptions())
                    connect[kind].append(_ms(t0))
                    sandboxes[kind].append(sandbox.id)
        for _ in range(n):
            for kind, ns, controller, network in (
                ("bridge", bridge_ns, bridge, "b"),
                ("remote", remote_ns, remote, "r"),
            ):
                with bl.inside(ns):
                    sandbox_id = sandboxes[kind].pop()
                    t0 = time.perf_counter_ns()
                    controller.disconnect(network, sandbox_id)
                    disconnect[kind].append(_ms(t0))
                    controller.delete_sandbox(sandbox_id)
        with bl.inside(bridge_ns):
            bridge.delete_network("b")
        with bl.inside(remote_ns):
            remote.delete_network("r")

    print(_line("connect, built-in bridge ms", connect["bridge"]))
    print(_line("connect, remote driver ms", connect["remote"]))
    print(_line("  of which moving the link in", moves_in))
    print(_line("disconnect, built-in bridge ms", disconnect["bridge"]))
    print(_line("disconnect, remote driver ms", disconnect["remote"]))
    print(_line("kernel alone: move a link in", moves))
    print(_line("plugin call doing nothing ms", round_trips))
    print(f"\n{'per driver call, p50 ms':>34}  in-process  over the socket  overhead")
    for method in ("CreateEndpoint", "Join"):
        here = bl.percentile(in_process[method], 50)
        there = bl.percentile(over_socket.get(f"NetworkDriver.{method}", []), 50)
        overhead = there - here
        verdict = "met" if overhead <= TARGET_PER_CALL_MS else "MISSED"
        print(
            f"{method:>34}  {bl.fmt(here, 10)}  {bl.fmt(there, 15)}  {bl.fmt(overhead, 8)}"
            f"  (target <= {TARGET_PER_CALL_MS:g} ms: {verdict})"
        )
    for method in ("Leave", "DeleteEndpoint"):
        print(_line(f"over the socket: {method}", over_socket.get(f"NetworkDriver.{method}", [])))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="attaches per driver (default 100)")
    parser.add_argument(
        "--settle-max", type=float, default=30, help="max seconds to wait for a quiet CPU"
    )
    parser.add_argument("--tmpdir", default=None, help=bl.TMPDIR_HELP)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, bind mounts)")
    if not 1 <= args.n <= 1000:
        sys.exit("--n must be 1..1000")
    bl.install_signal_handlers()
    links_before = bl.host_link_names()
    print(
        f"remote driver bench: N={args.n} attaches each, bridge and remote interleaved; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}, kernel {os.uname().release}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    with bl.bench_root("cnm-bench-remote-", args.tmpdir) as root:
        waited, busy = bl.settle(args.settle_max)
        print(f"temp dir {root}; quiet-CPU wait {waited:.1f} s, then {busy:.0f} % busy\n")
        run(root, args.n)
    print("\n" + bl.leftover_report(root, links_before))


if __name__ == "__main__":
    bl.run_main(main)
