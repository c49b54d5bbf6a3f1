"""Noticing that a container's first process ended, and with which exit code.

Every child of the daemon is reaped by ``reaper.REAPER``: a container's init, reparented to us
once ``runc run -d`` returns (the daemon is a child subreaper), reports its status there, and
so does a host container's process, which is our child from the start. A container left running
by an earlier daemon is not our child: it is watched with a pidfd and its exit code read from
its zombie (``pidwatch``), or UNKNOWN_EXIT_CODE (137, as for SIGKILL) when the zombie is gone
(reaped by an init that reaps).

Each running container's pidfd is also how signals reach it: a pidfd names one process for
good, where a pid may be reused once the process is reaped.

The handler (the runtime's teardown) runs in a thread of its own, never in the reaper's or the
pidfd watcher's: teardown runs ``runc delete``, a child of its own, whose exit the reaper thread
must be free to collect. After ``close`` no exit is reported: a daemon that is leaving does not
tear running containers down (live restore).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from cnm.osl.reaper import REAPER, ExitCallback
from cnm.runtime import pidwatch
from cnm.runtime.process import exit_code

log = logging.getLogger(__name__)

UNKNOWN_EXIT_CODE = 137

ExitHandler = Callable[[str, int, int], None]  # (container id, pid, exit code)


@dataclass
class _Watched:
    pid: int
    started: int  # /proc start time: tells this process from a later one with its pid
    pidfd: int | None  # None: it ended before it could be opened


def lost_exit_code(pid: int, started: int) -> int:
    """The exit code of a process that is not (or no longer) watched by the reaper: from its
    zombie, or from the reaper if it was our child and is reaped already."""
    for attempt in range(2):
        code = pidwatch.exit_code(pid, started)
        if code is not None:
            return code
        returncode = REAPER.take(pid)
        if returncode is not None:
            return exit_code(returncode)
        if attempt == 0:
            time.sleep(0.02)  # the reaper may be between waitpid and filing the status
    return UNKNOWN_EXIT_CODE


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


class ExitWatcher:
    """The running containers' first processes: their pidfds and their exits."""

    def __init__(self, handler: ExitHandler) -> None:
        self._handler = handler
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}
        self._pidfds = pidwatch.PidWatcher()
        self._closed = False

    # ------------------------------------------------------------------ our children

    def pin(self, container_id: str, pid: int) -> int:
        """Hold a just-started process by a pidfd (none if it ended already: the reaper has
        its status), for signals and for ``close``; its start time."""
        started = pidwatch.start_time(pid)
        with self._lock:
            self._watched[container_id] = _Watched(pid, started, _pidfd_open(pid))
        return started

    def on_reaped(self, container_id: str) -> ExitCallback:
        """The reaper's callback for a container's process we spawned ourselves."""

        def reaped(pid: int, returncode: int) -> None:
            self._report(container_id, pid, lambda: exit_code(returncode))

        return reaped

    def watch_child(self, container_id: str, pid: int) -> None:
        """Learn from the reaper when a container's init (reparented to us) ends."""
        REAPER.watch(pid, self.on_reaped(container_id))

    # ------------------------------------------------------------------ an earlier daemon's

    def adopt(self, container_id: str, pid: int, started: int) -> bool:
        """Hold a process an earlier daemon started, if it still runs; ``watch_adopted``
        then reports its exit."""
        if not pidwatch.alive(pid, started):
            return False
        pidfd = _pidfd_open(pid)
        if pidfd is None:
            return False
        if not pidwatch.alive(pid, started):  # the pidfd names another process, of a reused pid
            os.close(pidfd)
            return False
        with self._lock:
            self._watched[container_id] = _Watched(pid, started, pidfd)
        return True

    def watch_adopted(self, container_id: str) -> None:
        with self._lock:
            watched = self._watched[container_id]
        assert watched.pidfd is not None
        pid, started = watched.pid, watched.started
        self._pidfds.watch(
            watched.pidfd,
            lambda: self._report(container_id, pid, lambda: lost_exit_code(pid, started)),
        )

    # ------------------------------------------------------------------ while it runs, and after

    def signal(self, container_id: str, signum: int) -> None:
        with self._lock:
            watched = self._watched.get(container_id)
        if watched is not None and watched.pidfd is not None:
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(watched.pidfd, signum)

    def release(self, container_id: str) -> None:
        """The process ended (or never started): let go of its pidfd."""
        with self._lock:
            watched = self._watched.pop(container_id, None)
        if watched is not None and watched.pidfd is not None:
            self._pidfds.unwatch(watched.pidfd)
            os.close(watched.pidfd)

    def close(self) -> None:
        """Stop watching; the processes keep running."""
        with self._lock:
            self._closed = True
            watched, self._watched = self._watched, {}
        for entry in watched.values():
            REAPER.unwatch(entry.pid)
        self._pidfds.close()
        for entry in watched.values():
            if entry.pidfd is not None:
                os.close(entry.pidfd)

    def _report(self, container_id: str, pid: int, code: Callable[[], int]) -> None:
        """From the reaper's or the pidfd watcher's thread: the handler runs in one of its own
        (``code`` too, as reading a lost exit code may wait a moment)."""

        def run() -> None:
            if not self._closed:
                try:
                    self._handler(container_id, pid, code())
                except Exception:
                    log.exception("handling the exit of container %s", container_id[:12])

        threading.Thread(target=run, name=f"cnm-exit-{container_id[:12]}", daemon=True).start()
