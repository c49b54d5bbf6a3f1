"""Probes of real kernel state for the controller's kernel tests.

They use real tools run as subprocesses: a child process inherits the calling thread's network
namespace, so a plain ``ip`` sees the test's host namespace and ``nsenter --net=<sandbox key>``
sees a sandbox. Packets are sent only after ``ip route get`` shows they leave through an
interface the test made.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from cnm.controller import Controller
from cnm.errors import CnmError

PYTHON = sys.executable
HOST_RESOLV_CONF = (
    "# written by the test\n"
    "nameserver 127.0.0.53\n"
    "nameserver 192.0.2.53\n"
    "nameserver ::1\n"
    "nameserver 2001:db8::53\n"
    "search example.test corp.test\n"
    "options ndots:2 edns0\n"
)


def nsfs_mounts() -> set[str]:
    """Mount points of every namespace bind mount this process can see."""
    with open("/proc/self/mountinfo") as mounts:
        return {line.split()[4] for line in mounts if " nsfs " in line}


def stop(ctl: Controller) -> None:
    """Close a controller and its store (a daemon stopping); closing twice is harmless."""
    ctl.close()
    ctl.store.close()


def run(*args: str, netns: str | None = None, check: bool = True, timeout: float = 10) -> str:
    cmd = list(args)
    if netns is not None:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def ip_json(*args: str, netns: str | None = None) -> Any:
    out = run("ip", "-j", *args, netns=netns)
    return json.loads(out) if out.strip() else []


def links(netns: str | None = None) -> dict[str, dict[str, Any]]:
    """Links by name, with details (``linkinfo``, ``ifalias``, ``master``, ``mtu``...)."""
    return {link["ifname"]: link for link in ip_json("-d", "link", "show", netns=netns)}


def link(name: str, netns: str | None = None) -> dict[str, Any] | None:
    return links(netns).get(name)


def addresses(name: str, netns: str | None = None, family: str | None = None) -> list[str]:
    """``['10.1.0.2/24', ...]`` of a link, excluding IPv6 link-local addresses."""
    args = ["addr", "show", "dev", name]
    if family:
        args = [f"-{family}", *args]
    found = []
    for entry in ip_json(*args, netns=netns):
        for info in entry.get("addr_info", []):
            if info.get("scope") == "link" and info["family"] == "inet6":
                continue
            found.append(f"{info['local']}/{info['prefixlen']}")
    return found


def routes(netns: str | None = None, family: str = "4") -> list[dict[str, Any]]:
    return ip_json(f"-{family}", "route", "show", netns=netns)


def default_routes(netns: str, family: str = "4") -> list[dict[str, Any]]:
    return [r for r in routes(netns, family) if r["dst"] == "default"]


def sysctl(key: str, netns: str | None = None) -> str:
    return run("cat", "/proc/sys/" + key.replace(".", "/"), netns=netns).strip()


def route_get(netns: str, destination: str) -> dict[str, Any]:
    found = ip_json("route", "get", destination, netns=netns)
    assert found, f"no route to {destination} in {netns}"
    return found[0]


def assert_routed_via_test_interface(netns: str, destination: str) -> None:
    """The project's rule: before sending, the route must use an interface the test made."""
    dev = route_get(netns, destination)["dev"]
    assert dev in {f"eth{i}" for i in range(4)}, f"{destination} would leave {netns} via {dev}"


def host_veths(bridge: str | None = None) -> dict[str, dict[str, Any]]:
    """Host-side veths (optionally those enslaved to ``bridge``)."""
    return {
        name: info
        for name, info in links().items()
        if info.get("linkinfo", {}).get("info_kind") == "veth"
        and (bridge is None or info.get("master") == bridge)
    }


# ------------------------------------------------------------------ real packets

_ECHO_SERVER = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
srv = socket.socket(family, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(1)
srv.settimeout(float(sys.argv[3]))
print("ready", flush=True)
conn, peer = srv.accept()
conn.settimeout(float(sys.argv[3]))
data = conn.recv(1024)
conn.sendall(b"echo:" + data)
conn.close()
print("peer", peer[0], flush=True)
"""

_ECHO_CLIENT = r"""
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
conn.sendall(sys.argv[4].encode())
conn.settimeout(float(sys.argv[3]))
print(conn.recv(1024).decode(), flush=True)
"""


class EchoServer:
    """A one-shot TCP echo server in a namespace (None: the test's host namespace)."""

    def __init__(self, bind: str, port: int, netns: str | None, timeout: float = 5) -> None:
        cmd = [PYTHON, "-c", _ECHO_SERVER, bind, str(port), str(timeout)]
        if netns is not None:
            cmd = ["nsenter", f"--net={netns}", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.timeout = timeout
        line = self._readline()
        if line != "ready":
            self.close()
            raise AssertionError(f"echo server did not start: {line!r} {self.proc.stderr.read()}")

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            return ""
        return self.proc.stdout.readline().strip()

    def peer(self) -> str:
        """The address the one connection came from (after a client ran)."""
        line = self._readline()
        assert line.startswith("peer "), f"server saw no peer: {line!r}"
        return line.split()[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tcp_echo(netns: str, destination: str, port: int, payload: str, timeout: float = 5) -> str:
    """Connect from the sandbox at ``netns`` and return the echoed answer."""
    assert_routed_via_test_interface(netns, destination)
    out = run(
        PYTHON,
        "-c",
        _ECHO_CLIENT,
        destination,
        str(port),
        str(timeout),
        payload,
        netns=netns,
        timeout=timeout + 5,
    )
    return out.strip()


# ------------------------------------------------------------------ "nothing left behind"


def snapshot(ctl: Controller) -> dict[str, Any]:
    """Everything a failed operation must leave exactly as it was."""
    netns_dir = ctl.netns_dir
    sandbox_dir = ctl.sandbox_dir
    return {
        "links": sorted(links()),
        "store": sorted(entry.key for entry in ctl.store.list("")),
        "netns": sorted(os.listdir(netns_dir)) if netns_dir.is_dir() else [],
        "sandbox_files": sorted(os.listdir(sandbox_dir)) if sandbox_dir.is_dir() else [],
        "networks": sorted(n.id for n in ctl.networks()),
        "endpoints": sorted(e.id for e in ctl.endpoints()),
        "sandboxes": sorted(s.id for s in ctl.sandboxes()),
    }


def fails_cleanly(
    ctl: Controller, call: Callable[[], object], error: type[CnmError], match: str | None = None
) -> CnmError:
    """Run ``call``, expect ``error`` (exactly that class) and no change of any state."""
    before = snapshot(ctl)
    with pytest.raises(CnmError, match=match) as info:
        call()
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert info.value.status == error.status
    assert snapshot(ctl) == before
    return info.value


def wait_for(predicate: Callable[[], bool], timeout: float = 3, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
