"""Streams of container output: Docker's multiplexed framing, hijacked connections, log files.

Docker's attach and exec-start take over the HTTP connection ("hijack"): a client that asked to
upgrade (``Connection: Upgrade``, ``Upgrade: tcp``, as the docker CLI and docker-py always do)
gets ``101 UPGRADED`` and then raw bytes both ways; one that did not gets ``200 OK`` and the raw
bytes until the server closes. Every byte after the request goes to the parser that
``set_parser`` installs, which is how the client's stdin is read here; it is installed before
the headers leave (aiohttp's own parser takes only websocket as an upgrade, and would parse
early input as a next request). The response is a StreamResponse without length checking (as aiohttp's own websocket
response), so nothing is chunk-encoded, and the connection closes when the stream ends.

Output is framed as Docker frames it unless the container has a TTY: an 8-byte header (stream
1 stdout or 2 stderr, three zero bytes, the big-endian length) before each chunk.

A container's output comes from the runtime (``Runtime.follow_output``, ``read_logs``): its
followers get it on the runtime's copier thread and hand it to the event loop here
(``Follower``), so a client attached before start, or late, misses nothing and nothing is
polled. Logs are written a message (a line) per frame, attach a read per frame.

Detach keys (``detachKeys``, an exec's ``DetachKeys``; Docker's default ctrl-p,ctrl-q) end an
attach or an exec's stream when the client types them, each key arriving on its own as it does
from a terminal (Docker's escape proxy matches a one-byte read only, so input piped in bulk
never detaches); the keys are not passed on, a partial match is passed on once it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import select
import struct
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web

from cnm.errors import InvalidParameter
from cnm.runtime.logdriver import format_time
from cnm.runtime.outputs import Chunk

STDOUT = 1
STDERR = 2
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
READ_CHUNK = 1 << 16
SIOCOUTQ = 0x5411
HEADERS_READ_POLLS = 100  # of HEADERS_READ_POLL_S: at most 0.2 s for a client that waits
HEADERS_READ_POLL_S = 0.002


def frame(stream: int, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def api_version(request: web.Request) -> tuple[int, int]:
    from cnm.api import API_VERSION

    major, minor = request.match_info.get("version", API_VERSION).split(".")
    return int(major), int(minor)


def content_type(request: web.Request, multiplexed: bool) -> str:
    """Docker names the multiplexed stream as such from API 1.42 on."""
    return MULTIPLEXED_STREAM if multiplexed and api_version(request) >= (1, 42) else RAW_STREAM


def wants_upgrade(request: web.Request) -> bool:
    connection = {
        token.strip().lower() for token in request.headers.get("Connection", "").split(",")
    }
    return "upgrade" in connection and bool(request.headers.get("Upgrade"))


class HijackedResponse(web.StreamResponse):
    """A response whose body is the raw connection: no chunking, closed at the end."""

    _length_check = False


async def hijack(request: web.Request, multiplexed: bool) -> HijackedResponse:
    """Answer 101 UPGRADED (or 200 when the client did not ask to upgrade) and hand back the
    response to write the stream to."""
    if wants_upgrade(request):
        response = HijackedResponse(status=101, reason="UPGRADED")
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    else:
        response = HijackedResponse(status=200)
    response.content_type = content_type(request, multiplexed)
    response.force_close()
    transport = request.transport
    if transport is not None:
        protocol = transport.get_protocol()
        assert isinstance(protocol, asyncio.Protocol)  # aiohttp's RequestHandler
        wrapper = _KeepOpenOnEof(protocol)
        transport.set_protocol(wrapper)
        if wants_upgrade(request):
            # Before the headers leave: the client sends its input as soon as it has them,
            # and aiohttp's parser takes only websocket as an upgrade, so bytes that came
            # before this would be parsed as a next request and lost.
            wrapper.input = asyncio.Queue()
            # aiohttp annotates set_parser for its WebSocketReader; it calls feed_data/eof.
            request.protocol.set_parser(_InputParser(wrapper.input))  # type: ignore[arg-type]
    await response.prepare(request)
    if transport is not None:
        await _headers_read(transport)
    return response


async def _headers_read(transport: asyncio.BaseTransport) -> None:
    """Wait (a moment at most) until the client has read the response's headers, so that the
    stream's first bytes never reach it in the same read. Clients that take over the socket
    after parsing the headers (docker-py reads the raw socket under http.client's buffered
    reader) would lose whatever that buffer read past the headers. SIOCOUTQ tells how much
    of what was sent the peer has not read yet (Unix stream sockets too)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    for _ in range(HEADERS_READ_POLLS):
        try:
            unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return
        if unread == 0:
            return
        await asyncio.sleep(HEADERS_READ_POLL_S)


class _InputParser:
    """Takes the client's bytes after the upgrade (the contract of aiohttp's ``set_parser``)."""

    def __init__(self, queue: asyncio.Queue[bytes | None]) -> None:
        self._queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self._queue.put_nowait(None)


class _KeepOpenOnEof(asyncio.Protocol):
    """Wraps aiohttp's protocol on a hijacked connection so that the client half-closing ends
    its input but not the connection: the output still has to flow. The docker CLI half-closes
    after the last byte of stdin, and at once when it sends none."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self._inner = inner
        self.input: asyncio.Queue[bytes | None] | None = None
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.input is not None:
            self.input.put_nowait(None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def client_input(request: web.Request) -> asyncio.Queue[bytes | None]:
    """The bytes the client sends on a hijacked, upgraded connection (taken since ``hijack``
    answered); None marks their end."""
    transport = request.transport
    wrapper = transport.get_protocol() if transport is not None else None
    if not isinstance(wrapper, _KeepOpenOnEof) or wrapper.input is None:
        ended: asyncio.Queue[bytes | None] = asyncio.Queue()
        ended.put_nowait(None)
        return ended
    return wrapper.input


def client_gone(request: web.Request) -> bool:
    """Whether the client closed the connection. On a hijacked connection its half-close is
    no sign (see _KeepOpenOnEof), so ask the socket: a peer that closed both ways hangs it up."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


Writer = Callable[[int, bytes], Awaitable[None]]


def stream_writer(response: web.StreamResponse, multiplexed: bool) -> Writer:
    async def write(stream: int, data: bytes) -> None:
        for start in range(0, len(data), READ_CHUNK):
            chunk = data[start : start + READ_CHUNK]
            await response.write(frame(stream, chunk) if multiplexed else chunk)

    return write


class Follower:
    """A runtime follower's output, handed to the event loop: ``notify`` is what the runtime
    calls (on its copier thread); ``get`` returns the next chunks, or None at the end (also
    once the daemon shuts down: ``end_all``)."""

    _live: weakref.WeakSet[Follower] = weakref.WeakSet()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[list[Chunk] | None] = asyncio.Queue()
        Follower._live.add(self)

    def notify(self, chunks: list[Chunk] | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            self._loop.call_soon_threadsafe(self._queue.put_nowait, chunks)

    @classmethod
    def end_all(cls) -> None:
        """The daemon is shutting down: every stream following output ends."""
        for follower in list(cls._live):
            follower._queue.put_nowait(None)

    async def get(self, timeout: float | None = None) -> list[Chunk] | None:
        """The next chunks; None at the end of the output; TimeoutError after ``timeout``."""
        return await asyncio.wait_for(self._queue.get(), timeout)


CTRL_NAMES = "@abcdefghijklmnopqrstuvwxyz[\\]^_"
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p,ctrl-q


def parse_detach_keys(text: str, what: str = "detach keys") -> bytes:
    """Docker's form (term.ToBytes): ``ctrl-p,ctrl-q``, ``a,b``, ``ctrl-@``...; "" is the
    default."""
    if not text:
        return DEFAULT_DETACH_KEYS
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            codes += key.encode()
            continue
        lowered = key.lower()
        if lowered.startswith("ctrl-") and len(lowered) == 6 and lowered[5] in CTRL_NAMES:
            codes.append(CTRL_NAMES.index(lowered[5]))
            continue
        raise InvalidParameter(f"Invalid {what} ({text}) provided")
    return bytes(codes)


class DetachScanner:
    """Docker's escape proxy over the client's input: ``feed`` returns what to pass on and
    whether the keys were typed."""

    def __init__(self, keys: bytes) -> None:
        self._keys = keys
        self._matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if len(data) == 1 and data[0] == self._keys[self._matched]:
            if self._matched == len(self._keys) - 1:
                self._matched = 0
                return b"", True
            self._matched += 1
            return b"", False
        held, self._matched = self._keys[: self._matched], 0
        return held + data, False


async def copy_input(
    received: asyncio.Queue[bytes | None],
    keys: bytes,
    send: Callable[[bytes], Awaitable[None]],
) -> bool:
    """The client's input to ``send`` until its end (False) or the detach keys (True)."""
    scanner = DetachScanner(keys)
    while (data := await received.get()) is not None:
        passed, detached = scanner.feed(data)
        if passed:
            await send(passed)
        if detached:
            return True
    return False


async def write_chunks(write: Writer, chunks: list[Chunk], timestamps: bool = False) -> None:
    for chunk in chunks:
        data = chunk.data
        if timestamps:
            data = format_time(chunk.time_ns).encode() + b" " + data
        await write(chunk.stream, data)
