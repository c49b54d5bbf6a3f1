"""An exec session's life on its own, with host commands through the reaper (no container):
created, running, exited; its streams and exit code; one start only; a failed start; its
terminal and resize; the table of sessions."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.osl.reaper import REAPER
from cnm.runtime.execs import ExecSession, ExecSessions
from cnm.runtime.process import ExecRequest, ProcessCommand
from tests.support.runtime import communicate


@pytest.fixture(autouse=True)
def reaper() -> Iterator[None]:
    REAPER.acquire()
    yield
    REAPER.release()


def _session(*cmd: str, tty: bool = False, size: tuple[int, int] = (0, 0)) -> ExecSession:
    return ExecSession("x" * 64, "c" * 64, ExecRequest(list(cmd), [], "", tty), True, size)


def _command(session: ExecSession) -> ProcessCommand:
    return ProcessCommand(list(session.request.cmd))


def test_a_session_goes_from_created_to_running_to_exited() -> None:
    session = _session("sh", "-c", "read x; echo got $x; echo oops >&2; exit 3")
    created = session.info()
    assert (created.running, created.exit_code, created.pid) == (False, None, 0)

    process = session.start(_command(session))
    running = session.info()
    assert running.running and running.exit_code is None and running.pid == process.pid
    process.stdin.write(b"input\n")
    process.stdin.flush()
    assert communicate(process, timeout=10) == (b"got input\n", b"oops\n")
    assert process.wait(10) == 3
    ended = session.info()
    assert (ended.running, ended.exit_code, ended.pid) == (False, 3, process.pid)
    assert (ended.cmd, ended.tty, ended.open_stdin) == (list(session.request.cmd), False, True)

    with pytest.raises(Conflict, match="has already been started"):
        session.start(_command(session))


def test_a_signal_ends_it_with_128_plus_the_signal() -> None:
    session = _session("sleep", "100")
    process = session.start(_command(session))
    with pytest.raises(TimeoutError):
        process.wait(0.05)
    os.kill(process.pid, signal.SIGKILL)  # the process this test started
    assert process.wait(10) == 137
    assert session.info().exit_code == 137


def test_a_failed_start_leaves_no_exit_code_and_cannot_be_retried() -> None:
    session = _session("/nonexistent/command")
    with pytest.raises(CnmError, match="cannot start exec"):
        session.start(_command(session))
    info = session.info()
    assert (info.running, info.exit_code, info.pid) == (False, None, 0)
    with pytest.raises(Conflict):
        session.start(_command(session))


def test_a_terminal_has_its_size_at_start_and_follows_a_resize() -> None:
    session = _session("sh", "-c", "stty size; read x; stty size", tty=True, size=(20, 60))
    process = session.start(_command(session))
    assert process.stderr is None  # the terminal merges the streams
    seen = b""
    while b"20 60" not in seen:
        seen += os.read(process.stdout.fileno(), 4096)
    session.resize(25, 90)
    process.stdin.write(b"\n")
    while b"25 90" not in seen:
        seen += os.read(process.stdout.fileno(), 4096)
    assert process.wait(10) == 0
    process.stdin.close()
    process.stdout.close()
    session.resize(1, 1)  # ended: nothing to do
    with pytest.raises(InvalidParameter, match="invalid terminal size"):
        session.resize(-1, 80)


def test_bad_requests_are_refused_at_create() -> None:
    with pytest.raises(InvalidParameter, match="No exec command specified"):
        _session()
    with pytest.raises(InvalidParameter, match="invalid terminal size 70000x80"):
        _session("true", tty=True, size=(70000, 80))


def test_sessions_are_found_by_id_until_their_container_is_removed() -> None:
    sessions = ExecSessions()
    mine = sessions.create("c" * 64, ExecRequest(["true"], [], "", False))
    other = sessions.create("d" * 64, ExecRequest(["true"], [], "", False))
    assert sessions.get(mine.id) is mine and mine.id != other.id
    sessions.forget_container("c" * 64)
    with pytest.raises(NotFound, match="No such exec instance"):
        sessions.get(mine.id)
    assert sessions.get(other.id) is other
