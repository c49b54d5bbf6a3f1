"""Exit notices for processes that are not our children, and what /proc says about a pid.

After a daemon restart the containers it left running are no longer its children: the old
daemon's death reparented them to PID 1, so the new daemon cannot wait for them. A pidfd
(pidfd_open(2), Linux 5.3) polls readable once its process has exited, parent or not, so one
thread polls them all.

The exit code of such a process is normally lost to whoever reaps it. On this machine PID 1
never reaps, so the process stays a zombie, and a zombie's /proc/<pid>/stat still carries its
wait status (field 52, Linux 3.5); ``exit_code`` reads it there, checking the start time (field
22) so a reused pid is never mistaken for the container's.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, Z, ...
    ppid: int
    start_time: int  # clock ticks after boot: with the pid, names one process for good
    exit_status: int  # a zombie's wait status (waitpid format); 0 while it runs


def proc_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    # fields[0] is field 3 of proc(5): state; 4 ppid; 22 starttime; 52 exit_code
    exit_status = int(fields[49]) if len(fields) > 49 else 0
    return ProcStat(fields[0], int(fields[1]), int(fields[19]), exit_status)


def start_time(pid: int) -> int:
    stat = proc_stat(pid)
    return stat.start_time if stat else 0


def alive(pid: int, started: int) -> bool:
    """``pid`` is still the process that started at ``started`` and has not exited."""
    stat = proc_stat(pid)
    return stat is not None and stat.start_time == started and stat.state not in ("Z", "X")


def exit_code(pid: int, started: int) -> int | None:
    """The exit code (128+N for signal N) of an exited, unreaped process, if it is the one
    that started at ``started``; None if it is gone or is someone else."""
    stat = proc_stat(pid)
    if stat is None or stat.start_time != started or stat.state not in ("Z", "X"):
        return None
    code = os.waitstatus_to_exitcode(stat.exit_status)
    return 128 - code if code < 0 else code


class PidWatcher:
    """Calls ``callback()`` once the process of a watched pidfd has exited."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoll = select.epoll()  # unlike poll, safe to change from other threads
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, pidfd: int, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks[pidfd] = callback
            self._epoll.register(pidfd, select.EPOLLIN)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cnm-pidfd", daemon=True)
                self._thread.start()

    def unwatch(self, pidfd: int) -> None:
        with self._lock:
            if self._callbacks.pop(pidfd, None) is not None:
                self._epoll.unregister(pidfd)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for fd in self._callbacks:
                self._epoll.unregister(fd)
            self._callbacks.clear()
            thread = self._thread
        os.write(self._wake_w, b"w")
        if thread is not None:
            thread.join(timeout=5)
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _loop(self) -> None:
        while True:
            events = self._epoll.poll()
            fired: list[Callable[[], None]] = []
            with self._lock:
                if self._closed:
                    return
                for fd, _ in events:
                    if fd == self._wake_r:
                        os.read(self._wake_r, 512)
                        continue
                    callback = self._callbacks.pop(fd, None)
                    if callback is not None:
                        self._epoll.unregister(fd)
                        fired.append(callback)
            for callback in fired:
                try:
                    callback()
                except Exception:
                    log.exception("pidfd exit callback failed")
