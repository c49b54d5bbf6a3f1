"""A container's output: the FIFOs between its process and the daemon, the one thread that
copies them to the log driver, and the clients that follow the output live (attach, logs -f).

Why FIFOs, and why the container holds them open for reading too. A start makes
``stdout.fifo`` and ``stderr.fifo`` in the container's bundle directory (one, ``stdout``, with a
terminal, whose copier writes there) and hands the process each one opened O_RDWR; the daemon
reads them through a read-only, non-blocking descriptor of its own. Since the process holds a
reader itself, it never gets SIGPIPE when the daemon goes away (a restart, a crash): its writes
fill the pipe (sized 1 MiB, F_SETPIPE_SZ) and then wait, as a container's do under Docker while
dockerd is down, and the next daemon opens the FIFO again and goes on where the last one
stopped. The process's own reader never reads, so it takes nothing from the daemon's.

End of output. A FIFO reads EOF once no writer holds it, i.e. when the container's processes
are gone; epoll reports that (EPOLLHUP) only to a reader that was open before a writer came,
which a resumed reader was not, so the runtime's teardown also ``end``s the run: it reads what
is left and closes the run whatever the epoll said. The run's followers get the end of it
(``None``) once every stream of the run is closed, after the last output.

Lines. Output goes to the log as Docker's copier makes messages of it: one per line, a line
longer than 16 KiB in pieces, what is left without a newline when the stream ends; each stamped
when the daemon read it. ``LINES`` followers (``logs -f``) get those messages; ``RAW`` followers
(attach) get the bytes as they were read, so a prompt without a newline reaches the terminal.

Following without a gap. ``subscribe`` registers a follower and snapshots the log files under
the container's lock, the one the copier writes and dispatches under: a client reads the
snapshot and then what the follower received, and sees every message exactly once. A follower
registered while the container is not running follows its next run (``docker start -a``
attaches first); a failed start, or a removal, ends it.

Followers are called on the copier thread with the container's lock held: they must only queue
what they get (the API hands it to its event loop). What they have not taken stays queued in
memory: a slow client does not hold up the container.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cnm.runtime.logdriver import STDERR, STDOUT, LogFile, LogMessage, read_messages
from cnm.runtime.model import Container

log = logging.getLogger(__name__)

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
MAX_LINE = 16 << 10  # Docker's copier cuts longer lines into pieces of this size
READ_CHUNK = 64 << 10
DRAIN_LIMIT = 16 << 20  # what a teardown reads of a stream at most (a writer that escaped)
FIFO_NAMES = {STDOUT: "stdout.fifo", STDERR: "stderr.fifo"}

RAW = "raw"
LINES = "lines"


@dataclass(frozen=True)
class Chunk:
    """Output as a follower gets it: raw bytes read (RAW) or one message (LINES)."""

    stream: int
    data: bytes
    time_ns: int = 0


Notify = Callable[[list[Chunk] | None], None]  # None: the run ended


class Subscription:
    """A follower of one container's output; ``close`` when no longer interested."""

    def __init__(self, output: _Output, mode: str, streams: frozenset[int], notify: Notify) -> None:
        self._output = output
        self.mode = mode
        self.streams = streams
        self._notify = notify
        self.ended = False

    def deliver(self, chunks: list[Chunk]) -> None:
        wanted = [c for c in chunks if c.stream in self.streams]
        if wanted and not self.ended:
            self._notify(wanted)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._notify(None)

    def close(self) -> None:
        with self._output.lock:
            self.ended = True
            if self in self._output.followers:
                self._output.followers.remove(self)


@dataclass
class RunStreams:
    """What a start hands the container (``container_fds``, to close once it has them) and
    what the daemon keeps to read (``read_fds``), by stream."""

    container_fds: dict[int, int] = field(default_factory=dict)
    read_fds: dict[int, int] = field(default_factory=dict)

    def close_container_side(self) -> None:
        for fd in self.container_fds.values():
            os.close(fd)
        self.container_fds.clear()

    def close(self) -> None:
        self.close_container_side()
        for fd in self.read_fds.values():
            os.close(fd)
        self.read_fds.clear()


class _Stream:
    def __init__(self, output: _Output, stream: int, fd: int) -> None:
        self.output = output
        self.stream = stream
        self.fd = fd
        self.pending = bytearray()
        self.closed = False


class _Output:
    """One container's: its log file, the streams of its run, its followers."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        self.lock = threading.Lock()
        self.log: LogFile | None = None
        self.attrs: dict[str, str] = {}
        self.streams: list[_Stream] = []
        self.followers: list[Subscription] = []

    def dispatch(self, stream: int, raw: bytes, lines: list[LogMessage]) -> None:
        """With the lock held: a read's lines to the log, and to the followers."""
        if self.log is not None and lines:
            try:
                self.log.write(lines)
            except OSError:
                log.exception("writing the log of %s", self.container_id[:12])
        if not self.followers:
            return
        raw_chunks = [Chunk(stream, raw)] if raw else []
        line_chunks = [Chunk(m.stream, m.data, m.time_ns) for m in lines]
        for follower in list(self.followers):
            follower.deliver(raw_chunks if follower.mode == RAW else line_chunks)

    def end_followers(self) -> None:
        followers, self.followers = self.followers, []
        for follower in followers:
            follower.end()


def _lines(stream: _Stream, data: bytes, final: bool, attrs: dict[str, str]) -> list[LogMessage]:
    """Docker's copier: complete lines, pieces of MAX_LINE, and at the end what is left."""
    stream.pending += data
    now = time.time_ns()
    found: list[LogMessage] = []
    while True:
        newline = stream.pending.find(b"\n", 0, MAX_LINE)
        if newline >= 0:
            cut = newline + 1
        elif len(stream.pending) >= MAX_LINE or (final and stream.pending):
            cut = min(len(stream.pending), MAX_LINE)
        else:
            break
        found.append(LogMessage(stream.stream, bytes(stream.pending[:cut]), now, attrs))
        del stream.pending[:cut]
    return found


class OutputHub:
    """Every container's output; one copier thread reads every FIFO."""

    def __init__(self, bundle_dir: Callable[[str], Path]) -> None:
        self._bundle_dir = bundle_dir
        self._lock = threading.Lock()
        self._outputs: dict[str, _Output] = {}
        self._by_fd: dict[int, _Stream] = {}
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._closed = False
        self._thread = threading.Thread(target=self._copy, name="cnm-output", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop copying; the containers' FIFOs stay for the next daemon. Unfinished lines are
        logged as they are."""
        self._closed = True
        os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(5)
        with self._lock:
            outputs = list(self._outputs.values())
        for output in outputs:
            with output.lock:
                for stream in list(output.streams):
                    self._close_stream(output, stream, flush=True)
                if output.log is not None:
                    output.log.close()
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # ------------------------------------------------------------------ containers

    def _output(self, container_id: str) -> _Output:
        with self._lock:
            output = self._outputs.get(container_id)
            if output is None:
                output = self._outputs[container_id] = _Output(container_id)
            return output

    def configure(
        self, container: Container, log_file: LogFile | None, attrs: dict[str, str]
    ) -> None:
        """Where the container's output is logged (None: the none driver) and the attributes
        each message carries."""
        output = self._output(container.id)
        with output.lock:
            if output.log is not None:
                output.log.close()
            output.log = log_file
            output.attrs = attrs

    def forget(self, container_id: str) -> None:
        """The container was removed: its followers are let go, its log closed."""
        with self._lock:
            output = self._outputs.pop(container_id, None)
        if output is None:
            return
        with output.lock:
            for stream in list(output.streams):
                self._close_stream(output, stream, flush=False)
            output.end_followers()
            if output.log is not None:
                output.log.close()
                output.log = None

    # ------------------------------------------------------------------ runs

    def prepare(self, container_id: str, tty: bool) -> RunStreams:
        """The FIFOs of a new run, made afresh and opened: the process's ends and ours."""
        bundle = self._bundle_dir(container_id)
        bundle.mkdir(parents=True, exist_ok=True)
        run = RunStreams()
        try:
            for stream in (STDOUT,) if tty else (STDOUT, STDERR):
                path = bundle / FIFO_NAMES[stream]
                path.unlink(missing_ok=True)
                os.mkfifo(path, 0o600)
                read_fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                run.read_fds[stream] = read_fd
                with contextlib.suppress(OSError):  # a smaller pipe still works
                    fcntl.fcntl(read_fd, F_SETPIPE_SZ, PIPE_SIZE)
                run.container_fds[stream] = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            run.close()
            raise
        return run

    def begin(self, container_id: str, run: RunStreams) -> None:
        """The process started: copy its output from now on (``run`` is ours then)."""
        run.close_container_side()
        output = self._output(container_id)
        with output.lock:
            for stream, fd in run.read_fds.items():
                self._add_stream(output, stream, fd)
            run.read_fds.clear()

    def discard(self, container_id: str, run: RunStreams) -> None:
        """The start failed: what the process may have written is dropped, and the clients
        waiting for this run are let go."""
        run.close()
        output = self._output(container_id)
        with output.lock:
            if not output.streams:
                output.end_followers()

    def resume(self, container_id: str, tty: bool) -> None:
        """After a daemon restart: read a running container's FIFOs again."""
        bundle = self._bundle_dir(container_id)
        output = self._output(container_id)
        with output.lock:
            for stream in (STDOUT,) if tty else (STDOUT, STDERR):
                try:
                    fd = os.open(
                        bundle / FIFO_NAMES[stream], os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
                    )
                except OSError as err:
                    log.warning("container %s: its output is lost: %s", container_id[:12], err)
                    continue
                self._add_stream(output, stream, fd)

    def end(self, container_id: str) -> None:
        """The run's process is gone: read what is left, close its streams, and end its
        followers once their last output is delivered."""
        with self._lock:
            output = self._outputs.get(container_id)
        if output is None:
            return
        with output.lock:
            for stream in list(output.streams):
                self._drain(output, stream)
            if not output.streams:
                output.end_followers()

    # ------------------------------------------------------------------ followers, reading

    def subscribe(
        self,
        container_id: str,
        mode: str,
        streams: frozenset[int],
        notify: Notify,
        history: bool = False,
    ) -> tuple[Subscription, list[tuple[IO[bytes], int]]]:
        """Follow the container's output from now on; with ``history``, also the log files
        as they are at that moment (to read with ``logdriver.read_messages``)."""
        output = self._output(container_id)
        with output.lock:
            snapshot = output.log.snapshot() if history and output.log is not None else []
            subscription = Subscription(output, mode, streams, notify)
            output.followers.append(subscription)
        return subscription, snapshot

    def read(
        self, container_id: str, since_ns: int = 0, until_ns: int = 0, tail: int | None = None
    ) -> list[LogMessage]:
        output = self._output(container_id)
        with output.lock:
            snapshot = output.log.snapshot() if output.log is not None else []
        return read_messages(snapshot, since_ns, until_ns, tail)

    # ------------------------------------------------------------------ the copier

    def _add_stream(self, output: _Output, stream: int, fd: int) -> None:
        entry = _Stream(output, stream, fd)
        output.streams.append(entry)
        with self._lock:
            self._by_fd[fd] = entry
        self._epoll.register(fd, select.EPOLLIN)

    def _close_stream(self, output: _Output, stream: _Stream, flush: bool) -> None:
        """With the output's lock held."""
        if stream.closed:
            return
        if flush and stream.pending:
            output.dispatch(stream.stream, b"", _lines(stream, b"", True, output.attrs))
        stream.closed = True
        with self._lock:
            self._by_fd.pop(stream.fd, None)
        with contextlib.suppress(OSError):
            self._epoll.unregister(stream.fd)
        os.close(stream.fd)
        output.streams.remove(stream)

    def _read(self, output: _Output, stream: _Stream) -> bool:
        """One read of a stream (with the output's lock held); False once it is finished."""
        try:
            data = os.read(stream.fd, READ_CHUNK)
        except BlockingIOError:
            return True
        except OSError as err:
            log.warning("reading the output of %s: %s", output.container_id[:12], err)
            data = b""
        if not data:
            self._close_stream(output, stream, flush=True)
            return False
        output.dispatch(stream.stream, data, _lines(stream, data, False, output.attrs))
        return True

    def _drain(self, output: _Output, stream: _Stream) -> None:
        read = 0
        while not stream.closed and read < DRAIN_LIMIT:
            try:
                data = os.read(stream.fd, READ_CHUNK)
            except BlockingIOError:
                break  # a writer that outlived the container: what it writes later is lost
            except OSError:
                data = b""
            if not data:
                break
            read += len(data)
            output.dispatch(stream.stream, data, _lines(stream, data, False, output.attrs))
        self._close_stream(output, stream, flush=True)

    def _copy(self) -> None:
        while not self._closed:
            try:
                events = self._epoll.poll()
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return  # closed under us
            for fd, _ in events:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 64)
                    continue
                with self._lock:
                    stream = self._by_fd.get(fd)
                if stream is None:
                    continue
                output = stream.output
                with output.lock:
                    if stream.closed:
                        continue
                    if not self._read(output, stream) and not output.streams:
                        output.end_followers()
