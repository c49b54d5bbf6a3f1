"""Real packets for the firewall tests: echo servers in namespaces, probes sent in parallel.

A server answers every TCP connection and UDP datagram on its ports with ``<name> <peer
address>``, so a probe tells who answered and what source address it saw (masquerading,
relays), and reports each to the test (``seen``), so a packet that cannot be answered is still
observed. One client process per sending namespace runs all of its probes at once in threads,
each bounded by a timeout, so a matrix of blocked pairs costs one timeout, not one per pair.

Before any probe, ``ip route get`` in the sending namespace must show an interface the test or
the controller made (the project's rule: traffic only to loopback or test namespaces).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

PYTHON = sys.executable
TEST_ROOTS = ("/run/cnm-test/", "/tmp/")
# Interfaces a test or the controller makes: loopback, sandbox ethN, cnm bridges, test veths.
OWN_DEVICES = re.compile(r"^(lo|eth\d|cnm0|br-[0-9a-f]{12}|vout\d|vin\d)$")

Target = tuple[str, str, int]  # (proto, address, port)

_SERVER = r"""
import socket, sys, threading
name, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
def tcp(sock):
    while True:
        conn, peer = sock.accept()
        print("seen tcp", peer[0], flush=True)
        try:
            conn.sendall(f"{name} {peer[0]}\n".encode())
        finally:
            conn.close()
def udp(sock):
    while True:
        data, peer = sock.recvfrom(2048)
        print("seen udp", peer[0], flush=True)
        sock.sendto(f"{name} {peer[0]}\n".encode(), peer)
for port in ports:
    for family, any_address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for kind, serve in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
            try:
                sock = socket.socket(family, kind)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((any_address, port))
            except OSError:
                continue  # no IPv6 in this namespace
            if kind == socket.SOCK_STREAM:
                sock.listen(64)
            threading.Thread(target=serve, args=(sock,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

_CLIENT = r"""
import json, socket, sys, threading
timeout, targets = float(sys.argv[1]), json.loads(sys.argv[2])
results = [None] * len(targets)
def send(i, proto, host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        if proto == "tcp":
            with socket.create_connection((host, port), timeout=timeout) as conn:
                conn.settimeout(timeout)
                results[i] = conn.recv(256).decode().strip() or None
        else:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                sock.sendto(b"probe", (host, port))
                results[i] = sock.recv(256).decode().strip() or None
    except OSError:
        results[i] = None
threads = [threading.Thread(target=send, args=(i, *t)) for i, t in enumerate(targets)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""


def _in(netns: str | None, cmd: list[str]) -> list[str]:
    if netns is None:
        return cmd
    assert netns.startswith(TEST_ROOTS), f"{netns} is not a test namespace"
    return ["nsenter", f"--net={netns}", *cmd]


def run(*cmd: str, netns: str | None = None, check: bool = True, stdin: str | None = None) -> str:
    done = subprocess.run(
        _in(netns, list(cmd)), input=stdin, capture_output=True, text=True, timeout=20
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} in {netns}: {done.stderr.strip()}")
    return done.stdout


def check_routes(netns: str | None, destinations: Iterable[str]) -> None:
    """The route from ``netns`` to every destination uses an interface the test made (or
    there is none: then nothing can leave)."""
    wanted = sorted(set(destinations))
    done = subprocess.run(
        _in(netns, ["ip", "-force", "-batch", "-"]),
        input="".join(f"route get {d}\n" for d in wanted),
        capture_output=True,
        text=True,
        timeout=20,
    )
    routed = re.findall(r"^(?:local |broadcast )?(\S+) .*?dev (\S+)", done.stdout, re.MULTILINE)
    for destination, dev in routed:
        assert OWN_DEVICES.match(dev), f"{destination} would leave {netns} through {dev}"
    unrouted = set(wanted) - {d for d, _ in routed}
    assert done.stderr.count("unreachable") >= len(unrouted), (wanted, done.stdout, done.stderr)


class EchoServer:
    """``<name> <peer>`` on TCP and UDP ``ports`` (IPv4 and IPv6) inside ``netns``."""

    def __init__(self, netns: str | None, name: str, ports: Sequence[int]) -> None:
        self.proc = subprocess.Popen(
            _in(netns, [PYTHON, "-c", _SERVER, name, ",".join(map(str, ports))]),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self._buffer = b""
        lines = self._lines(10)
        if lines[:1] != ["ready"]:
            self.close()
            raise AssertionError(f"echo server {name} did not start: {lines!r}")

    def _lines(self, wait: float) -> list[str]:
        """Complete output lines arriving within ``wait`` (then a short quiet period)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while select.select([fd], [], [], wait)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._buffer += chunk
            wait = 0.05
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line.decode() for line in lines]

    def seen(self, wait: float = 0.5) -> list[str]:
        """``["udp 198.18.0.2", ...]``: what reached the server since the last call."""
        return [line.removeprefix("seen ") for line in self._lines(wait)]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def probe(
    netns: str | None, targets: Iterable[Target], timeout: float = 1.0
) -> dict[Target, str | None]:
    """Send every probe at once from ``netns``; the answer of each, or None."""
    wanted = list(dict.fromkeys(targets))
    check_routes(netns, (t[1] for t in wanted))
    out = run(
        PYTHON, "-c", _CLIENT, str(timeout), json.dumps([list(t) for t in wanted]), netns=netns
    )
    return dict(zip(wanted, json.loads(out), strict=True))


def probe_from_all(
    jobs: dict[str | None, list[Target]], timeout: float = 1.0
) -> dict[str | None, dict[Target, str | None]]:
    """``probe`` from several namespaces at the same time."""
    with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
        futures = {ns: pool.submit(probe, ns, targets, timeout) for ns, targets in jobs.items()}
        return {ns: future.result() for ns, future in futures.items()}


def answer(
    netns: str | None, proto: str, address: str, port: int, timeout: float = 1.0
) -> str | None:
    return probe(netns, [(proto, address, port)], timeout)[(proto, address, port)]


def nft_list(family: str, table: str = "cnm") -> str:
    """``nft list table`` in the calling thread's namespace ("" when there is none)."""
    return run("nft", "list", "table", family, table, check=False)
