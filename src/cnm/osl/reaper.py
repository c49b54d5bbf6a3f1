"""One reaper for every child process of the daemon, and the only way to start children.

Why one reaper:
* ``runc run -d`` exits once the container is started; the kernel then reparents the
  container's init to the nearest child subreaper (prctl PR_SET_CHILD_SUBREAPER) or to PID 1.
  This machine's PID 1 does not reap orphans, so the daemon is a subreaper and must reap the
  containers itself — children it never forked.
* waitpid(-1) and Popen.wait() cannot share children: whichever asks first takes the status and
  the other gets ECHILD (Popen then silently reports 0). So one thread waits for every child
  (``os.waitpid(-1, 0)``) and hands the statuses out by pid, and every child process is started
  through ``spawn``/``run`` here, whose ``Child`` objects (Popen subclasses) ask the reaper
  instead of calling waitpid.

A status may arrive before anyone asked for it: a container can exit while ``runc run`` is still
returning, before its pid is known. Such statuses are kept for ``UNCLAIMED_TTL_S`` seconds and
handed to the first ``watch`` of that pid. ``spawn`` forks and registers the new pid under the
lock the reaper takes to hand out a status, so a kept status of an earlier process with the same
pid is dropped there and never given to the new one.

The reaper runs while someone holds it (``acquire``/``release``; the runtime holds it from start
to close). While it runs nothing else in the process may wait for children; when the last holder
releases it, the thread stops and the process's subreaper flag is put back as it was, so a test
process is left as it was found.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
UNCLAIMED_TTL_S = 60.0
IDLE_WAIT_S = 2.0  # with no children, look again this often (or at once when one is spawned)

ExitCallback = Callable[[int, int], None]  # (pid, returncode: exit code, or -N for signal N)

_libc = ctypes.CDLL(None, use_errno=True)


def _subreaper() -> bool:
    flag = ctypes.c_int(0)
    _libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
    return bool(flag.value)


def _set_subreaper(on: bool) -> None:
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        log.warning("cannot set the child subreaper flag: %s", os.strerror(err))


class Child(subprocess.Popen[bytes]):
    """A Popen whose exit status comes from the reaper: ``wait``, ``poll`` and
    ``communicate`` work as usual and never call waitpid themselves."""

    def __init__(self, args: Sequence[str], **kwargs: Any) -> None:
        self._exited = threading.Event()
        super().__init__(args, **kwargs)

    def _reaped(self, returncode: int) -> None:
        self.returncode = returncode
        self._exited.set()

    def _internal_poll(self, _deadstate: object = None, **_ignored: object) -> int | None:
        return self.returncode

    def _wait(self, timeout: float | None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode


@dataclass(frozen=True)
class Completed:
    args: Sequence[str]
    returncode: int
    stdout: bytes
    stderr: bytes


class Reaper:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running thread's own stop flag
        self._was_subreaper = False
        self._wake = threading.Event()
        self._watchers: dict[int, ExitCallback] = {}
        self._unclaimed: dict[int, tuple[int, float]] = {}

    # ------------------------------------------------------------------ running

    def acquire(self) -> None:
        """Start reaping (if not yet) and make the process a child subreaper."""
        with self._lock:
            self._holders += 1
            if self._holders > 1:
                return
            self._was_subreaper = _subreaper()
            _set_subreaper(True)
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._loop, args=(self._stop,), name="cnm-reaper", daemon=True
            )
            self._thread.start()

    def release(self) -> None:
        """Stop reaping when the last holder releases it."""
        with self._lock:
            self._holders -= 1
            if self._holders > 0:
                return
            self._stop.set()
            thread, self._thread = self._thread, None
            self._wake.set()
            # The thread may sit in waitpid(-1): a child that exits at once wakes it.
            waker = subprocess.Popen(["true"])
        if thread is not None:
            thread.join(timeout=5)
        waker.wait()  # the thread may have stopped before reaping it (then ECHILD reads as 0)
        if not self._was_subreaper:
            _set_subreaper(False)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                self._wake.wait(IDLE_WAIT_S)
                continue
            self._collected(pid, os.waitstatus_to_exitcode(status))

    def _collected(self, pid: int, returncode: int) -> None:
        now = time.monotonic()
        with self._lock:
            callback = self._watchers.pop(pid, None)
            if callback is None:
                self._unclaimed[pid] = (returncode, now)
                for old, (_, when) in list(self._unclaimed.items()):
                    if now - when > UNCLAIMED_TTL_S:
                        del self._unclaimed[old]
                return
        try:
            callback(pid, returncode)
        except Exception:
            log.exception("exit callback of pid %d failed", pid)

    # ------------------------------------------------------------------ watching

    def watch(self, pid: int, callback: ExitCallback) -> None:
        """Call ``callback(pid, returncode)`` when child ``pid`` is reaped: from the reaper
        thread, or at once from this one if it was reaped already. Callbacks must be quick
        and must not wait for other children (the reaper thread runs them)."""
        with self._lock:
            kept = self._unclaimed.pop(pid, None)
            if kept is None:
                self._watchers[pid] = callback
                return
        callback(pid, kept[0])

    def unwatch(self, pid: int) -> None:
        with self._lock:
            self._watchers.pop(pid, None)

    def take(self, pid: int) -> int | None:
        """The status of ``pid`` if it was reaped and nobody claimed it."""
        with self._lock:
            kept = self._unclaimed.pop(pid, None)
        return None if kept is None else kept[0]

    # ------------------------------------------------------------------ starting children

    def spawn(
        self, args: Sequence[str], *, on_exit: ExitCallback | None = None, **popen: Any
    ) -> Child:
        """Start a child (``popen`` are Popen's keyword arguments; close_fds stays on)."""
        with self._lock:
            if self._thread is None:
                raise RuntimeError("the reaper is not running")
            child = Child(args, **popen)
            self._unclaimed.pop(child.pid, None)  # an earlier process's, never this one's

            def reaped(pid: int, returncode: int) -> None:
                try:  # first, so that whoever waits on the child sees what on_exit records
                    if on_exit is not None:
                        on_exit(pid, returncode)
                finally:
                    child._reaped(returncode)

            self._watchers[child.pid] = reaped
        self._wake.set()
        return child

    def run(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        **popen: Any,
    ) -> Completed:
        """Run a child to its end; stdout and stderr are captured unless redirected."""
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        if input is not None:
            popen["stdin"] = subprocess.PIPE
        child = self.spawn(args, **popen)
        try:
            out, err = child.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise
        assert child.returncode is not None
        return Completed(args, child.returncode, out or b"", err or b"")


REAPER = Reaper()  # the process has one set of children, so it has one reaper
