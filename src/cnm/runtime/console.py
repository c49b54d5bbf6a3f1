"""A container's terminal (``Tty``) and stdin (``OpenStdin``): what the daemon holds of them.

Without either, runc hands its own stdio to the container and the output goes straight to the
log files. A terminal and a stdin pipe have a far end that someone must hold, read and write:

* ``ConsoleSocket``: with ``process.terminal`` runc makes the pseudo-terminal inside the container
  and sends its master over ``--console-socket`` (one SCM_RIGHTS message). The socket is bound in
  the bundle directory through /proc/self/fd (a Unix socket path holds at most 107 bytes; the
  bundle path may be longer), and runc, started in that directory, connects by the bare name.
  ``runc run -d`` returns once the master is sent, so it waits in the socket's queue.
* ``Terminal``: a ``cat`` child copies the master's output to the container's stdout FIFO (a
  terminal merges stdout and stderr into one stream; ``outputs`` reads the FIFO). It runs in a
  session of its own and outlives the daemon, so a daemon restart neither hangs the terminal up
  (that would SIGHUP the container and end an interactive shell at its next read) nor loses its
  output. The daemon keeps a
  copy of the master for input and resize, and after a restart takes it again from the
  copier with pidfd_getfd(2) (its pid is in ``console.pid`` in the bundle).
* ``Stdin``: what attached clients send, queued (``docker run -i`` attaches and sends before
  the start) and written by a thread to the process's stdin, the master or a pipe's write end,
  once it runs. The queue belongs to one run: the runtime makes a new one after each exit.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from cnm.errors import InvalidParameter
from cnm.osl.reaper import REAPER, Child
from cnm.runtime import pidwatch

log = logging.getLogger(__name__)

SOCKET_NAME = "console.sock"
PID_FILE = "console.pid"
SYS_PIDFD_GETFD = 438  # the same number on every architecture (new syscalls are unified)
MAX_FDS = 4

_libc = ctypes.CDLL(None, use_errno=True)


def check_size(height: int, width: int) -> None:
    """A terminal's rows and columns, as TIOCSWINSZ takes them."""
    if not (0 <= height <= 0xFFFF and 0 <= width <= 0xFFFF):
        raise InvalidParameter(f"invalid terminal size {height}x{width}")


def set_size(fd: int, height: int, width: int) -> None:
    """TIOCSWINSZ: the kernel sends SIGWINCH to the terminal's foreground process group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _pidfd_getfd(pidfd: int, target: int) -> int:
    fd = _libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"pidfd_getfd: {os.strerror(err)}")
    return int(fd)


@dataclass
class ProcessStdio:
    """A process's stdio at start: ``output``, the descriptors its output goes to by stream
    (the container's ends of its output FIFOs; not this one's to close), and what the start
    leaves the daemon (-1: none): the master of its terminal, the write end of its stdin pipe."""

    output: dict[int, int] = field(default_factory=dict)
    master: int = -1
    stdin: int = -1

    def close(self) -> None:
        for fd in (self.master, self.stdin):
            if fd >= 0:
                os.close(fd)
        self.master = self.stdin = -1


class ConsoleSocket:
    """The listening end of runc's ``--console-socket``, in ``directory`` while it is open."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / SOCKET_NAME
        self._path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        dirfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._sock.bind(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
            self._sock.listen(1)
        except OSError:
            self._sock.close()
            raise
        finally:
            os.close(dirfd)

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._sock.close()
        self._path.unlink(missing_ok=True)

    def receive(self) -> int:
        """The master that runc sent; call once ``runc run -d`` has succeeded."""
        self._sock.setblocking(False)
        try:
            conn, _ = self._sock.accept()
        except BlockingIOError:
            raise OSError("runc did not send the terminal") from None
        with conn:
            conn.setblocking(False)
            try:
                _, fds, _, _ = socket.recv_fds(conn, 4096, MAX_FDS, socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                fds = []
        if not fds:
            raise OSError("runc did not send the terminal")
        for extra in fds[1:]:
            os.close(extra)
        os.set_blocking(fds[0], True)
        return fds[0]


class Terminal:
    """A running container's terminal: the master (kept by the daemon) and its copier."""

    def __init__(self, master: int, pidfd: int, child: Child | None, pid_file: Path) -> None:
        self._lock = threading.Lock()
        self._master = master
        self._pidfd = pidfd  # the copier's
        self._child = child  # the copier, if this daemon started it
        self._pid_file = pid_file

    @classmethod
    def start(cls, master: int, output: int, bundle_dir: Path) -> Terminal:
        """Start copying the master's output to the descriptor ``output``; ``master`` is then
        this one's (the caller's still if this fails)."""
        child = REAPER.spawn(
            ["cat"],
            stdin=master,
            stdout=output,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        pid_file = bundle_dir / PID_FILE
        try:
            pidfd = os.pidfd_open(child.pid)
            pid_file.write_text(f"{child.pid} {pidwatch.start_time(child.pid)}\n")
        except OSError:
            child.kill()
            raise
        return cls(master, pidfd, child, pid_file)

    @classmethod
    def recover(cls, bundle_dir: Path) -> Terminal | None:
        """After a daemon restart: the master again, taken from the copier that kept it."""
        pid_file = bundle_dir / PID_FILE
        try:
            pid, started = map(int, pid_file.read_text().split())
            pidfd = os.pidfd_open(pid)
        except (OSError, ValueError):
            return None
        try:
            if not pidwatch.alive(pid, started):  # checked after the open: no reused pid
                raise ProcessLookupError(pid)
            master = _pidfd_getfd(pidfd, 0)
        except OSError as err:
            log.warning("cannot take the terminal back from its copier %d: %s", pid, err)
            os.close(pidfd)
            return None
        return cls(master, pidfd, None, pid_file)

    def input_fd(self) -> int:
        """A copy of the master to write the container's input to (the caller closes it)."""
        with self._lock:
            if self._master < 0:
                raise OSError("the terminal is closed")
            return os.dup(self._master)

    def resize(self, height: int, width: int) -> None:
        with self._lock:
            if self._master >= 0:
                set_size(self._master, height, width)

    def finish(self, timeout: float) -> None:
        """The container ended: let the copier read what is left (it ends once no process
        holds the terminal), for at most ``timeout`` seconds, then close everything."""
        poller = select.poll()  # not select(): a busy daemon's fds go past FD_SETSIZE
        poller.register(self._pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            log.warning("a container's terminal is still held after its exit: closing it")
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        if self._child is not None:
            self._child.wait()
        self._pid_file.unlink(missing_ok=True)
        self.detach()

    def detach(self) -> None:
        """Let go of the terminal; the copier keeps it open and logged (a daemon shutdown)."""
        with self._lock:
            master, self._master = self._master, -1
            pidfd, self._pidfd = self._pidfd, -1
        for fd in (master, pidfd):
            if fd >= 0:
                os.close(fd)


_STOP = object()


class Stdin:
    """A container's stdin for one run: attached clients' bytes, queued until the process runs
    and then written to it by a thread; ``close`` is the end of input (the process reads EOF)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False

    def write(self, data: bytes) -> None:
        with self._lock:
            if not self._closed:
                self._queue.put(data)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)

    def feed(self, fd: int, name: str) -> None:
        """Write the input to ``fd`` (which this one now owns) from a thread of its own."""
        threading.Thread(target=self._pump, args=(fd,), name=name, daemon=True).start()

    def stop(self) -> None:
        """The process ended (or the daemon is leaving): the thread ends, closing its fd."""
        self._queue.put(_STOP)

    def _pump(self, fd: int) -> None:
        try:
            while isinstance(data := self._queue.get(), bytes):
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
        except OSError:
            pass  # the process is gone (EPIPE; EIO from a terminal nobody holds)
        finally:
            os.close(fd)
