"""The embedded resolver: one server in the daemon answers the DNS queries of every sandbox that
uses it (Docker's rule: containers whose network mode is a user-defined network).

Why this shape:
* Listeners. Per sandbox, a UDP and a TCP socket bound to 127.0.0.11:53 inside the sandbox's
  namespace: the thread that handles the controller's event enters the namespace (setns) just to
  create them, and a socket stays in the namespace it was made in. 127.0.0.0/8 is local on lo,
  so no DNAT rule is needed (Docker needs one). The socket a query arrives on tells which
  sandbox asked, and so which networks it may see. Every socket is served by one uvloop event
  loop on a thread of its own; nothing is spawned per container or per network.
* The hot path reads the 12-byte header and the question by hand (RFC 1035 §4.1.1-2), accepts
  only a plain query (QR=0, OPCODE=0, TC=0, one question of class IN, no other records but at
  most one EDNS OPT of version 0, RFC 6891 §6.1), looks the lowercased name up in the asker's
  view and answers from pre-encoded records (``records``), copying the ID, RD and the asker's
  question and rotating several addresses of one name per query (round robin). A single-label
  name that no shared network has is answered NXDOMAIN on the spot: such names are container
  names, never worth sending upstream.
* Everything else goes through dnspython: it validates the message (bad label lengths,
  compression loops, names over 255 octets, trailing junk: FORMERR), then the query is answered
  from the records, refused (classes other than IN, zone transfers, forwarding for sandboxes
  only on internal networks), NOTIMP (opcodes other than QUERY) or forwarded (``forward``).
  Messages that are responses or shorter than a header are dropped (answering them could start
  a loop between servers, RFC 1035 §7.3).
* Fairness. A readable socket gives at most UDP_BATCH datagrams per wakeup, so a flood from
  one sandbox takes turns with every other; work beyond the hot path is rate-limited per
  sandbox (a token bucket) and forwarded queries in flight are bounded per sandbox, so one
  noisy container cannot starve the others. TCP follows RFC 7766: several queries per
  connection, an idle timeout, a bound on connections per sandbox.
* Lifecycle. Controller events are handled synchronously in the caller's thread: records change
  and listeners open before connect, start, rename... return, and a listener is closed (letting
  go of the namespace) on sandbox-delete, before the namespace is removed. At start the
  resolver rebuilds everything from the controller's state, so a restarted daemon serves the
  containers that kept running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import resource
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import uvloop

from cnm.controller import Controller
from cnm.dns.forward import RCODE_NAMES, Forwarder, Upstream, parse_upstream, recv_exact
from cnm.dns.records import CLASS_IN, NO_ANSWER, NameRecord, NetworkTable, Records, View
from cnm.events import Event
from cnm.model import Sandbox
from cnm.osl.namespace import NetNamespace
from cnm.sandbox_files import EMBEDDED_NAMESERVER, parse_resolv_conf

log = logging.getLogger(__name__)

UDP_BATCH = 32
MAX_QUERY = 4096  # a longer query is FORMERR; real ones are tens of octets
RECV_SIZE = MAX_QUERY + 1  # one more, to see that a datagram was longer
UDP_LIMIT = 512  # RFC 1035 §4.2.1, for askers without EDNS
EDNS_LIMIT = 1232  # our EDNS payload size: no fragmentation (DNS flag day 2020)
TCP_LIMIT = 65535
OUR_OPT = b"\x00\x00\x29" + EDNS_LIMIT.to_bytes(2) + b"\x00" * 6  # RFC 6891 §6.1.2
PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
NO_AR, ONE_AR = b"\x00\x00", b"\x00\x01"
TCP_BACKLOG = 16
LOOP_CALL_TIMEOUT_S = 10.0
FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 1, 2, 3, 4, 5
# Types that are no question for the hot path (RFC 6895 §3.1): OPT, TKEY, TSIG, IXFR, AXFR,
# MAILB, MAILA (ANY is answered from the records).
META_TYPES = frozenset(t.to_bytes(2) for t in (41, 249, 250, 251, 252, 253, 254))


@dataclass
class ResolverConfig:
    address: str = EMBEDDED_NAMESERVER
    port: int = 53
    ttl: int = 600  # Docker's
    upstream_timeout: float = 2.0  # per try; three tries at most
    forwards_per_sandbox: int = 32  # forwarded queries in flight per sandbox
    tcp_per_sandbox: int = 8  # open TCP connections per sandbox
    tcp_idle_timeout: float = 10.0  # RFC 7766 §6.2.3 suggests seconds, not minutes
    slow_rate: float = 500.0  # queries per second (and burst) past the hot path, per sandbox


@dataclass(slots=True)
class Stats:
    """Counters since start. ``udp``/``tcp``: queries received. Outcomes: ``local`` answered
    from the records, ``nxdomain`` single-label names no shared network has, ``forwarded`` sent
    upstream, ``servfail`` (every upstream failed, none is configured, or ``overloaded``: too
    many of the sandbox's queries already upstream), ``refused``, ``formerr``, ``notimp``,
    ``truncated`` (an upstream answer too big for the asker's UDP, sent back with TC),
    ``dropped`` (runts, responses, past the slow-path budget, send errors, TCP connections past
    the bound), ``errors`` (bugs: a query whose handling raised). ``lookups`` counts
    ``cnm dns lookup`` queries, which are in the outcomes too.

    Slotted fields: ``stats.udp += 1`` on the hot path costs what a plain slot does. They are
    reported in this order (``as_dict``)."""

    dropped: int = 0
    errors: int = 0
    formerr: int = 0
    forwarded: int = 0
    local: int = 0
    lookups: int = 0
    notimp: int = 0
    nxdomain: int = 0
    overloaded: int = 0
    refused: int = 0
    servfail: int = 0
    tcp: int = 0
    truncated: int = 0
    udp: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Listener:
    """One sandbox's sockets and budgets."""

    __slots__ = (
        "closed",
        "conns",
        "forwards",
        "sandbox_id",
        "search",
        "stamp",
        "tcp",
        "tokens",
        "udp",
        "upstreams",
        "view",
    )

    def __init__(
        self,
        sandbox: Sandbox,
        view: View,
        udp: socket.socket,
        tcp: socket.socket,
        search: tuple[dns.name.Name, ...],
        burst: float,
    ) -> None:
        self.sandbox_id = sandbox.id
        self.search = search  # the search domains of its resolv.conf
        self.view = view
        self.udp = udp
        self.tcp = tcp
        self.upstreams = tuple(sandbox.dns)  # the container's --dns
        self.conns: set[asyncio.Task[None]] = set()
        self.forwards = 0
        self.tokens = burst
        self.stamp = time.monotonic()
        self.closed = False

    def take(self, rate: float) -> bool:
        """One token of the slow-path budget, if any is left."""
        now = time.monotonic()
        tokens = min(rate, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if tokens < 1:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1
        return True


def _edns_question(data: bytes) -> tuple[int, int] | None:
    """For a query with one additional record: the end of its question and the reply size
    limit, if that record is an OPT of version 0 (RFC 6891 §6.1.3) and ends the message."""
    size = len(data)
    i = 12
    while True:
        if i >= size:
            return None
        length = data[i]
        if length == 0:
            break
        if length > 63:
            return None
        i += length + 1
    end = i + 5
    if end + 11 > size or data[end] != 0 or data[end + 1 : end + 3] != b"\x00\x29":
        return None
    if data[end + 6] != 0 or end + 11 + int.from_bytes(data[end + 9 : end + 11]) != size:
        return None
    return end, min(max(UDP_LIMIT, int.from_bytes(data[end + 3 : end + 5])), EDNS_LIMIT)


def _answer(
    data: bytes, end: int, flags: bytes, record: NameRecord, opt: bytes, limit: int
) -> bytes:
    """The reply from a record: the question up to ``end`` copied, the records of its type
    rotated, truncated with TC set where they do not fit (RFC 2181 §9)."""
    ancount, count, records, size = record.answers.get(data[end - 4 : end - 2], NO_ANSWER)
    if size and count > 1:
        turn = record.turn = (record.turn + 1) % count
        cut = turn * size
        records = records[cut:] + records[:cut]
    if end + len(records) + len(opt) > limit:
        fit = (limit - end - len(opt)) // size if size else 0
        records = records[: fit * size]
        ancount = fit.to_bytes(2)
        flags = bytes([flags[0] | 0x02, flags[1]])
    ar = ONE_AR if opt else NO_AR
    return b"".join((data[:2], flags, b"\x00\x01", ancount, NO_AR, ar, data[12:end], records, opt))


def _rcode_reply(data: bytes, end: int, view: View, rcode: int, opt: bytes) -> bytes:
    """A reply with the question and no records; NXDOMAIN from us is authoritative."""
    flags = view.nxflags[data[2] & 1] if rcode == NXDOMAIN else None
    if flags is None:
        flags = bytes([0x80 | (data[2] & 0x01), (view.flags[0][1] & 0x80) | rcode])
    return b"".join((data[:2], flags, PLAIN_COUNTS, ONE_AR if opt else NO_AR, data[12:end], opt))


def _header_reply(data: bytes, view: View, rcode: int) -> bytes:
    """A header-only reply (when the question cannot be trusted): ID, opcode and RD copied."""
    ra = view.flags[0][1] & 0x80
    return data[:2] + bytes([0x80 | (data[2] & 0x79), ra | rcode]) + b"\x00" * 8


def raise_fd_limit() -> None:
    """Two descriptors per sandbox: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Resolver:
    def __init__(self, controller: Controller, config: ResolverConfig | None = None) -> None:
        self.controller = controller
        self.config = config or ResolverConfig()
        self.records = Records(self.config.ttl)
        self.forwarder = Forwarder(self.config.upstream_timeout)
        self.stats = Stats()
        self._listeners: dict[str, Listener] = {}
        self._lock = threading.Lock()  # guards _listeners against concurrent events
        self._tasks: set[asyncio.Task[None]] = set()
        self._upstream_cache: dict[str, Upstream | None] = {}
        self._names: dict[str, dns.name.Name] = {}  # search domains, shared by sandboxes
        self._host_conf: tuple[tuple[int, int], list[str]] = ((0, 0), [])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the loop thread (in the calling thread's namespace: the daemon's, where
        upstreams are asked), follow the controller's events and serve the sandboxes it has."""
        raise_fd_limit()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="cnm-dns", daemon=True
        )
        self._thread.start()
        ready.wait()
        self.controller.subscribe(self._on_event)
        networks = {n.id: n for n in self.controller.networks()}
        sandboxes = {s.id: s for s in self.controller.sandboxes()}
        for endpoint in self.controller.endpoints():
            sandbox = sandboxes.get(endpoint.sandbox_id or "")
            network = networks.get(endpoint.network_id)
            if sandbox is not None and network is not None:
                self.records.add_endpoint(network, endpoint, sandbox)
        for network, endpoint in self.controller.peers():
            self.records.add_peer(network, endpoint)
        for sandbox in sandboxes.values():
            if sandbox.embedded_dns:
                self._open(sandbox)
        log.info("embedded DNS serving", extra={"sandboxes": len(self._listeners)})

    def _run(self, ready: threading.Event) -> None:
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def close(self) -> None:
        """Close every listener and stop the loop (the controller keeps its sandboxes)."""
        if self._closed or self._loop is None:
            return
        with self._lock:
            self._closed = True
            listeners = list(self._listeners.values())
            self._listeners.clear()
        self._on_loop(self._shut_all(listeners))
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(LOOP_CALL_TIMEOUT_S)

    async def _shut_all(self, listeners: list[Listener]) -> None:
        for listener in listeners:
            await self._shut(listener)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(LOOP_CALL_TIMEOUT_S)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: Event) -> None:
        if self._closed:
            return
        kind, sandbox, endpoint, network = event.kind, event.sandbox, event.endpoint, event.network
        if kind == "sandbox-create" and sandbox is not None and sandbox.embedded_dns:
            self._open(sandbox)
        elif kind == "sandbox-delete" and sandbox is not None:
            self._close_listener(sandbox.id)
            self.records.forget_sandbox(sandbox.id)
        elif kind in ("endpoint-join", "endpoint-rename") and endpoint and sandbox and network:
            self.records.add_endpoint(network, endpoint, sandbox)
        elif kind == "endpoint-leave" and endpoint and sandbox and network:
            self.records.remove_endpoint(network.id, endpoint.id, sandbox.id)
        elif kind == "network-delete" and network is not None:
            self.records.drop_network(network.id)
        elif kind == "peer-join" and endpoint and network:
            self.records.add_peer(network, endpoint)
        elif kind == "peer-leave" and endpoint and network:
            self.records.remove_peer(network.id, endpoint.id)

    def _open(self, sandbox: Sandbox) -> None:
        """Bind the sandbox's UDP and TCP sockets inside its namespace; the loop starts
        reading them at its next turn (queries sent before then wait in the socket)."""
        namespace = NetNamespace(sandbox.key)
        sockets: list[socket.socket] = []
        try:
            with namespace.entered():
                sockets.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            udp, tcp = sockets
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            for sock in sockets:
                sock.setblocking(False)
                sock.bind((self.config.address, self.config.port))
            tcp.listen(TCP_BACKLOG)
        except OSError as err:
            for sock in sockets:
                sock.close()
            log.error(
                "cannot serve DNS in a sandbox",
                extra={"sandbox": sandbox.id[:12], "error": str(err)},
            )
            return
        finally:
            namespace.close()
        view = self.records.view(sandbox.id)
        search = self._search_domains(sandbox)
        listener = Listener(sandbox, view, udp, tcp, search, self.config.slow_rate)
        with self._lock:
            if self._closed:
                udp.close()
                tcp.close()
                return
            previous = self._listeners.pop(sandbox.id, None)
            self._listeners[sandbox.id] = listener
        if previous is not None:
            self._on_loop(self._shut(previous))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._register, listener)

    def _search_domains(self, sandbox: Sandbox) -> tuple[dns.name.Name, ...]:
        """The search domains the sandbox's resolv.conf has (its --dns-search, else the
        host's), as names shared between sandboxes."""
        texts = sandbox.dns_search
        if not texts:
            try:
                texts = parse_resolv_conf(
                    self.controller.config.host_resolv_conf.read_text()
                ).search
            except OSError:
                texts = []
        domains = []
        for text in texts:
            if text not in self._names:
                try:
                    self._names[text] = dns.name.from_text(text)
                except dns.exception.DNSException:
                    continue
            if self._names[text] != dns.name.root:
                domains.append(self._names[text])
        return tuple(domains)

    def _register(self, listener: Listener) -> None:
        if listener.closed:
            return
        assert self._loop is not None
        self._loop.add_reader(listener.udp.fileno(), self._on_udp, listener)
        self._loop.add_reader(listener.tcp.fileno(), self._on_accept, listener)

    def _close_listener(self, sandbox_id: str) -> None:
        with self._lock:
            listener = self._listeners.pop(sandbox_id, None)
        if listener is not None:
            self._on_loop(self._shut(listener))

    async def _shut(self, listener: Listener) -> None:
        """Stop reading, close the sockets and end the TCP connections: nothing of ours holds
        the namespace any more."""
        assert self._loop is not None
        listener.closed = True
        for sock in (listener.udp, listener.tcp):
            self._loop.remove_reader(sock.fileno())
            sock.close()
        conns = list(listener.conns)
        for task in conns:
            task.cancel()
        await asyncio.gather(*conns, return_exceptions=True)

    # ------------------------------------------------------------------ UDP

    def _on_udp(self, listener: Listener) -> None:
        recvfrom, sendto = listener.udp.recvfrom, listener.udp.sendto
        stats = self.stats
        for _ in range(UDP_BATCH):
            try:
                data, peer = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                stats.dropped += 1
                return
            stats.udp += 1
            try:
                reply = self._fast(data, listener.view, UDP_LIMIT)
                if reply is None:
                    pending = self._slow(data, listener, tcp=False)
                    if pending is None:
                        continue
                    if not isinstance(pending, bytes):
                        self._spawn(self._reply_later(pending, listener, peer))
                        continue
                    reply = pending
                sendto(reply, peer)
            except OSError:
                stats.dropped += 1
            except Exception:
                stats.errors += 1
                log.exception("DNS query handling failed")

    async def _reply_later(
        self, pending: Coroutine[Any, Any, bytes], listener: Listener, peer: Any
    ) -> None:
        reply = await pending
        if not listener.closed:
            try:
                listener.udp.sendto(reply, peer)
            except OSError:
                self.stats.dropped += 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.errors += 1
            log.error("DNS task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ TCP

    def _on_accept(self, listener: Listener) -> None:
        assert self._loop is not None
        for _ in range(TCP_BACKLOG):
            try:
                conn, _ = listener.tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.stats.dropped += 1
                return
            if len(listener.conns) >= self.config.tcp_per_sandbox:
                conn.close()
                self.stats.dropped += 1
                continue
            conn.setblocking(False)
            task = self._loop.create_task(self._serve_tcp(listener, conn))
            listener.conns.add(task)
            task.add_done_callback(listener.conns.discard)

    async def _serve_tcp(self, listener: Listener, conn: socket.socket) -> None:
        """Queries one after another on one connection (RFC 7766 §6.2.1.1 allows answering
        in order), until the asker closes it or stays idle too long."""
        loop = asyncio.get_running_loop()
        with conn:
            try:
                while True:
                    async with asyncio.timeout(self.config.tcp_idle_timeout):
                        size = int.from_bytes(await recv_exact(loop, conn, 2))
                        data = await recv_exact(loop, conn, size)
                    self.stats.tcp += 1
                    reply = self._fast(data, listener.view, TCP_LIMIT)
                    if reply is None:
                        pending = self._slow(data, listener, tcp=True)
                        if pending is None:
                            continue
                        reply = pending if isinstance(pending, bytes) else await pending
                    await loop.sock_sendall(conn, len(reply).to_bytes(2) + reply)
            except (TimeoutError, OSError):
                return

    # ------------------------------------------------------------------ answering

    def _fast(self, data: bytes, view: View, limit: int) -> bytes | None:
        """The hot path (see the module docstring); None hands the query to ``_slow``."""
        size = len(data)
        if size < 17 or size > MAX_QUERY or data[2] & 0xFA or data[4:10] != PLAIN_COUNTS:
            return None
        if data[10:12] == NO_AR:
            end, opt = size, b""
        else:
            found = _edns_question(data)
            if found is None:
                return None
            end, opt = found[0], OUR_OPT
            limit = max(limit, found[1])
        if data[end - 2 : end] != CLASS_IN or data[end - 4 : end - 2] in META_TYPES:
            return None
        name = data[12 : end - 4].lower()
        if view.links:
            linked = view.find(name)
            if linked is not None:
                self.stats.local += 1
                return _answer(data, end, view.flags[data[2] & 1], linked[1], opt, limit)
        for table in view.tables:
            record = table.get(name)
            if record is not None:
                self.stats.local += 1
                return _answer(data, end, view.flags[data[2] & 1], record, opt, limit)
        if data[12] == end - 18 and data[end - 5] == 0 and 0 < data[12] <= 63:
            self.stats.nxdomain += 1
            return _rcode_reply(data, end, view, NXDOMAIN, opt)
        return None

    def _slow(
        self,
        data: bytes,
        listener: Listener,
        tcp: bool,
        trace: list[dict[str, str]] | None = None,
    ) -> bytes | Coroutine[Any, Any, bytes] | None:
        """Anything the hot path did not answer: a reply, a coroutine that will give one
        (forwarding), or None to drop the message."""
        stats, view = self.stats, listener.view
        if len(data) < 12 or data[2] & 0x80 or not listener.take(self.config.slow_rate):
            stats.dropped += 1
            return None
        if len(data) > MAX_QUERY:
            stats.formerr += 1
            return _header_reply(data, view, FORMERR)
        if data[2] & 0x78:
            stats.notimp += 1
            return _header_reply(data, view, NOTIMP)
        try:
            query = dns.message.from_wire(data)
        except (dns.exception.DNSException, ValueError, IndexError):
            stats.formerr += 1
            return _header_reply(data, view, FORMERR)
        if len(query.question) != 1:
            stats.formerr += 1
            return _header_reply(data, view, FORMERR)
        question = query.question[0]
        qname = question.name.to_digestable()  # the wire form, lowercased
        end = 12 + len(qname) + 4
        if data[12 : end - 4].lower() != qname:
            stats.formerr += 1  # a compressed question: nothing sends one
            return _header_reply(data, view, FORMERR)
        if query.edns > 0:
            stats.formerr += 1
            response = dns.message.make_response(query, our_payload=EDNS_LIMIT)
            response.set_rcode(dns.rcode.BADVERS)
            return response.to_wire()
        opt = OUR_OPT if query.edns == 0 else b""
        limit = TCP_LIMIT if tcp else UDP_LIMIT
        if query.edns == 0 and not tcp:
            limit = min(max(UDP_LIMIT, query.payload), EDNS_LIMIT)
        rdtype = question.rdtype
        if question.rdclass != dns.rdataclass.IN or rdtype in (
            dns.rdatatype.AXFR,
            dns.rdatatype.IXFR,
        ):
            stats.refused += 1
            return _rcode_reply(data, end, view, REFUSED, opt)
        if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
            stats.formerr += 1
            return _header_reply(data, view, FORMERR)
        found = self._find(listener, question.name)
        if found is not None:
            stats.local += 1
            return _answer(data, end, view.flags[data[2] & 1], found[1], opt, limit)
        if len(question.name) == 2:  # one label and the root
            stats.nxdomain += 1
            return _rcode_reply(data, end, view, NXDOMAIN, opt)
        if not view.forward:
            stats.refused += 1
            return _rcode_reply(data, end, view, REFUSED, opt)
        upstreams = self._upstreams(listener)
        if not upstreams or listener.forwards >= self.config.forwards_per_sandbox:
            stats.servfail += 1
            stats.overloaded += bool(upstreams)
            return _rcode_reply(data, end, view, SERVFAIL, opt)
        listener.forwards += 1
        stats.forwarded += 1
        return self._forward(data, end, opt, limit, listener, upstreams, tcp, trace)

    async def _forward(
        self,
        data: bytes,
        end: int,
        opt: bytes,
        limit: int,
        listener: Listener,
        upstreams: list[Upstream],
        tcp: bool,
        trace: list[dict[str, str]] | None,
    ) -> bytes:
        try:
            reply = await self.forwarder.exchange(data, end, upstreams, tcp, trace)
        finally:
            listener.forwards -= 1
        if reply is None:
            self.stats.servfail += 1
            return _rcode_reply(data, end, listener.view, SERVFAIL, opt)
        flags = bytes([reply[2], reply[3] | 0x80])  # recursion is available: we just did it
        if len(reply) > limit:  # the asker must come back over TCP
            self.stats.truncated += 1
            flags = bytes([flags[0] | 0x02, flags[1]])
            return b"".join(
                (reply[:2], flags, PLAIN_COUNTS, ONE_AR if opt else NO_AR, data[12:end], opt)
            )
        return reply[:2] + flags + reply[4:]

    @staticmethod
    def _find(
        listener: Listener, name: dns.name.Name
    ) -> tuple[NetworkTable, NameRecord, dns.name.Name | None] | None:
        """The record for ``name`` in the asker's view, also as ``<name>.<search domain>`` for
        the asker's own search domains (busybox nslookup asks only those): the network, the
        record and the search domain it was found under."""
        view = listener.view
        found = view.find(name.to_digestable())
        if found is not None:
            return (*found, None)
        for domain in listener.search:
            if name != domain and name.is_subdomain(domain):
                stem = name.relativize(domain).derelativize(dns.name.root)
                found = view.find(stem.to_digestable())
                if found is not None:
                    return (*found, domain)
        return None

    def _upstreams(self, listener: Listener) -> list[Upstream]:
        """The container's --dns, else the daemon's --dns, else the host's nameservers."""
        texts = listener.upstreams or self.controller.config.dns or self._host_nameservers()
        found = []
        for text in texts:
            if text not in self._upstream_cache:
                self._upstream_cache[text] = parse_upstream(text)
            upstream = self._upstream_cache[text]
            if upstream is not None:
                found.append(upstream)
        return found

    def _host_nameservers(self) -> list[str]:
        """The host resolv.conf's nameservers, re-read when the file changes."""
        path = Path(self.controller.config.host_resolv_conf)
        try:
            stat = path.stat()
            stamp = (stat.st_ino, stat.st_mtime_ns)
            if stamp != self._host_conf[0]:
                self._host_conf = (stamp, parse_resolv_conf(path.read_text()).nameservers)
        except OSError:
            return []
        return self._host_conf[1]

    # ------------------------------------------------------------------ observability

    def metrics(self) -> dict[str, Any]:
        forward = self.forwarder.stats
        with self._lock:
            listeners = list(self._listeners.values())
        return {
            "Sandboxes": len(listeners),
            "ForwardsInFlight": sum(listener.forwards for listener in listeners),
            "Queries": self.stats.as_dict(),
            "Upstream": {
                "tries": forward.tries,
                "timeouts": forward.timeouts,
                "errors": forward.errors,
                "tcp_retries": forward.tcp_retries,
            },
        }

    def lookup(self, sandbox_id: str, name: str, qtype: str) -> concurrent.futures.Future[Any]:
        """What the sandbox would get for ``name`` and why: a future of a JSON-able dict (the
        query really runs, forwarding included)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._explain(sandbox_id, name, qtype), self._loop)

    async def _explain(self, sandbox_id: str, name: str, qtype: str) -> dict[str, Any]:
        sandbox = self.controller.sandbox(sandbox_id)
        self.stats.lookups += 1
        result: dict[str, Any] = {"Name": name, "Type": qtype.upper(), "Sandbox": sandbox.id}
        listener = self._listeners.get(sandbox.id)
        if listener is None:
            conf = self.controller.sandbox_file(sandbox.id, "resolv.conf").read_text()
            result["Source"] = "host resolvers"
            result["Why"] = (
                "this container does not use the embedded resolver (its network mode is not a "
                "user-defined network); it asks the nameservers of its resolv.conf"
            )
            result["Nameservers"] = parse_resolv_conf(conf).nameservers
            return result
        query = dns.message.make_query(name, qtype)
        wire = query.to_wire()
        view = listener.view
        trace: list[dict[str, str]] = []
        qname = query.question[0].name
        found = self._find(listener, qname)
        networks = [table.name for table in view.networks]
        if found is not None:
            table, record, domain = found
            result["Source"] = "records"
            result["Network"] = table.name
            result["Why"] = f"a name on network {table.name}, which this container shares"
            if domain is not None:
                result["Why"] += f" (asked with its search domain {domain.to_text()})"
            result["Records"] = [
                {"Container": claim.container, "Matched": claim.why}
                for claim in record.claims.values()
            ]
        elif len(qname) == 2:
            result["Source"] = "nxdomain"
            result["Why"] = (
                "no container on the networks this container shares "
                f"({', '.join(networks) or 'none'}) has this name; single-label names are "
                "never forwarded"
            )
        elif not view.forward:
            result["Source"] = "refused"
            result["Why"] = "the container is only on internal networks: nothing is forwarded"
        else:
            upstreams = self._upstreams(listener)
            result["Source"] = "forwarded"
            result["Why"] = "not a name cnm owns"
            result["Upstreams"] = [u.text for u in upstreams]
            result["Tries"] = trace
        reply = self._fast(wire, view, UDP_LIMIT)
        if reply is None:
            pending = self._slow(wire, listener, tcp=False, trace=trace)
            reply = pending if pending is None or isinstance(pending, bytes) else await pending
        if reply is None:
            result["Rcode"] = "dropped (the container's query budget is spent)"
            return result
        response = dns.message.from_wire(reply)
        result["Rcode"] = RCODE_NAMES.get(response.rcode(), dns.rcode.to_text(response.rcode()))
        result["Truncated"] = bool(response.flags & dns.flags.TC)
        result["Answers"] = [
            line for rrset in response.answer for line in rrset.to_text().splitlines()
        ]
        return result
