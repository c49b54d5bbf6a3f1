"""Overlay driver figures (issue 9), on two simulated hosts in throwaway namespaces.

The hosts are namespaces joined by a bridge in an "underlay" namespace (10.77.0.1 and
10.77.0.2, MTU 1500), as in tests/support/cluster.py; each runs the overlay driver in-process
on its own netlink handle, nftables firewall and port mapper, as a daemon would.

(c) Cross-host TCP throughput (iperf3, one stream): container to container through the
    driver's data path (veth, bridge br0 and VXLAN device vxlan0 with static FDB and
    neighbour entries in the network's namespace, and back up on the other host), against a
    hand-built VXLAN pair made by ``ip`` directly between the same two host namespaces (one
    VXLAN device per host with an address on it, no bridge, no veth: the floor), in the same
    run, interleaved, median of the reps.
    Target: >= 95 % of the hand-built pair. Both host namespaces keep br_netfilter's
    ``net.bridge.bridge-nf-call-iptables`` at 1 (the kernel's default once the module is
    loaded, as on a Docker host): the overlay's bridge, in the network's own namespace, is out
    of its reach (cnm/osl/uplink.py).
(p) The cost of peers: ``add_peer`` timed one by one for peers 1..N (N = 500 by default) on a
    host whose devices exist (one FDB and one neighbour entry each), per block of 100 and the
    Nth; the first local join when N peers are already known (devices made and N peers
    programmed in it); ``sync_peers`` with the same N (a restart's listing); ``remove_peer`` of
    all.

Prints figures, asserts nothing, and removes what it made (the ``left behind`` line).

    sudo .venv/bin/python bench/overlay.py [--parts cp] [--peers 500] [--iperf-reps 3]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

from cnm.driverapi import EndpointSpec, IpamData, NetworkSpec, Peer
from cnm.drivers.overlay import OPT_VNI, OverlayDriver
from cnm.firewall.nftables import NftablesFirewall
from cnm.osl.links import HostNetwork, sandbox_network
from cnm.osl.namespace import NetNamespace, create_netns, delete_netns
from cnm.portmap.mapper import PortMapper

UNDERLAY = "10.77.0.{}"
SUBNET = ipaddress.ip_network("10.100.0.0/16")
LATE_SUBNET = ipaddress.ip_network("10.101.0.0/16")
HAND_VNI, HAND_PORT = 999, 4790  # the hand-built pair's, apart from the driver's
HAND_NET = "192.168.99.{}"


def _run(netns: str, *command: str) -> str:
    done = subprocess.run(
        ["nsenter", f"--net={netns}", *command], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command} in {netns}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Host:
    namespace: NetNamespace
    address: str
    host: HostNetwork
    firewall: NftablesFirewall
    ports: PortMapper
    driver: OverlayDriver

    @property
    def path(self) -> str:
        return self.namespace.path

    def close(self) -> None:
        self.driver.close()
        self.ports.close()
        self.firewall.close()
        self.host.close()


@contextmanager
def two_hosts(phase: Path) -> Iterator[list[Host]]:
    """Two hosts on an underlay, each with its overlay driver; everything goes on exit."""
    phase.mkdir(parents=True, exist_ok=True)
    made: list[NetNamespace] = []
    hosts: list[Host] = []
    try:
        underlay = create_netns(phase / "underlay")
        made.append(underlay)
        _run(underlay.path, "ip", "link", "add", "underlay", "type", "bridge")
        _run(underlay.path, "ip", "link", "set", "underlay", "up")
        for number in (1, 2):
            namespace = create_netns(phase / f"h{number}")
            made.append(namespace)
            address = UNDERLAY.format(number)
            _run(underlay.path, "ip", "link", "add", f"u-h{number}", "type", "veth", "peer",
                 "name", "eth0", "netns", namespace.path)  # fmt: skip
            _run(underlay.path, "ip", "link", "set", f"u-h{number}", "master", "underlay", "up")
            for command in (
                ("ip", "link", "set", "lo", "up"),
                ("ip", "addr", "add", f"{address}/24", "dev", "eth0"),
                ("ip", "link", "set", "eth0", "up"),
            ):
                _run(namespace.path, *command)
            with namespace.entered():
                host = HostNetwork()
                firewall = NftablesFirewall()
                ports = PortMapper(host)
            driver = OverlayDriver(
                host,
                firewall,
                ports,
                namespace_dir=phase / f"overlay-netns-h{number}",
                advertise_address=ipaddress.ip_address(address),
            )
            firewall.start()
            hosts.append(Host(namespace, address, host, firewall, ports, driver))
        yield hosts
    finally:
        with bl.signals_deferred():
            for host in hosts:
                host.close()
            bl.unmount_namespaces_under(phase)
            for namespace in made:
                namespace.close()
                delete_netns(namespace.path)


def overlay(name: str, vni: int, subnet: ipaddress.IPv4Network = SUBNET) -> NetworkSpec:
    gateway = ipaddress.ip_interface(f"{subnet[1]}/{subnet.prefixlen}")
    return NetworkSpec(
        network_id=secrets.token_hex(32),
        name=name,
        options={OPT_VNI: str(vni)},
        ipv4=(IpamData(pool=subnet, gateway=gateway),),
    )


def container(host: Host, spec: NetworkSpec, phase: Path, address: str) -> tuple[str, Peer]:
    """A sandbox joined to ``spec`` on ``host``, addressed and routed; its key and its peer."""
    key = str(phase / "netns" / secrets.token_hex(6))
    create_netns(key).close()
    endpoint_id = secrets.token_hex(32)
    interface = ipaddress.IPv4Interface(address)
    info = host.driver.create_endpoint(EndpointSpec(spec.network_id, endpoint_id, interface))
    joined = host.driver.join(spec.network_id, endpoint_id, key, "eth0")
    with sandbox_network(key) as sandbox:
        sandbox.bring_up_loopback(ipv6=False)
        index = sandbox.configure_interface("eth0", [interface])
        assert joined.gateway is not None
        sandbox.set_default_route(joined.gateway, index)
    assert info.mac_address is not None
    peer = Peer(endpoint_id, "h", ipaddress.ip_address(host.address), info.mac_address, interface)
    return key, peer


def _route_dev(netns: str, destination: str) -> str:
    return str(json.loads(_run(netns, "ip", "-j", "route", "get", destination))[0]["dev"])


def _iperf(client_ns: str, target: str, seconds: int) -> float:
    done = subprocess.run(
        ["nsenter", f"--net={client_ns}", "iperf3", "-c", target, "-t", str(seconds), "-J"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    report = json.loads(done.stdout)
    if "error" in report:
        raise RuntimeError(f"iperf3 to {target}: {report['error']}")
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e9


def _server(netns: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["nsenter", f"--net={netns}", "iperf3", "-s"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return server


def part_c(phase: Path, reps: int, seconds: int) -> None:
    print(f"\n(c) cross-host TCP throughput (iperf3, 1 stream), {seconds} s per run, {reps} reps")
    if not shutil.which("iperf3"):
        print("  iperf3 is not installed: skipped")
        return
    with bl.throwaway_host(phase / "guard"), two_hosts(phase / "hosts") as (h1, h2):
        phase = phase / "hosts"
        spec = overlay("perf", 4096)
        for host in (h1, h2):
            host.driver.create_network(spec)
        a_key, a_peer = container(h1, spec, phase, "10.100.0.2/16")
        b_key, b_peer = container(h2, spec, phase, "10.100.0.3/16")
        h1.driver.add_peer(spec.network_id, b_peer)
        h2.driver.add_peer(spec.network_id, a_peer)
        for number, (this, other) in enumerate(((h1, h2), (h2, h1)), start=1):
            _run(this.path, "ip", "link", "add", "vxhand", "type", "vxlan", "id", str(HAND_VNI),
                 "local", this.address, "dstport", str(HAND_PORT), "nolearning")  # fmt: skip
            _run(this.path, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxhand",
                 "dst", other.address)  # fmt: skip
            _run(this.path, "ip", "link", "set", "vxhand", "mtu", "1450", "up")
            _run(this.path, "ip", "addr", "add", HAND_NET.format(number) + "/24", "dev", "vxhand")
        assert _route_dev(a_key, "10.100.0.3") == "eth0"
        assert _route_dev(h1.path, HAND_NET.format(2)) == "vxhand"
        for host in (h1, h2):
            _run(host.path, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        servers = [_server(b_key), _server(h2.path)]
        hand_name = "hand-built VXLAN pair (host to host)"
        paths = {
            "cnm overlay (container to container)": (a_key, "10.100.0.3"),
            hand_name: (h1.path, HAND_NET.format(2)),
        }
        found: dict[str, list[float]] = {name: [] for name in paths}
        idle_busy: list[float] = []
        try:
            for _ in range(reps):
                idle_busy.append(bl.cpu_busy_pct(0.5))  # others' load, with this bench idle
                for name, (client, target) in paths.items():
                    found[name].append(_iperf(client, target, seconds))
        finally:
            for server in servers:
                server.kill()
                server.wait()
        hand_values = found[hand_name]
        hand = statistics.median(hand_values)
        for name, values in found.items():
            value = statistics.median(values)
            print(
                f"  {name:<38} {value:6.2f} Gbit/s  {100 * value / hand:5.1f} % of hand-built"
                f"   runs: {', '.join(f'{v:.2f}' for v in values)}"
            )
        for name, values in found.items():
            if name == hand_name:
                continue
            ratios = [100 * v / h for v, h in zip(values, hand_values, strict=True)]
            print(
                f"  {name.strip()} / hand-built, run by run: median "
                f"{statistics.median(ratios):.1f} %   ({', '.join(f'{r:.0f}' for r in ratios)})"
            )
        print(
            "  CPU % busy just before each round (others' load): "
            + ", ".join(f"{c:.0f}" for c in idle_busy)
        )
        print("  target: the overlay >= 95 % of the hand-built pair")


def _peer(n: int) -> Peer:
    """A made-up endpoint on the other host: 10.101.0.0 + n, MAC 02:42:00 + n."""
    mac = n.to_bytes(3, "big")
    return Peer(
        endpoint_id=f"{n:064x}",
        host="h2",
        vtep=ipaddress.ip_address(UNDERLAY.format(2)),
        mac_address="02:42:00:" + ":".join(f"{b:02x}" for b in mac),
        address=ipaddress.IPv4Interface((int(ipaddress.IPv4Address("10.101.0.0")) + n, 16)),
    )


def _ms(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


def _stats(values: list[float]) -> str:
    return f"p50 {bl.fmt(bl.percentile(values, 50))} ms  p95 {bl.fmt(bl.percentile(values, 95))} ms"


def part_p(phase: Path, count: int) -> None:
    print(f"\n(p) the cost of peers, N = {count} (one FDB + one neighbour entry each)")
    peers = [_peer(n) for n in range(1, count + 1)]
    with bl.throwaway_host(phase / "guard"), two_hosts(phase / "hosts") as (h1, _):
        phase = phase / "hosts"
        spec = overlay("peers", 4096)
        h1.driver.create_network(spec)
        container(h1, spec, phase, "10.100.0.2/16")
        times = []
        for peer in peers:
            start = time.perf_counter_ns()
            h1.driver.add_peer(spec.network_id, peer)
            times.append(_ms(start))
        for low, high in bl.blocks(count, 100):
            print(f"  add_peer {low + 1:>4}..{high:<4}  {_stats(times[low:high])}")
        print(f"  add_peer #{count}: {times[-1]:.3f} ms; all {count}: {sum(times):.0f} ms")
        start = time.perf_counter_ns()
        h1.driver.add_peer(spec.network_id, peers[-1])
        print(f"  add_peer of a known peer again: {_ms(start):.3f} ms")
        start = time.perf_counter_ns()
        h1.driver.sync_peers(spec.network_id, peers)
        print(f"  sync_peers with the same {count}: {_ms(start):.0f} ms")
        removed = []
        for peer in peers:
            start = time.perf_counter_ns()
            h1.driver.remove_peer(spec.network_id, peer)
            removed.append(_ms(start))
        print(f"  remove_peer: {_stats(removed)}; all {count}: {sum(removed):.0f} ms")

        other = overlay("late", 4097, LATE_SUBNET)  # two overlays never share a subnet
        h1.driver.create_network(other)
        for peer in peers:
            h1.driver.add_peer(other.network_id, peer)
        start = time.perf_counter_ns()
        container(h1, other, phase, "10.101.0.2/16")
        print(
            f"  first local join with {count} peers known (devices + {count} peers "
            f"programmed + sandbox addressing): {_ms(start):.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="cp", help="which parts to run (cp)")
    parser.add_argument("--peers", type=int, default=500, help="N in (p)")
    parser.add_argument("--iperf-reps", type=int, default=3, help="runs per path in (c)")
    parser.add_argument("--iperf-seconds", type=int, default=4, help="seconds per run in (c)")
    parser.add_argument("--tmpdir", default=None, help=bl.TMPDIR_HELP)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes network namespaces")
    if not 1 <= args.peers <= 65_000:
        raise SystemExit("--peers: 1 to 65000 (the made-up addresses are in 10.101.0.0/16)")
    bl.install_signal_handlers()
    links_before = bl.host_link_names()
    with bl.bench_root("cnm-bench-overlay-", args.tmpdir) as root:
        print(f"temp dir {root} ({bl.describe_fs(root)}); {os.cpu_count()} CPUs")
        if "c" in args.parts:
            part_c(root / "c", args.iperf_reps, args.iperf_seconds)
        if "p" in args.parts:
            part_p(root / "p", args.peers)
    print(bl.leftover_report(root, links_before))


if __name__ == "__main__":
    bl.run_main(main)
