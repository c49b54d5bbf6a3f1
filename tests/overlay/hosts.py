"""The scene of the overlay driver's tests: simulated hosts (tests/support/cluster.py), each
running the overlay driver in-process on its own netlink handle, nftables firewall and port
mapper, made inside the host's namespace; sandboxes as namespaces under the test's tmp_path;
a shared in-memory VNI allocator standing in for the controller's cluster-wide one.

The tests play the controller: they allocate the VNI once, tell every host of the network,
address the interface ``join`` made, and call ``add_peer`` on the other hosts with the
endpoint's data, as the controller's store watches will.

Before sending anything, a sandbox's route to the destination must leave through ``eth0``, the
interface the driver made (``check_route``).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cnm.driverapi import EndpointSpec, IpamData, JoinInfo, NetworkDriver, NetworkSpec, Peer
from cnm.drivers.bridge import BridgeDriver
from cnm.drivers.overlay import VXLAN, OverlayDriver
from cnm.errors import Unavailable
from cnm.firewall.nftables import NftablesFirewall
from cnm.osl.links import HostNetwork, sandbox_network
from cnm.osl.namespace import create_netns, delete_netns
from cnm.portmap.mapper import PortMapper
from tests.support.cluster import SimHost

PYTHON = sys.executable


class MemoryIds:
    """The IdAllocator contract in memory: lowest free number of a kind in [low, high]."""

    def __init__(self) -> None:
        self.taken: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def allocate(self, kind: str, low: int, high: int) -> int:
        with self._lock:
            taken = self.taken.setdefault(kind, set())
            for value in range(low, high + 1):
                if value not in taken:
                    taken.add(value)
                    return value
        raise Unavailable(f"no free {kind} between {low} and {high}")

    def release(self, kind: str, value: int) -> None:
        with self._lock:
            self.taken.get(kind, set()).discard(value)


def run_in(netns: str, *command: str, check: bool = True, timeout: float = 20) -> str:
    done = subprocess.run(
        ["nsenter", f"--net={netns}", *command], capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{command} in {netns}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Box:
    """A container's sandbox: a namespace with one interface on an overlay."""

    key: str
    host: OverlayHost
    network_id: str
    endpoint_id: str
    mac: str
    address: ipaddress.IPv4Interface | None
    address_v6: ipaddress.IPv6Interface | None
    info: JoinInfo

    @property
    def ip(self) -> str:
        assert self.address is not None
        return str(self.address.ip)

    @property
    def ip6(self) -> str:
        assert self.address_v6 is not None
        return str(self.address_v6.ip)

    def peer(self) -> Peer:
        """This endpoint as other hosts are told of it."""
        return Peer(
            endpoint_id=self.endpoint_id,
            host=self.host.sim.name,
            vtep=ipaddress.ip_address(self.host.sim.address),
            mac_address=self.mac,
            address=self.address,
            address_v6=self.address_v6,
        )

    def run(self, *command: str, check: bool = True, timeout: float = 20) -> str:
        return run_in(self.key, *command, check=check, timeout=timeout)

    def check_route(self, destination: str) -> None:
        """Fail unless traffic to ``destination`` leaves through the driver's eth0."""
        route = json.loads(self.run("ip", "-j", "route", "get", destination))[0]
        assert route.get("dev") == "eth0", f"{destination} would leave {self.key} via {route}"

    def ping(self, destination: str, tries: int = 5) -> bool:
        """Whether an echo reply comes back: up to ``tries`` requests, each given a second (a
        just-made link drops what it is given until the kernel's linkwatch has activated it,
        which a loaded machine may delay)."""
        self.check_route(destination)
        command = ["busybox", "ping", "-c", "1", "-W", "1", destination]
        for _ in range(tries):
            done = subprocess.run(
                ["nsenter", f"--net={self.key}", *command], capture_output=True, timeout=10
            )
            if done.returncode == 0:
                return True
        return False

    def tcp(self, destination: str, port: int, timeout: float = 3) -> str | None:
        """The first line a TCP server at ``destination:port`` sends, or None."""
        self.check_route(destination)
        return tcp_answer(self.key, destination, port, timeout)


_CLIENT = r"""
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.settimeout(timeout)
        print(conn.recv(256).decode().strip())
except OSError:
    pass
"""

_SERVER = r"""
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in sys.argv[3] else socket.AF_INET
sock = socket.socket(family, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind((sys.argv[3], port))
sock.listen(16)
print("ready", flush=True)
while True:
    conn, peer = sock.accept()
    with conn:
        conn.sendall(f"{name} {peer[0]}\n".encode())
"""


def tcp_answer(netns: str, destination: str, port: int, timeout: float = 3) -> str | None:
    out = run_in(netns, PYTHON, "-c", _CLIENT, destination, str(port), str(timeout))
    return out.strip() or None


class TcpServer:
    """Answers every TCP connection on ``port`` with ``<name> <peer address>``."""

    def __init__(self, netns: str, name: str, port: int, bind: str = "0.0.0.0") -> None:
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={netns}", PYTHON, "-c", _SERVER, name, str(port), bind],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.close()
            raise AssertionError(f"TCP server {name} did not start: {line!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def network_spec(
    name: str,
    subnet: str,
    *,
    subnet_v6: str | None = None,
    internal: bool = False,
    options: dict[str, str] | None = None,
) -> NetworkSpec:
    """A network as the controller describes it to a driver: the first address of each subnet
    is the gateway."""

    def pool(text: str) -> IpamData:
        network = ipaddress.ip_network(text)
        gateway = ipaddress.ip_interface(f"{network[1]}/{network.prefixlen}")
        return IpamData(pool=network, gateway=gateway)

    return NetworkSpec(
        network_id=secrets.token_hex(32),
        name=name,
        options=dict(options or {}),
        internal=internal,
        enable_ipv6=subnet_v6 is not None,
        ipv4=(pool(subnet),),
        ipv6=(pool(subnet_v6),) if subnet_v6 else (),
    )


def overlay_spec(
    ids: MemoryIds,
    driver: OverlayDriver,
    name: str,
    subnet: str = "10.100.0.0/24",
    *,
    subnet_v6: str | None = None,
    internal: bool = False,
    options: dict[str, str] | None = None,
) -> NetworkSpec:
    """An overlay network with its VNI allocated once (through ``driver.allocate_network``)
    and put among its options, as every host then sees it."""
    draft = network_spec(name, subnet, subnet_v6=subnet_v6, internal=internal, options=options)
    allocated = driver.allocate_network(draft, ids)
    return NetworkSpec(
        network_id=draft.network_id,
        name=draft.name,
        options={**draft.options, **allocated},
        internal=draft.internal,
        enable_ipv6=draft.enable_ipv6,
        ipv4=draft.ipv4,
        ipv6=draft.ipv6,
    )


@dataclass
class OverlayHost:
    """A simulated host with its overlay (and bridge) driver, made inside its namespace."""

    sim: SimHost
    root: Path
    host: HostNetwork = field(init=False)
    firewall: NftablesFirewall = field(init=False)
    ports: PortMapper = field(init=False)
    driver: OverlayDriver = field(init=False)
    bridge_driver: BridgeDriver = field(init=False)
    boxes: list[Box] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start()

    def start(self, **driver_options: Any) -> None:
        """Make the host's parts (again: a restarted daemon)."""
        with self.sim.namespace.entered():
            self.host = HostNetwork()
            self.firewall = NftablesFirewall()
            self.ports = PortMapper(self.host)
        options: dict[str, Any] = {
            "advertise_address": ipaddress.ip_address(self.sim.address),
            "namespace_dir": self.root / "overlay-netns" / self.sim.name,
        }
        self.driver = OverlayDriver(
            self.host, self.firewall, self.ports, **options | driver_options
        )
        self.bridge_driver = BridgeDriver(self.host, self.firewall, self.ports)
        self.firewall.start()

    def stop(self) -> None:
        """Close the parts as a stopping daemon does: kernel objects stay."""
        self.driver.close()
        self.ports.close()
        self.firewall.close()
        self.host.close()

    def run(self, *command: str, check: bool = True) -> str:
        return self.sim.run(*command, check=check)

    def links(self) -> dict[str, dict[str, Any]]:
        """``ip -d -j link`` of the host, by name."""
        return {link["ifname"]: link for link in json.loads(self.run("ip", "-d", "-j", "link"))}

    def namespace(self, network_id: str) -> str:
        """The path of the network's own namespace on this host."""
        return str(self.driver.namespace_dir / network_id)

    def namespaces(self) -> list[str]:
        """The network ids of the overlay namespaces pinned on this host."""
        found = self.driver.namespace_dir
        return sorted(p.name for p in found.iterdir()) if found.is_dir() else []

    def network_run(self, network_id: str, *command: str, check: bool = True) -> str:
        """``command`` inside the network's namespace."""
        return run_in(self.namespace(network_id), *command, check=check)

    def network_links(self, network_id: str) -> dict[str, dict[str, Any]]:
        """``ip -d -j link`` inside the network's namespace, by name."""
        found = json.loads(self.network_run(network_id, "ip", "-d", "-j", "link"))
        return {link["ifname"]: link for link in found}

    def fdb(self, network_id: str) -> list[dict[str, Any]]:
        """The VXLAN device's own (``self``) FDB entries."""
        command = ("bridge", "-j", "fdb", "show", "dev", VXLAN)
        entries = json.loads(self.network_run(network_id, *command))
        return [e for e in entries if "self" in e.get("flags", [])]

    def neighbours(self, network_id: str) -> list[dict[str, Any]]:
        """The VXLAN device's permanent neighbour entries."""
        command = ("ip", "-j", "neigh", "show", "dev", VXLAN)
        return [
            n
            for n in json.loads(self.network_run(network_id, *command))
            if "PERMANENT" in n.get("state", [])
        ]

    def sandbox(self, name: str) -> str:
        """A sandbox namespace as the controller makes one: loopback up, IPv6 off for the
        interfaces made in it later unless they get an IPv6 address."""
        path = self.root / "netns" / f"{self.sim.name}-{name}-{secrets.token_hex(3)}"
        create_netns(path).close()
        with sandbox_network(str(path)) as sandbox:
            sandbox.bring_up_loopback(ipv6=False)
        return str(path)

    def attach(
        self,
        spec: NetworkSpec,
        address: str | None = None,
        *,
        address_v6: str | None = None,
        key: str | None = None,
        ifname: str = "eth0",
        name: str = "c",
        driver: NetworkDriver | None = None,
    ) -> Box:
        """A sandbox joined to the overlay (or to a network of ``driver``), addressed and
        routed as the controller would."""
        driver = driver or self.driver
        key = key or self.sandbox(name)
        endpoint_id = secrets.token_hex(32)
        v4 = ipaddress.IPv4Interface(address) if address else None
        v6 = ipaddress.IPv6Interface(address_v6) if address_v6 else None
        info = driver.create_endpoint(
            EndpointSpec(spec.network_id, endpoint_id, address=v4, address_v6=v6)
        )
        assert info.mac_address is not None
        joined = driver.join(spec.network_id, endpoint_id, key, ifname)
        with sandbox_network(key) as sandbox:
            index = sandbox.configure_interface(ifname, [a for a in (v4, v6) if a is not None])
            if joined.gateway is not None:
                sandbox.set_default_route(joined.gateway, index)
            if joined.gateway_v6 is not None:
                sandbox.set_default_route(joined.gateway_v6, index)
        box = Box(key, self, spec.network_id, endpoint_id, info.mac_address, v4, v6, joined)
        self.boxes.append(box)
        return box

    def detach(self, box: Box) -> None:
        """Leave and delete the endpoint, then the sandbox (its namespace goes first, as the
        controller tears sandboxes down)."""
        delete_netns(box.key)
        self.driver.leave(box.network_id, box.endpoint_id, namespace_deleted=True)
        self.driver.delete_endpoint(box.network_id, box.endpoint_id)
        self.boxes.remove(box)

    def close(self) -> None:
        for box in list(self.boxes):
            delete_netns(box.key)
        self.boxes.clear()
        self.stop()


def introduce(*boxes: Box) -> None:
    """Tell every box's host of the boxes on other hosts (the controller's watches)."""
    for box in boxes:
        for other in boxes:
            if other.host is not box.host:
                other.host.driver.add_peer(box.network_id, box.peer())


class Pair(NamedTuple):
    """Two hosts on one overlay with a container on each."""

    h1: OverlayHost
    h2: OverlayHost
    spec: NetworkSpec
    a: Box
    b: Box


def overlay_pair(
    make_hosts: Callable[[int], list[OverlayHost]],
    ids: MemoryIds,
    subnet: str = "10.100.0.0/24",
    *,
    subnet_v6: str | None = None,
    internal: bool = False,
    introduced: bool = True,
) -> Pair:
    """Two new hosts that know of one overlay ("ov1"), container ``a`` on h1 at the subnet's
    second address and ``b`` on h2 at its third (in each family), told of each other unless
    not ``introduced``."""
    h1, h2 = make_hosts(2)
    spec = overlay_spec(ids, h1.driver, "ov1", subnet, subnet_v6=subnet_v6, internal=internal)
    for host in (h1, h2):
        host.driver.create_network(spec)
    boxes = []
    for host, name, nth in ((h1, "a", 2), (h2, "b", 3)):
        v4 = ipaddress.ip_network(subnet)
        v6 = ipaddress.ip_network(subnet_v6) if subnet_v6 else None
        boxes.append(
            host.attach(
                spec,
                f"{v4[nth]}/{v4.prefixlen}",
                address_v6=f"{v6[nth]}/{v6.prefixlen}" if v6 else None,
                name=name,
            )
        )
    a, b = boxes
    if introduced:
        introduce(a, b)
    return Pair(h1, h2, spec, a, b)


def own_links(host: OverlayHost) -> list[str]:
    """The links of a host besides loopback and its underlay link, and its overlay
    namespaces (as ``netns:<network id>``)."""
    links = [name for name in host.links() if name not in ("lo", "eth0")]
    return sorted(links + [f"netns:{n}" for n in host.namespaces()])


def settled_links(host: OverlayHost, expected: list[str], timeout: float = 10) -> list[str]:
    """``own_links`` once they are ``expected`` (or the timeout passed): the host end of a
    deleted sandbox's veth goes when the kernel's namespace cleanup, a work queue, gets to it,
    and a last leave's namespace after the driver's background thread."""
    host.host.drain_deletions()
    deadline = time.monotonic() + timeout
    while (found := own_links(host)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return found
