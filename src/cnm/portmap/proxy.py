"""The userland relay behind every published port, for the traffic the kernel does not translate.

The firewall DNATs most traffic to a published port before any socket sees it. Three kinds
reach the port's own socket instead, and this relay carries them to the container:

* IPv6 loopback (``[::1]:port``): IPv6 has no route_localnet, so a packet from ::1 can never
  leave through a bridge, whatever the NAT (ip6_output drops it);
* an IPv6 host address published for a container without IPv6: netfilter has no NAT64;
* containers reaching a published port through a host address (hairpin). The firewall leaves
  their packets alone on purpose: with br_netfilter loaded (Docker loads it), a DNAT back onto
  the bridge the packet came from is bridged rather than routed, so it needs hairpin mode on
  the port and it bypasses ``enable_icc=false``; through the relay the container sees the
  bridge address as its peer and the rules stay simple.

TCP connections are copied with splice(2) through a pipe, two blocking threads per connection
(zero-copy; threads release the GIL inside splice). UDP is relayed per client address, through
a connected socket towards the container that is dropped after ``UDP_IDLE_S`` of silence.
Listeners and UDP flows are watched by one epoll thread, which runs in the host namespace so
the sockets it opens towards containers are the host's.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from cnm.osl.namespace import NetNamespace

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
UDP_IDLE_S = 90.0
SPLICE_CHUNK = 1 << 20

Address = tuple[str, int]


@dataclass
class _Listener:
    sock: socket.socket
    target: Address
    connections: set[socket.socket] = field(default_factory=set)
    flows: dict[Address, _Flow] = field(default_factory=dict)


@dataclass
class _Flow:
    upstream: socket.socket
    client: Address
    last: float


class Proxy:
    """Relays for published ports' sockets (one epoll thread, started on first use)."""

    def __init__(self, namespace: NetNamespace) -> None:
        self._namespace = namespace
        self._epoll = select.epoll()
        self._handlers: dict[int, Callable[[], None]] = {}
        self._listeners: dict[int, _Listener] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._epoll.register(self._stop_r, select.EPOLLIN)

    def add(self, sock: socket.socket, target: Address) -> None:
        """Relay what reaches ``sock`` (a listening TCP or a bound UDP socket) to ``target``."""
        sock.setblocking(False)
        listener = _Listener(sock, target)
        is_tcp = sock.type == socket.SOCK_STREAM
        with self._lock:
            self._listeners[sock.fileno()] = listener
            self._handlers[sock.fileno()] = (
                (lambda: self._accept(listener)) if is_tcp else (lambda: self._datagram(listener))
            )
            self._epoll.register(sock.fileno(), select.EPOLLIN)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="cnm-port-proxy", daemon=True
                )
                self._thread.start()

    def remove(self, sock: socket.socket) -> None:
        """Stop relaying for ``sock``: end its connections and flows, close it."""
        with self._lock:
            listener = self._listeners.pop(sock.fileno(), None)
            if listener is None:
                return
            self._forget(sock)
            connections = list(listener.connections)
            for flow in listener.flows.values():
                self._forget(flow.upstream)
                flow.upstream.close()
        for conn in connections:
            _shutdown(conn)
        sock.close()

    def close(self) -> None:
        """Stop every relay (closing twice is harmless)."""
        with self._lock:
            if self._epoll.closed:
                return
            socks = [listener.sock for listener in self._listeners.values()]
        for sock in socks:
            self.remove(sock)
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._epoll.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _forget(self, sock: socket.socket) -> None:
        """Drop ``sock`` from the epoll set and the handler table (lock held)."""
        self._handlers.pop(sock.fileno(), None)
        with suppress(OSError, ValueError):
            self._epoll.unregister(sock.fileno())

    # ----------------------------------------------------------------- the loop

    def _loop(self) -> None:
        with self._namespace.entered():
            while True:
                try:
                    events = self._epoll.poll(UDP_IDLE_S / 3)
                except OSError:
                    return  # closed
                for fd, _ in events:
                    if fd == self._stop_r:
                        return
                    with self._lock:
                        handler = self._handlers.get(fd)
                    if handler is None:
                        continue
                    try:
                        handler()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        log.exception("port proxy event on fd %d", fd)
                self._expire_flows()

    # ----------------------------------------------------------------- TCP

    def _accept(self, listener: _Listener) -> None:
        conn, _ = listener.sock.accept()
        conn.setblocking(True)
        with self._lock:
            listener.connections.add(conn)
        threading.Thread(
            target=self._relay, args=(listener, conn), name="cnm-port-relay", daemon=True
        ).start()

    def _relay(self, listener: _Listener, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            family = socket.AF_INET6 if ":" in listener.target[0] else socket.AF_INET
            with self._namespace.entered():
                upstream = socket.socket(family, socket.SOCK_STREAM)
            upstream.settimeout(CONNECT_TIMEOUT_S)
            upstream.connect(listener.target)
            upstream.settimeout(None)
            with self._lock:
                listener.connections.add(upstream)
            back = threading.Thread(
                target=_pump, args=(upstream, conn), name="cnm-port-relay", daemon=True
            )
            back.start()
            _pump(conn, upstream)
            back.join()
        except OSError as err:
            log.debug("port proxy to %s: %s", listener.target, err)
        finally:
            with self._lock:
                listener.connections.discard(conn)
                if upstream is not None:
                    listener.connections.discard(upstream)
            conn.close()
            if upstream is not None:
                upstream.close()

    # ----------------------------------------------------------------- UDP

    def _datagram(self, listener: _Listener) -> None:
        data, client = listener.sock.recvfrom(65535)
        client = client[:2]
        with self._lock:
            flow = listener.flows.get(client)
            if flow is None:
                family = socket.AF_INET6 if ":" in listener.target[0] else socket.AF_INET
                upstream = socket.socket(family, socket.SOCK_DGRAM)
                upstream.setblocking(False)
                upstream.connect(listener.target)
                flow = _Flow(upstream, client, time.monotonic())
                listener.flows[client] = flow
                self._handlers[upstream.fileno()] = lambda: self._reply(listener, flow)
                self._epoll.register(upstream.fileno(), select.EPOLLIN)
        flow.last = time.monotonic()
        with suppress(ConnectionRefusedError):  # an ICMP error from an earlier datagram
            flow.upstream.send(data)

    def _reply(self, listener: _Listener, flow: _Flow) -> None:
        try:
            data = flow.upstream.recv(65535)
        except ConnectionRefusedError:
            return
        flow.last = time.monotonic()
        listener.sock.sendto(data, flow.client)

    def _expire_flows(self) -> None:
        now = time.monotonic()
        with self._lock:
            for listener in self._listeners.values():
                for client, flow in list(listener.flows.items()):
                    if now - flow.last > UDP_IDLE_S:
                        self._forget(flow.upstream)
                        flow.upstream.close()
                        del listener.flows[client]


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink``: at end of file half-close ``sink``; on an error (a reset)
    shut both down, so the other direction's pump ends too."""
    read_end, write_end = os.pipe()
    try:
        while True:
            moved = os.splice(source.fileno(), write_end, SPLICE_CHUNK)
            if moved == 0:
                break
            while moved:
                moved -= os.splice(read_end, sink.fileno(), moved)
        sink.shutdown(socket.SHUT_WR)
    except OSError as err:
        if err.errno not in (errno.ECONNRESET, errno.EPIPE, errno.EBADF, errno.ENOTCONN):
            log.debug("port proxy relay: %s", err)
        _shutdown(source)
        _shutdown(sink)
    finally:
        os.close(read_end)
        os.close(write_end)


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
