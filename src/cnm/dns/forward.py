"""Forwarding: names cnm does not own go to the asking sandbox's upstream resolvers.

Why this shape:
* Upstreams are tried in order, at most three (the stub resolver's MAXNS, resolv.conf(5)), each
  with its own deadline. SERVFAIL, REFUSED and NOTIMP move on to the next upstream; any other
  answer, NXDOMAIN included, goes straight back. When every try fails the caller answers
  SERVFAIL: never silence, never a hang.
* Each try opens a fresh socket (a random source port from the kernel) and sends a fresh random
  ID, and only a reply from that server, with that ID and the same question, is taken (RFC 5452).
* A UDP reply with TC set is asked again over TCP (RFC 1035 §4.2.1, RFC 7766 §5); a query that
  came over TCP is forwarded over TCP.
* Sockets are opened on the resolver's loop thread, which lives in the daemon's namespace (the
  host's), so a host resolver on loopback such as 127.0.0.53 works.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from dataclasses import dataclass
from typing import Any

DNS_PORT = 53
MAX_UPSTREAMS = 3
FAILOVER_RCODES = (2, 4, 5)  # SERVFAIL, NOTIMP, REFUSED
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
MAX_MESSAGE = 65535


@dataclass(frozen=True)
class Upstream:
    text: str
    family: int
    address: tuple[Any, ...]


def parse_upstream(text: str) -> Upstream | None:
    """An upstream from a numeric address (``fe80::1%eth0`` keeps its scope), or None."""
    try:
        infos = socket.getaddrinfo(
            text, DNS_PORT, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
        )
    except (OSError, UnicodeError):
        return None
    family, _, _, _, address = infos[0]
    return Upstream(text, family, address)


class ForwardStats:
    __slots__ = ("errors", "tcp_retries", "timeouts", "tries")

    def __init__(self) -> None:
        self.tries = self.timeouts = self.errors = self.tcp_retries = 0


def _matches(reply: bytes, qid: bytes, question: bytes) -> bool:
    """Our reply: our ID, QR set, and our question (compared as DNS compares names); a failure
    without a question section is accepted too."""
    if len(reply) < 12 or reply[:2] != qid or not reply[2] & 0x80:
        return False
    if reply[4:6] == b"\x00\x00":
        return reply[3] & 0x0F != 0
    return reply[12 : 12 + len(question)].lower() == question


async def recv_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ConnectionResetError("the peer closed the connection")
        data += chunk
    return data


class Forwarder:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.stats = ForwardStats()

    async def exchange(
        self,
        query: bytes,
        question_end: int,
        upstreams: list[Upstream],
        tcp: bool,
        trace: list[dict[str, str]] | None = None,
    ) -> bytes | None:
        """Ask ``upstreams`` in order; the reply carries the asker's ID. None when all failed.
        ``trace`` (if given) gets one entry per try."""
        loop = asyncio.get_running_loop()
        question = query[12:question_end].lower()
        for upstream in upstreams[:MAX_UPSTREAMS]:
            qid = secrets.token_bytes(2)
            wire = qid + query[2:]
            self.stats.tries += 1
            transport = "tcp" if tcp else "udp"
            try:
                async with asyncio.timeout(self.timeout):
                    if tcp:
                        reply = await self._tcp(loop, upstream, wire, qid, question)
                    else:
                        reply = await self._udp(loop, upstream, wire, qid, question)
                        if reply[2] & 0x02:
                            self.stats.tcp_retries += 1
                            transport = "udp, truncated, then tcp"
                            reply = await self._tcp(loop, upstream, wire, qid, question)
            except TimeoutError:
                self.stats.timeouts += 1
                _note(trace, upstream, transport, f"no answer within {self.timeout:g}s")
                continue
            except OSError as err:
                self.stats.errors += 1
                _note(trace, upstream, transport, f"error: {err.strerror or err}")
                continue
            rcode = reply[3] & 0x0F
            _note(trace, upstream, transport, RCODE_NAMES.get(rcode, f"RCODE{rcode}"))
            if rcode not in FAILOVER_RCODES:
                return query[:2] + reply[2:]
        return None

    @staticmethod
    async def _udp(
        loop: asyncio.AbstractEventLoop,
        upstream: Upstream,
        wire: bytes,
        qid: bytes,
        question: bytes,
    ) -> bytes:
        with socket.socket(upstream.family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(upstream.address)  # replies from anyone else never reach us
            sock.send(wire)
            while True:
                reply = await loop.sock_recv(sock, MAX_MESSAGE)
                if _matches(reply, qid, question):
                    return reply

    @staticmethod
    async def _tcp(
        loop: asyncio.AbstractEventLoop,
        upstream: Upstream,
        wire: bytes,
        qid: bytes,
        question: bytes,
    ) -> bytes:
        with socket.socket(upstream.family, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, upstream.address)
            await loop.sock_sendall(sock, len(wire).to_bytes(2) + wire)
            while True:
                size = int.from_bytes(await recv_exact(loop, sock, 2))
                reply = await recv_exact(loop, sock, size)
                if _matches(reply, qid, question):
                    return reply


def _note(trace: list[dict[str, str]] | None, upstream: Upstream, via: str, result: str) -> None:
    if trace is not None:
        trace.append({"Upstream": upstream.text, "Transport": via, "Result": result})
