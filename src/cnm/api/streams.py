"""Streams of container output: Docker's multiplexed framing, hijacked connections, log files.

Docker's attach and exec-start take over the HTTP connection ("hijack"): a client that asked to
upgrade (``Connection: Upgrade``, ``Upgrade: tcp``, as the docker CLI and docker-py always do)
gets ``101 UPGRADED`` and then raw bytes both ways; one that did not gets ``200 OK`` and the raw
bytes until the server closes. aiohttp knows the ``tcp`` upgrade: its parser hands every byte
after the request to the parser that ``set_parser`` installs, which is how the client's stdin is
read here. The response is a StreamResponse without length checking (as aiohttp's own websocket
response), so nothing is chunk-encoded, and the connection closes when the stream ends.

Output is framed as Docker frames it unless the container has a TTY: an 8-byte header (stream
1 stdout or 2 stderr, three zero bytes, the big-endian length) before each chunk.

A container's output is read from its log files (the runtime appends to them while it runs),
so a client attached before start, or late, misses nothing: attach streams from where the files
ended when it attached (from their beginning for a container that has not run yet), logs from
the beginning. Files are kept open once opened, so output stays readable if the container is
removed (``--rm``) right after it exits.
"""

from __future__ import annotations

import asyncio
import select
import struct
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from aiohttp import web

STDOUT = 1
STDERR = 2
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
POLL_INTERVAL_S = 0.02
READ_CHUNK = 1 << 16
FOLLOW_CHUNK = 1 << 20  # what is read of a log file at once


def frame(stream: int, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def _version(request: web.Request) -> tuple[int, int]:
    from cnm.api import API_VERSION

    major, minor = request.match_info.get("version", API_VERSION).split(".")
    return int(major), int(minor)


def content_type(request: web.Request, multiplexed: bool) -> str:
    """Docker names the multiplexed stream as such from API 1.42 on."""
    return MULTIPLEXED_STREAM if multiplexed and _version(request) >= (1, 42) else RAW_STREAM


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
    await response.prepare(request)
    transport = request.transport
    if transport is not None:
        protocol = transport.get_protocol()
        assert isinstance(protocol, asyncio.Protocol)  # aiohttp's RequestHandler
        transport.set_protocol(_KeepOpenOnEof(protocol))
    return response


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
    """The bytes the client sends on a hijacked, upgraded connection; None marks their end."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    transport = request.transport
    wrapper = transport.get_protocol() if transport is not None else None
    if not isinstance(wrapper, _KeepOpenOnEof) or not wants_upgrade(request):
        queue.put_nowait(None)
        return queue
    # aiohttp annotates set_parser for its WebSocketReader; what it calls is feed_data/feed_eof.
    request.protocol.set_parser(_InputParser(queue))  # type: ignore[arg-type]
    wrapper.input = queue
    if wrapper.eof:  # the client finished before we listened
        queue.put_nowait(None)
    return queue


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


class LogTail:
    """Reads a log file that the runtime appends to, from an offset on."""

    def __init__(self, path: Path, stream: int, offset: int = 0) -> None:
        self.path = path
        self.stream = stream
        self.offset = offset
        self._file: IO[bytes] | None = None
        self._opening = threading.Lock()  # the exit listener may open it from another thread

    @classmethod
    def at_end(cls, path: Path, stream: int) -> LogTail:
        tail = cls(path, stream)
        if tail.open():
            tail.offset = tail.size()
        return tail

    def open(self) -> bool:
        with self._opening:
            if self._file is None:
                try:
                    self._file = open(self.path, "rb")  # noqa: SIM115 - kept open on purpose
                except FileNotFoundError:
                    return False
            return True

    def size(self) -> int:
        assert self._file is not None
        return self._file.seek(0, 2)

    def read(self, limit: int = -1) -> bytes:
        """What was appended since the last read, at most ``limit`` bytes if that is positive
        ('' if nothing or no file yet)."""
        if not self.open():
            return b""
        assert self._file is not None
        if self.size() < self.offset:
            self.offset = 0  # the file was started again
        self._file.seek(self.offset)
        data = self._file.read(limit)
        self.offset += len(data)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def last_lines(data: bytes, count: int) -> bytes:
    """The last ``count`` lines of ``data`` (a final line without newline counts)."""
    if count <= 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:])


Writer = Callable[[int, bytes], Awaitable[None]]


def stream_writer(response: web.StreamResponse, multiplexed: bool) -> Writer:
    async def write(stream: int, data: bytes) -> None:
        for start in range(0, len(data), READ_CHUNK):
            chunk = data[start : start + READ_CHUNK]
            await response.write(frame(stream, chunk) if multiplexed else chunk)

    return write


async def follow(
    tails: list[LogTail],
    write: Writer,
    finished: asyncio.Future[Any] | None,
    request: web.Request,
) -> None:
    """Copy what the tails gain to ``write`` until ``finished`` is done (then copy the rest),
    or the client goes away. With ``finished`` None, copy what there is and stop."""

    async def copy() -> None:
        for tail in tails:
            while data := tail.read(FOLLOW_CHUNK):
                await write(tail.stream, data)

    try:
        while finished is not None and not finished.done():
            await copy()
            if client_gone(request):
                return
            await asyncio.wait({finished}, timeout=POLL_INTERVAL_S)
        await copy()
    finally:
        for tail in tails:
            tail.close()
