"""The embedded resolver's packet path under hypothesis, against the real resolver in a real
sandbox: whatever a container sends, a query gets one reply that carries its ID and question, a
non-query gets none, and the resolver never raises inside."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnm.controller import Controller
from cnm.dns.resolver import Resolver
from cnm.model import Sandbox

from .queries import (
    SERVER,
    UPSTREAM_TIMEOUT_S,
    addresses,
    client_socket,
    make_network,
    make_sandbox,
)

REPLY_WAIT_S = UPSTREAM_TIMEOUT_S * 3 + 0.5  # a forwarded query waits for its upstreams
DROP_WAIT_S = 0.05
RCODES = {
    dns.rcode.NOERROR,
    dns.rcode.FORMERR,
    dns.rcode.SERVFAIL,
    dns.rcode.NXDOMAIN,
    dns.rcode.NOTIMP,
    dns.rcode.REFUSED,
}
EXAMPLES = settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def client(controller: Controller, resolver: Resolver) -> Iterator[tuple[Sandbox, socket.socket]]:
    """A client sandbox beside one named web, with a connected UDP socket to 127.0.0.11; no
    query may have raised inside the resolver by the end."""
    make_network(controller, "prop", "10.59.0.0/24")
    make_sandbox(controller, "web", "prop")
    sandbox = make_sandbox(controller, "client", "prop")
    with client_socket(sandbox) as sock:
        sock.connect((SERVER, 53))
        yield sandbox, sock
    assert resolver.metrics()["Queries"]["errors"] == 0


def _exchange(sock: socket.socket, payload: bytes, wait: float) -> bytes | None:
    while True:  # a late reply to an earlier example must not be taken for this one's
        sock.settimeout(0)
        try:
            sock.recv(65535)
        except (BlockingIOError, ConnectionRefusedError):
            break
    sock.settimeout(wait)
    sock.send(payload)
    try:
        return sock.recv(65535)
    except (TimeoutError, ConnectionRefusedError):
        return None


@EXAMPLES
@given(payload=st.binary(max_size=600))
def test_any_datagram_gets_one_well_formed_reply_or_none(
    client: tuple[Sandbox, socket.socket], payload: bytes
) -> None:
    _, sock = client
    is_query = len(payload) >= 12 and not payload[2] & 0x80
    reply = _exchange(sock, payload, REPLY_WAIT_S if is_query else DROP_WAIT_S)
    if not is_query:
        assert reply is None, "a response or a runt is never answered"
        return
    assert reply is not None, "every query is answered"
    assert len(reply) >= 12
    assert reply[:2] == payload[:2], "the reply carries the query's ID"
    assert reply[2] & 0x80, "the reply is a response"
    assert reply[3] & 0x0F in RCODES


LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
NAMES = st.one_of(
    st.sampled_from(["web", "WEB", "web.prop", "client", "nothing", "web.prop.", "x.test"]),
    st.lists(LABEL, min_size=1, max_size=4).map(".".join),
)
TYPES = st.sampled_from(["A", "AAAA", "PTR", "MX", "TXT", "SRV", "ANY", "CNAME", "NS", "SOA"])


@EXAMPLES
@given(
    name=NAMES,
    rdtype=TYPES,
    edns=st.sampled_from([-1, 0]),
    payload=st.integers(512, 4096),
    rd=st.booleans(),
)
def test_a_well_formed_query_gets_its_question_back(
    client: tuple[Sandbox, socket.socket], name: str, rdtype: str, edns: int, payload: int, rd: bool
) -> None:
    _, sock = client
    query = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload)
    if not rd:
        query.flags &= ~dns.flags.RD
    raw = _exchange(sock, query.to_wire(), REPLY_WAIT_S)
    assert raw is not None, "every query is answered"
    reply = dns.message.from_wire(raw, ignore_trailing=True)
    assert reply.id == query.id
    assert reply.question == query.question
    assert reply.rcode() in RCODES
    assert bool(reply.flags & dns.flags.RD) == rd, "RD is copied"
    assert (reply.edns >= 0) == (edns >= 0), "EDNS is answered with EDNS"
    if name.lower().rstrip(".") in ("web", "web.prop") and rdtype == "A":
        assert reply.rcode() == dns.rcode.NOERROR
        assert [a.startswith("10.59.0.") for a in addresses(reply)] == [True]


@EXAMPLES
@given(
    flags=st.integers(0, 0xFFFF),
    counts=st.tuples(*[st.integers(0, 3)] * 4),
    body=st.binary(max_size=64),
)
def test_headers_of_every_shape(
    client: tuple[Sandbox, socket.socket], flags: int, counts: tuple[int, ...], body: bytes
) -> None:
    """Every header flag and count around a real question: the same property as for any
    datagram, where random bytes would rarely reach past the header checks."""
    _, sock = client
    question = b"\x03web\x00\x00\x01\x00\x01"
    payload = struct.pack("!HHHHHH", 0x1234, flags, *counts) + question + body
    is_query = not flags & 0x8000
    reply = _exchange(sock, payload, REPLY_WAIT_S if is_query else DROP_WAIT_S)
    if not is_query:
        assert reply is None
        return
    assert reply is not None and reply[:2] == b"\x12\x34" and reply[2] & 0x80
    assert reply[3] & 0x0F in RCODES
