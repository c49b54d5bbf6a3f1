"""The fault-injection harness: the daemon is killed at step k of a scenario, for every k, then
restarted; the invariants must hold, and the scenario must complete from where it stopped.

A scenario is a list of Engine API calls that together take every multi-step operation: network
create and delete, container create, start (with published ports), connect, disconnect, stop,
restart, kill and removal. For one k (``crash_run``):

1. the daemon starts with ``CNM_CRASH_AT=k`` (``cnm.faults``): it kills itself with SIGKILL at
   its k-th step, counted from when it serves;
2. the scenario runs until a call finds the daemon dead (every call before must succeed);
3. the daemon starts again, and the invariants are checked (``violations``): no record without
   its owner (a sandbox no running container holds, an endpoint of a missing sandbox or
   network), no kernel object without its record (a namespace, veth or tagged bridge, an
   nftables element, a host port held by the daemon), no address held twice, and the running
   containers reachable: their published ports from the host, their names through the
   embedded DNS;
4. the scenario goes on from the call that was cut short: each call must succeed, or answer
   what a call that had already been done answers (409 for a create, 304 for a start...);
5. at its end everything it made is gone again: the same checks, and nothing left at all.

When a k passes the last step, the scenario completes without a crash and the sweep ends. A
run's daemon root and namespace serve every k of a sweep (a clean run leaves them as it found
them); after a violation they are made anew, so one failure cannot spill into the next k.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cnm.model import Endpoint, Network, Sandbox
from cnm.osl.namespace import NetNamespace, delete_netns
from cnm.runtime.model import Container
from tests.support.daemon import Daemon, make_netns
from tests.support.netns import unmount_namespaces_under
from tests.support.runtime import BUSYBOX, BUSYBOX_TAR

CRASH_WAIT_S = 10.0
REACH_TIMEOUT_S = 5.0
# busybox's wget crashes outside a container; Python fetches the page (or prints nothing).
FETCH = (
    "import sys, urllib.request\n"
    "try:\n"
    f"    print(urllib.request.urlopen(sys.argv[1], timeout={REACH_TIMEOUT_S}).read().decode())\n"
    "except OSError as err:\n"
    "    print(err, file=sys.stderr)\n"
)
SETTLE_S = 10.0  # a machine under load may take this long after a restart


@dataclass(frozen=True)
class Call:
    """One call of a scenario: what it answers when it succeeds, and what else it may answer
    when it is made again after a crash (its work may already be done)."""

    method: str
    path: str
    body: object = None
    ok: tuple[int, ...] = (200, 201, 204)
    again: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _network(name: str, subnet: str, **extra: object) -> Call:
    body = {"Name": name, "IPAM": {"Config": [{"Subnet": subnet}]}, **extra}
    return Call("POST", "/networks/create", body, again=(409,))


def _container(name: str, network: str, cmd: list[str], **host: object) -> Call:
    body = {"Image": BUSYBOX, "Cmd": cmd, "HostConfig": {"NetworkMode": network, **host}}
    return Call("POST", f"/containers/create?name={name}", body, again=(409,))


def _start(name: str) -> Call:
    return Call("POST", f"/containers/{name}/start", again=(304,))


WEB = ["httpd", "-f", "-p", "80", "-h", "/etc"]  # serves /etc/hostname: the container's id
SLEEP = ["sleep", "600"]

# Names hold a letter that is not a hex digit: a name of only hex digits that no object holds
# any more is taken as an id prefix (Docker's lookup), and may name another object when a call
# is made again after a crash.
SCENARIOS: dict[str, list[Call]] = {
    # Two networks, a published port, connect and disconnect, stop and removal.
    "lifecycle": [
        _network("na", "10.61.0.0/24"),
        _network("nb", "10.62.0.0/24"),
        _container("web", "na", WEB, PortBindings={"80/tcp": [{"HostPort": "18080"}]}),
        _start("web"),
        _container("cli", "na", SLEEP),
        _start("cli"),
        Call("POST", "/networks/nb/connect", {"Container": "cli"}, again=(403,)),
        Call("POST", "/networks/nb/disconnect", {"Container": "cli"}, again=(403,)),
        Call("POST", "/containers/cli/stop?t=0", again=(304,)),
        Call("DELETE", "/containers/cli?force=1", again=(404,)),
        Call("DELETE", "/containers/web?force=1", again=(404,)),
        Call("DELETE", "/networks/nb", again=(404,)),
        Call("DELETE", "/networks/na", again=(404,)),
    ],
    # Dual stack, ports on both families, a restart, a kill and a container sharing another's
    # namespace.
    "dual-stack": [
        _network(
            "n6",
            "10.63.0.0/24",
            EnableIPv6=True,
            IPAM={"Config": [{"Subnet": "10.63.0.0/24"}, {"Subnet": "fd00:63::/64"}]},
        ),
        _container("w6", "n6", WEB, PortBindings={"80/tcp": [{"HostPort": "18081"}]}),
        _start("w6"),
        Call("POST", "/containers/w6/restart?t=0"),
        _container("side", "container:w6", SLEEP),
        _start("side"),
        Call("POST", "/containers/side/kill", again=(409,)),
        Call("DELETE", "/containers/side", again=(404,)),
        Call("DELETE", "/containers/w6?force=1", again=(404,)),
        Call("DELETE", "/networks/n6", again=(404,)),
    ],
    # The default bridge network, ports of every form, a stop and two starts.
    "ports": [
        _container(
            "pw",
            "bridge",
            WEB,
            PortBindings={
                "80/tcp": [{"HostPort": "18082"}, {"HostIp": "127.0.0.1", "HostPort": "18083"}],
                "81/udp": [{}],
            },
            PublishAllPorts=True,
        ),
        _start("pw"),
        Call("POST", "/containers/pw/stop?t=0", again=(304,)),
        _start("pw"),
        Call("POST", "/containers/pw/restart?t=0"),
        Call("DELETE", "/containers/pw?force=1", again=(404,)),
    ],
    # Three containers on two networks (one internal), aliases, a rename, a stop and start.
    "several": [
        _network("fx", "10.65.0.0/24"),
        _network("fy", "10.67.0.0/24", Internal=True),
        Call(
            "POST",
            "/containers/create?name=k1",
            {
                "Image": BUSYBOX,
                "Cmd": SLEEP,
                "HostConfig": {"NetworkMode": "fx"},
                "NetworkingConfig": {"EndpointsConfig": {"fx": {"Aliases": ["alpha"]}}},
            },
            again=(409,),
        ),
        _start("k1"),
        _container("k2", "fx", WEB, PortBindings={"80/tcp": [{"HostPort": "18084"}]}),
        _start("k2"),
        _container("k3", "fy", SLEEP),
        _start("k3"),
        Call("POST", "/networks/fy/connect", {"Container": "k2"}, again=(403,)),
        Call("POST", "/networks/fy/connect", {"Container": "k1"}, again=(403,)),
        Call("POST", "/containers/k1/rename?name=k1b", again=(404,)),
        Call("POST", "/networks/fx/disconnect", {"Container": "k1b"}, again=(403,)),
        Call("POST", "/containers/k2/stop?t=0", again=(304,)),
        _start("k2"),
        Call("DELETE", "/containers/k3?force=1", again=(404,)),
        Call("DELETE", "/containers/k1b?force=1", again=(404,)),
        Call("DELETE", "/containers/k2?force=1", again=(404,)),
        Call("DELETE", "/networks/fy", again=(404,)),
        Call("DELETE", "/networks/fx", again=(404,)),
    ],
    # macvlan without a parent: its children hang off a placeholder bridge of cnm's own.
    "macvlan": [
        _network("fm", "10.68.0.0/24", Driver="macvlan"),
        _container("m1", "fm", WEB),
        _start("m1"),
        _container("m2", "fm", SLEEP),
        _start("m2"),
        Call("POST", "/containers/m1/stop?t=0", again=(304,)),
        Call("DELETE", "/containers/m1?force=1", again=(404,)),
        Call("DELETE", "/containers/m2?force=1", again=(404,)),
        Call("DELETE", "/networks/fm", again=(404,)),
    ],
    # Containers that remove themselves when they exit (--rm): the teardown and the removal
    # run after the start has answered. A start cut short may have run its container to its
    # end, and to its removal, by the time the restarted daemon is asked again (404).
    "auto-remove": [
        _network("fr", "10.69.0.0/24"),
        _container("r1", "fr", ["sleep", "0.2"], AutoRemove=True),
        Call("POST", "/containers/r1/start", again=(304, 404)),
        Call("POST", "/containers/r1/wait?condition=removed", again=(404,)),
        _container("r2", "fr", ["sleep", "0.2"], AutoRemove=True),
        Call("POST", "/containers/r2/start", again=(304, 404)),
        Call("POST", "/containers/r2/wait?condition=removed", again=(404,)),
        Call("DELETE", "/networks/fr", again=(404,)),
    ],
    # Static addresses, a link, a connect with an alias and a static address, and a prune.
    "static": [
        _network("fs", "10.71.0.0/24"),
        _network("ft", "10.72.0.0/24"),
        Call(
            "POST",
            "/containers/create?name=s1",
            {
                "Image": BUSYBOX,
                "Cmd": WEB,
                "HostConfig": {"NetworkMode": "fs"},
                "NetworkingConfig": {
                    "EndpointsConfig": {"fs": {"IPAMConfig": {"IPv4Address": "10.71.0.50"}}}
                },
            },
            again=(409,),
        ),
        _start("s1"),
        _container("s2", "fs", SLEEP, Links=["s1:db"]),
        _start("s2"),
        Call(
            "POST",
            "/networks/ft/connect",
            {
                "Container": "s2",
                "EndpointConfig": {
                    "Aliases": ["second"],
                    "IPAMConfig": {"IPv4Address": "10.72.0.60"},
                },
            },
            again=(403,),
        ),
        Call("POST", "/containers/s2/restart?t=0"),
        Call("DELETE", "/containers/s2?force=1", again=(404,)),
        Call("DELETE", "/containers/s1?force=1", again=(404,)),
        Call("POST", "/networks/prune"),
    ],
    # Published ports that move: the network with the default route leaves, another takes it.
    "moving-ports": [
        _network("g4", "10.73.0.0/24"),
        _network(
            "g6",
            "10.74.0.0/24",
            EnableIPv6=True,
            IPAM={"Config": [{"Subnet": "10.74.0.0/24"}, {"Subnet": "fd00:74::/64"}]},
        ),
        _container("q1", "g4", WEB, PortBindings={"80/tcp": [{"HostPort": "18085"}]}),
        _start("q1"),
        Call("POST", "/networks/g6/connect", {"Container": "q1"}, again=(403,)),
        Call("POST", "/networks/g4/disconnect", {"Container": "q1"}, again=(403,)),
        Call("POST", "/networks/g4/connect", {"Container": "q1"}, again=(403,)),
        Call("POST", "/containers/q1/stop?t=0", again=(304,)),
        _start("q1"),
        Call("DELETE", "/containers/q1?force=1", again=(404,)),
        Call("DELETE", "/networks/g6", again=(404,)),
        Call("DELETE", "/networks/g4", again=(404,)),
    ],
}


@dataclass
class Outcome:
    k: int
    crashed_in: str | None  # the call the crash cut short; None: the scenario completed
    violations: list[str] = field(default_factory=list)


class CrashHarness:
    """A daemon root and namespace for one sweep, made anew after a violation."""

    def __init__(self, root: Path) -> None:
        self.base = root
        self.generation = 0
        self.netns: NetNamespace | None = None
        self.root = root

    def __enter__(self) -> CrashHarness:
        self._fresh()
        return self

    def __exit__(self, *exc: object) -> None:
        self._dispose()

    def _fresh(self) -> None:
        self._dispose()
        self.generation += 1
        self.root = self.base / f"run{self.generation}"
        self.netns = make_netns()
        daemon = self.daemon()
        try:
            daemon.start()
            reply = daemon.request(
                "POST",
                f"/images/create?fromSrc=-&repo={BUSYBOX.split(':')[0]}&tag=local",
                BUSYBOX_TAR.read_bytes(),
                {"Content-Type": "application/x-tar"},
            )
            assert reply.status == 200, reply.body
        finally:
            daemon.stop()

    def _dispose(self) -> None:
        if self.netns is None:
            return
        daemon = self.daemon()
        try:  # a daemon of a failed run may have left containers running
            daemon.start()
            for container in _json(daemon, "/containers/json?all=1"):
                daemon.request("DELETE", f"/containers/{container['Id']}?force=1")
        except (Exception, pytest.fail.Exception):
            pass  # the namespace goes below all the same
        finally:
            daemon.stop()
        unmount_namespaces_under(self.root)
        self.netns.close()
        delete_netns(self.netns.path)
        self.netns = None
        shutil.rmtree(self.root, ignore_errors=True)

    def daemon(self, crash_at: int | None = None) -> Daemon:
        assert self.netns is not None
        environment = {"CNM_CRASH_AT": str(crash_at)} if crash_at else {}
        return Daemon(self.root, self.netns, environment=environment)

    def run(self, scenario: list[Call], k: int) -> Outcome:
        """Crash at step ``k`` of ``scenario`` and check what follows (the module docstring)."""
        started: list[Daemon] = []
        try:
            outcome = self._run(scenario, k, started)
        except BaseException:
            for daemon in started:  # an interrupt, or a broken harness: no daemon outlives it
                daemon.stop(signal.SIGKILL)
            raise
        if outcome.violations:
            self._fresh()
        return outcome

    def _run(self, scenario: list[Call], k: int, started: list[Daemon]) -> Outcome:
        daemon = self.daemon(crash_at=k)
        started.append(daemon)
        daemon.start()
        cut = len(scenario)
        for index, call in enumerate(scenario):
            try:
                reply = daemon.request(call.method, call.path, call.body)
            except (OSError, http.client.HTTPException):
                cut = index
                break
            if reply.status not in call.ok:
                daemon.stop()
                return Outcome(k, None, [f"{call} answered {reply.status} {reply.body!r}"])
        process = daemon.process
        assert process is not None
        if cut == len(scenario):
            try:  # a crash may still come, in a thread that outlives the last response
                process.wait(0.5)
            except subprocess.TimeoutExpired:
                try:
                    return Outcome(k, None, _clean(self, daemon))
                finally:
                    daemon.stop()
            cut = len(scenario) - 1
        try:
            process.wait(CRASH_WAIT_S)
        except subprocess.TimeoutExpired:
            daemon.stop()
            return Outcome(k, str(scenario[cut]), [f"{scenario[cut]} failed, no crash"])
        if process.returncode != -9:
            return Outcome(k, str(scenario[cut]), [f"the daemon exited {process.returncode}"])
        daemon.process = None
        outcome = Outcome(k, str(scenario[cut]))
        restarted = self.daemon()
        started.append(restarted)
        restarted.start()
        try:
            outcome.violations += [f"after restart: {v}" for v in violations(self, restarted)]
            for call in scenario[cut:]:
                try:
                    reply = restarted.request(call.method, call.path, call.body)
                except (OSError, http.client.HTTPException) as err:
                    outcome.violations.append(f"{call} made again got no answer: {err!r}")
                    break
                if reply.status not in (*call.ok, *call.again):
                    outcome.violations.append(
                        f"{call} made again answered {reply.status} {reply.body!r}"
                    )
            outcome.violations += _clean(self, restarted)
        finally:
            restarted.stop()
        return outcome


# ----------------------------------------------------------------------------- the invariants


def _json(daemon: Daemon, path: str) -> Any:
    reply = daemon.request("GET", path)
    assert reply.status == 200, (path, reply.body)
    return reply.json()


@dataclass
class _Records:
    networks: dict[str, Network]
    endpoints: dict[str, Endpoint]
    sandboxes: dict[str, Sandbox]
    containers: dict[str, Container]
    ports: set[str]  # the sandbox ids of the ports/ records


def _records(harness: CrashHarness) -> _Records:
    """The store as it is on disk (read-only beside the daemon: SQLite in WAL mode)."""
    uri = f"file:{harness.root / 'data' / 'cnm.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        rows = db.execute("SELECT key, value FROM kv").fetchall()
    by_prefix: dict[str, list[bytes]] = {}
    for key, value in rows:
        by_prefix.setdefault(key.split("/")[0], []).append(value)
    networks = [Network.from_json(v) for v in by_prefix.get("network", [])]
    endpoints = [Endpoint.from_json(v) for v in by_prefix.get("endpoint", [])]
    sandboxes = [Sandbox.from_json(v) for v in by_prefix.get("sandbox", [])]
    containers = [Container.from_json(v) for v in by_prefix.get("container", [])]
    ports = {key.removeprefix("ports/") for key, _ in rows if key.startswith("ports/")}
    return _Records(
        {n.id: n for n in networks},
        {e.id: e for e in endpoints},
        {s.id: s for s in sandboxes},
        {c.id: c for c in containers},
        ports,
    )


def _in(harness: CrashHarness, *command: str, check: bool = True) -> str:
    assert harness.netns is not None
    done = subprocess.run(
        ["nsenter", f"--net={harness.netns.path}", *command],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{command}: {done.stderr.strip()}")
    return done.stdout


def violations(harness: CrashHarness, daemon: Daemon) -> list[str]:
    """Every broken invariant of a running daemon (see the module docstring), once the kernel
    settled: it frees a deleted namespace, and the veths in it, in a work queue of its own,
    and the bridge driver deletes a bridge in the background."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        found = _violations(harness, daemon)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _violations(harness: CrashHarness, daemon: Daemon) -> list[str]:
    found: list[str] = []
    records = _records(harness)
    running = {c.id: c for c in records.containers.values() if c.state.running}
    held = {c.sandbox_id for c in running.values() if c.sandbox_id}
    # Records and their owners.
    for sandbox in records.sandboxes.values():
        if sandbox.id not in held:
            found.append(f"sandbox {sandbox.id[:12]} of {sandbox.container_id[:12]} has no owner")
    for endpoint in records.endpoints.values():
        if endpoint.network_id not in records.networks:
            found.append(f"endpoint {endpoint.name} names a missing network")
        if endpoint.sandbox_id not in records.sandboxes:
            found.append(f"endpoint {endpoint.name} on {endpoint.network_id[:12]} is in no sandbox")
    for sandbox_id in records.ports - set(records.sandboxes):
        found.append(f"ports of sandbox {sandbox_id[:12]}, which is gone")
    for container in records.containers.values():
        if not container.state.running and container.sandbox_id:
            found.append(f"stopped container {container.name} names a sandbox")
    names = {n.id: n.name for n in records.networks.values()}
    for container in running.values():
        if container.host_config.network_mode.startswith("container:"):
            continue
        joined = {
            names.get(e.network_id, e.network_id)
            for e in records.endpoints.values()
            if e.sandbox_id == container.sandbox_id
        }
        if joined != set(container.networks):
            found.append(
                f"{container.name} is on {sorted(joined)}, its record says "
                f"{sorted(container.networks)}"
            )
    taken: dict[tuple[str, str], str] = {}
    for endpoint in records.endpoints.values():
        for address in (endpoint.ipv4_address, endpoint.ipv6_address):
            if address is None:
                continue
            key = (endpoint.network_id, str(ipaddress.ip_interface(address).ip))
            if key in taken:
                found.append(f"address {key[1]} held by {taken[key]} and {endpoint.name}")
            taken[key] = endpoint.name
    # Kernel objects and their records.
    netns_dir = harness.root / "exec" / "netns"
    namespaces = (
        {p.name for p in netns_dir.iterdir()} - {"default"} if netns_dir.exists() else set()
    )
    if namespaces != set(records.sandboxes):
        found.append(f"namespaces {sorted(namespaces)} != sandboxes {sorted(records.sandboxes)}")
    links = json.loads(_in(harness, "ip", "-j", "-d", "link", "show"))
    veths = {
        link["ifname"] for link in links if link.get("linkinfo", {}).get("info_kind") == "veth"
    }
    bridged = {n.id for n in records.networks.values() if n.driver == "bridge"}
    joined = {
        f"veth{e.id[:11]}"
        for e in records.endpoints.values()
        if e.sandbox_id and e.network_id in bridged
    }
    if veths != joined:
        found.append(f"host veths {sorted(veths)} != joined endpoints {sorted(joined)}")
    tagged = {
        link["ifalias"].removeprefix("cnm:net:")
        for link in links
        if link.get("ifalias", "").startswith("cnm:net:")
    }
    if tagged != bridged:
        found.append(f"tagged bridges {sorted(tagged)} != bridge networks {sorted(bridged)}")
    found += _firewall_violations(harness, records)
    published = _published(daemon, running)
    listening = _listening_ports(harness, daemon)
    if listening != {(proto, port) for proto, port, _, _ in published}:
        found.append(f"host ports held {sorted(listening)} != published {sorted(published)}")
    found += _reachability(harness, daemon, records, running, published)
    return found


def _firewall_violations(harness: CrashHarness, records: _Records) -> list[str]:
    ruleset = json.loads(_in(harness, "nft", "-j", "list", "table", "inet", "cnm"))
    elements: dict[str, list[Any]] = {}
    for item in ruleset["nftables"]:
        for kind in ("set", "map"):
            if kind in item:
                elements[item[kind]["name"]] = item[kind].get("elem", [])
    bridged = {n.id for n in records.networks.values() if n.driver == "bridge"}
    addresses = {
        str(ipaddress.ip_interface(address).ip)
        for e in records.endpoints.values()
        if e.sandbox_id and e.network_id in bridged
        for address in (e.ipv4_address, e.ipv6_address)
        if address
    }
    in_sets = set()
    for name in ("endpoints4", "endpoints6"):
        for element in elements.get(name, []):
            bridge_and_address = element.get("concat", element) if isinstance(element, dict) else []
            in_sets.add(str(bridge_and_address[-1]))
    found = []
    if in_sets != addresses:
        found.append(
            f"firewall endpoints {sorted(in_sets)} != joined addresses {sorted(addresses)}"
        )
    return found


def _published(daemon: Daemon, running: dict[str, Container]) -> set[tuple[str, int, str, str]]:
    """(protocol, host port, container port, container name) of every port the running
    containers publish, as inspect shows them."""
    found = set()
    for container in running.values():
        data = _json(daemon, f"/containers/{container.id}/json")
        for key, bindings in (data["NetworkSettings"]["Ports"] or {}).items():
            port, proto = key.split("/")
            for binding in bindings or []:
                found.add((proto, int(binding["HostPort"]), port, container.name))
    return found


def _listening_ports(harness: CrashHarness, daemon: Daemon) -> set[tuple[str, int]]:
    """(protocol, port) of the sockets the daemon holds in its namespace: its host ports."""
    assert daemon.process is not None
    out = _in(harness, "ss", "-Htulnp")
    ports = set()
    for line in out.splitlines():
        if f"pid={daemon.process.pid}," in line:
            fields = line.split()
            ports.add((fields[0], int(fields[4].rsplit(":", 1)[1])))
    return ports


def _reachability(
    harness: CrashHarness,
    daemon: Daemon,
    records: _Records,
    running: dict[str, Container],
    published: set[tuple[str, int, str, str]],
) -> list[str]:
    found = []
    for proto, port, container_port, name in sorted(published):
        if (proto, container_port) != ("tcp", "80"):
            continue  # only port 80 serves
        served = _in(harness, sys.executable, "-c", FETCH, f"http://127.0.0.1:{port}/hostname")
        container = next(c for c in running.values() if c.name == name)
        if served.strip() != container.config.hostname:
            found.append(f"{name} is not reachable on its published port {port}: {served!r}")
    by_sandbox = {s.id: s for s in records.sandboxes.values()}
    for container in running.values():
        sandbox = by_sandbox.get(container.sandbox_id or "")
        if sandbox is None or not sandbox.embedded_dns:
            continue
        for other in running.values():
            if other.id == container.id or other.host_config.network_mode != (
                container.host_config.network_mode
            ):
                continue
            answer = subprocess.run(
                [
                    "nsenter",
                    f"--net={sandbox.key}",
                    "busybox",
                    "nslookup",
                    other.name,
                    "127.0.0.11",
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout
            mine = {e.network_id for e in records.endpoints.values() if e.sandbox_id == sandbox.id}
            expected = {
                e.ipv4_address.split("/")[0]
                for e in records.endpoints.values()
                if e.sandbox_id == other.sandbox_id and e.network_id in mine and e.ipv4_address
            }
            if not expected:
                continue  # no network in common
            if not any(address in answer for address in expected):
                found.append(f"{container.name} does not resolve {other.name}: {answer!r}")
    return found


def _clean(harness: CrashHarness, daemon: Daemon) -> list[str]:
    """The scenario's end: the invariants, and nothing of it left."""
    found = violations(harness, daemon)
    records = _records(harness)
    leftovers = [c.name for c in records.containers.values()]
    leftovers += [n.name for n in records.networks.values() if not n.predefined]
    if leftovers or records.sandboxes or records.endpoints:
        found.append(f"left after the scenario: {leftovers}, {len(records.endpoints)} endpoints")
    return [f"at the end: {v}" for v in found]


@contextmanager
def crash_harness(root: Path) -> Iterator[CrashHarness]:
    with CrashHarness(root) as harness:
        yield harness
