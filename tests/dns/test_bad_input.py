"""Bad input: malformed, oversized, unsupported and flooding queries get FORMERR, NOTIMP,
REFUSED or nothing, as fits; the resolver never crashes and never stops serving the others."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import dns.message
import dns.opcode
import dns.rcode
import pytest

from cnm.controller import Controller
from cnm.dns.resolver import Resolver, ResolverConfig
from cnm.model import Sandbox

from .queries import SERVER, addresses, ask, client_socket, make_network, make_sandbox, send_raw

QID = 0x4242


def header(flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", QID, flags, qd, an, ns, ar)


def question(name: bytes = b"\x03web\x00", qtype: int = 1, qclass: int = 1) -> bytes:
    return name + struct.pack("!HH", qtype, qclass)


def rcode_of(reply: bytes | None) -> int:
    assert reply is not None, "no reply"
    assert reply[:2] == struct.pack("!H", QID) and reply[2] & 0x80
    return reply[3] & 0x0F


@pytest.fixture
def pair(controller: Controller, resolver: Resolver) -> Iterator[tuple[Sandbox, Sandbox]]:
    """A sandbox named web and a client on one network; afterwards, no query may have raised
    inside the resolver."""
    make_network(controller, "bad", "10.60.0.0/24")
    yield make_sandbox(controller, "web", "bad"), make_sandbox(controller, "client", "bad")
    assert resolver.metrics()["Queries"]["errors"] == 0


@pytest.mark.parametrize(
    ("payload", "rcode"),
    [
        pytest.param(header(), dns.rcode.FORMERR, id="header-without-question"),
        pytest.param(header() + question(b"\x40" + b"a" * 64 + b"\x00"), 1, id="label-over-63"),
        pytest.param(header() + b"\x20abc\x00\x00\x01\x00\x01", 1, id="label-past-the-end"),
        pytest.param(header() + question(b"\xc0\x0c"), 1, id="pointer-to-itself"),
        pytest.param(
            header(ar=1) + question() + b"\xc0\x15" + b"\x00\x01\x00\x01" + b"\x00" * 6,
            1,
            id="compression-loop-in-additional",
        ),
        pytest.param(header() + question((b"\x3f" + b"x" * 63) * 5 + b"\x00"), 1, id="name-320"),
        pytest.param(header() + question() + b"junk", 1, id="trailing-junk"),
        pytest.param(header(qd=2) + question() + question(), 1, id="two-questions"),
        pytest.param(header(qd=0), 1, id="no-question"),
        pytest.param(header() + question(qtype=41), 1, id="opt-as-question"),
        pytest.param(header() + question() + b"\x00" * 5000, 1, id="oversized"),
        pytest.param(header(flags=0x0900) + question(), 4, id="opcode-status"),
        pytest.param(header(flags=0x2800) + question(), 4, id="opcode-update"),
        pytest.param(header(flags=0x0800) + question(), 4, id="opcode-iquery"),
        pytest.param(header() + question(qclass=3), 5, id="class-chaos"),
        pytest.param(header() + question(qclass=255), 5, id="class-any"),
        pytest.param(header() + question(qtype=252), 5, id="axfr"),
        pytest.param(header() + question(qtype=251), 5, id="ixfr"),
    ],
)
def test_malformed_and_unsupported_queries(
    pair: tuple[Sandbox, Sandbox], payload: bytes, rcode: int
) -> None:
    _, client = pair
    reply = send_raw(client, payload)
    assert rcode_of(reply) == rcode
    if rcode == dns.rcode.NOTIMP:
        assert reply is not None and reply[2] & 0x78 == payload[2] & 0x78  # opcode copied
    assert addresses(ask(client, "web")) != []


def test_edns_version_we_do_not_speak_is_badvers(pair: tuple[Sandbox, Sandbox]) -> None:
    _, client = pair
    reply = send_raw(client, dns.message.make_query("web", "A", use_edns=1).to_wire())
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.BADVERS


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x42\x42\x01", id="short-header"),
        pytest.param(header(flags=0x8180) + question(), id="a-response"),
    ],
)
def test_runts_and_responses_are_dropped(
    pair: tuple[Sandbox, Sandbox], resolver: Resolver, payload: bytes
) -> None:
    _, client = pair
    assert send_raw(client, payload, timeout=0.3) is None
    assert resolver.metrics()["Queries"]["dropped"] == 1
    assert addresses(ask(client, "web")) != []


def test_random_and_mutated_packets_never_break_the_server(
    pair: tuple[Sandbox, Sandbox], resolver: Resolver
) -> None:
    _, client = pair
    rng = random.Random(5)
    valid = [
        dns.message.make_query(name, qtype, use_edns=edns).to_wire()
        for name, qtype, edns in (("web", "A", False), ("web.bad", "AAAA", 0), ("x.test", "MX", 0))
    ]
    with client_socket(client) as sock:
        sock.connect((SERVER, 53))
        for i in range(3000):
            if i % 2:
                packet = bytearray(rng.choice(valid))
                for _ in range(rng.randint(1, 4)):
                    packet[rng.randrange(len(packet))] = rng.randrange(256)
                payload = bytes(packet[: rng.randint(0, len(packet))] if i % 3 else packet)
            else:
                payload = rng.randbytes(rng.randint(0, 600))
            sock.send(payload)
            if i % 100 == 0:
                time.sleep(0.01)  # stay within the slow-path budget most of the time
    time.sleep(0.3)
    assert resolver.metrics()["Queries"]["udp"] >= 2900
    assert addresses(ask(client, "web")) != []


FLOOD = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect(("127.0.0.11", 53))
junk, valid = bytes(range(40)), bytes.fromhex(sys.argv[1])
end = time.monotonic() + float(sys.argv[2])
sent = 0
while time.monotonic() < end:
    for payload in (junk, valid, junk, junk):
        try:
            sock.send(payload)
        except OSError:
            pass
        sent += 1
print(sent)
"""


def test_a_flood_from_one_container_does_not_stall_the_others(
    pair: tuple[Sandbox, Sandbox], controller: Controller, resolver: Resolver
) -> None:
    _, client = pair
    noisy = make_sandbox(controller, "noisy", "bad")
    query = dns.message.make_query("nosuch.example", "A").to_wire()  # would be forwarded
    flood = subprocess.Popen(
        ["nsenter", f"--net={noisy.key}", sys.executable, "-c", FLOOD, query.hex(), "2.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        latencies = []
        for _ in range(100):
            started = time.monotonic()
            assert addresses(ask(client, "web", timeout=2)) != []
            latencies.append(time.monotonic() - started)
        sent = int(flood.communicate(timeout=10)[0])
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    assert sent > 10_000
    assert max(latencies) < 0.5, sorted(latencies)[-5:]
    stats = resolver.metrics()["Queries"]
    assert stats["dropped"] > 0  # past its slow-path budget, the flood is dropped
    assert addresses(ask(noisy, "web")) != []  # and the hot path still answers it


@pytest.fixture
def tcp_resolver(controller: Controller) -> Iterator[Resolver]:
    server = Resolver(controller, ResolverConfig(tcp_idle_timeout=0.5, tcp_per_sandbox=2))
    server.start()
    yield server
    server.close()


def _tcp(sandbox: Sandbox) -> socket.socket:
    sock = client_socket(sandbox, socket.SOCK_STREAM)
    sock.settimeout(3)
    sock.connect((SERVER, 53))
    return sock


def _read_frame(sock: socket.socket) -> bytes:
    stream = sock.makefile("rb")
    size = struct.unpack("!H", stream.read(2))[0]
    return stream.read(size)


def test_tcp_garbage_stalls_and_crowds(controller: Controller, tcp_resolver: Resolver) -> None:
    make_network(controller, "bad", "10.61.0.0/24")
    web = make_sandbox(controller, "web", "bad")
    client = make_sandbox(controller, "client", "bad")
    with _tcp(client) as sock:  # garbage in a frame: FORMERR in a frame
        payload = header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"
        sock.sendall(len(payload).to_bytes(2) + payload)
        assert rcode_of(_read_frame(sock)) == dns.rcode.FORMERR
    with _tcp(client) as sock:  # a frame that never completes: closed after the idle timeout
        sock.sendall(b"\x00\x40" + header())
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert time.monotonic() - started < 2
    first, second = _tcp(client), _tcp(client)
    try:
        # past the bound: closed at once
        with _tcp(client) as third, contextlib.suppress(ConnectionResetError):
            assert third.recv(10) == b""
        assert addresses(ask(web, "client", tcp=True)) != []  # other sandboxes are not affected
        second.sendall(b"\x00")  # half a length: the idle timeout ends it
    finally:
        first.close()
        second.close()
    time.sleep(0.7)
    assert addresses(ask(client, "web", tcp=True)) != []
    assert tcp_resolver.metrics()["Queries"]["errors"] == 0
