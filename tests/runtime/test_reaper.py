"""The reaper: exit statuses by pid for children it spawned and for orphans it inherited as a
subreaper (also when the status arrives before anyone asks), Popen methods that never call
waitpid themselves, and pidfd exit notices with the exit code read from a zombie."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from cnm.osl.reaper import REAPER, _subreaper
from cnm.runtime import pidwatch


@pytest.fixture
def reaper() -> object:
    REAPER.acquire()
    yield REAPER
    REAPER.release()


def test_spawn_and_run_report_exit_codes_and_signals(reaper: object) -> None:
    child = REAPER.spawn(["sh", "-c", "exit 3"])
    assert child.wait(timeout=10) == 3 and child.poll() == 3
    killed = REAPER.spawn(["sleep", "100"])
    assert killed.poll() is None
    killed.kill()
    assert killed.wait(timeout=10) == -9
    done = REAPER.run(["sh", "-c", "cat; echo err >&2"], input=b"in\n", timeout=10)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"in\n", b"err\n")
    with pytest.raises(subprocess.TimeoutExpired):
        REAPER.run(["sleep", "100"], timeout=0.1)


def test_orphans_are_reaped_and_early_statuses_kept(reaper: object) -> None:
    assert _subreaper()
    # The grandchild outlives its parent, is reparented to us and exits unwatched.
    done = REAPER.run(["sh", "-c", "(sleep 0.2; exit 4) & echo $!"], timeout=10)
    orphan = int(done.stdout)
    got = threading.Event()
    codes: list[int] = []

    def on_exit(pid: int, code: int) -> None:
        codes.append(code)
        got.set()

    REAPER.watch(orphan, on_exit)  # at once if it was reaped already, else when it is
    assert got.wait(10)
    assert codes == [4]


def test_exit_callback_runs_before_waiters_wake(reaper: object) -> None:
    seen: list[int] = []
    child = REAPER.spawn(["true"], on_exit=lambda pid, code: seen.append(pid))
    child.wait(timeout=10)
    assert seen == [child.pid]


def test_release_restores_the_subreaper_flag() -> None:
    assert not REAPER.running and not _subreaper()
    REAPER.acquire()
    assert REAPER.running and _subreaper()
    REAPER.release()
    assert not REAPER.running and not _subreaper()


def test_pidfd_watch_and_zombie_exit_code() -> None:
    assert not REAPER.running  # a plain Popen child stays unreaped until we wait for it
    process = subprocess.Popen(["sh", "-c", "read line; exit 6"], stdin=subprocess.PIPE)
    started = pidwatch.start_time(process.pid)
    assert pidwatch.alive(process.pid, started)
    watcher = pidwatch.PidWatcher()
    pidfd = os.pidfd_open(process.pid)
    exited = threading.Event()
    watcher.watch(pidfd, exited.set)
    assert not exited.wait(0.1)
    assert process.stdin is not None
    process.stdin.write(b"go\n")
    process.stdin.close()
    assert exited.wait(10)
    assert not pidwatch.alive(process.pid, started)
    assert pidwatch.exit_code(process.pid, started) == 6
    assert pidwatch.exit_code(process.pid, started + 1) is None  # someone else's pid
    watcher.close()
    os.close(pidfd)
    assert process.wait() == 6
