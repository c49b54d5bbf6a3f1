"""Exec sessions: a command run in a running container, from create to exit.

An ``ExecSession`` owns everything about one exec, the way a resolution owns its own state in
dnspython's resolver: what was asked (command, environment, terminal and its first size), where
it is (created, running, exited), its process and its exit code, and while it runs a copy of its
terminal's master for resize. Nothing outside changes it; the runtime finds the container and
the command line (``runc exec``, or ``nsenter`` for a host container) and asks the session to
start, resize or describe itself (``ExecInfo``).

A started session hands its client an ``ExecProcess``: the process's stdin, stdout and stderr
as byte streams, and its exit code. With a terminal, stdin and stdout are both the master side
of a pseudo-terminal in a session of its own (``setsid --ctty``: ``runc exec --tty`` needs a
controlling terminal, and gives the container's terminal the size of this one, at start and on
SIGWINCH), and there is no stderr (the terminal merges the streams). The process is the
reaper's child, so its exit is recorded by the session before anyone waiting on it wakes.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
from collections.abc import Callable
from typing import IO

from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.osl.reaper import REAPER, Child
from cnm.runtime import console
from cnm.runtime.model import ExecInfo
from cnm.runtime.process import ExecRequest, ProcessCommand, exit_code


class ExecProcess:
    """A started exec's process as its client sees it: byte streams and the exit code."""

    def __init__(
        self,
        session: ExecSession,
        child: Child,
        stdin: IO[bytes],
        stdout: IO[bytes],
        stderr: IO[bytes] | None,
    ) -> None:
        self._session = session
        self._child = child  # kept while the streams are in use
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr  # None with a terminal

    @property
    def pid(self) -> int:
        return self._child.pid

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (128+N for signal N) once the process has ended and the session
        recorded it; TimeoutError after ``timeout`` seconds."""
        return self._session.wait(timeout)


class ExecSession:
    def __init__(
        self,
        exec_id: str,
        container_id: str,
        request: ExecRequest,
        open_stdin: bool = False,
        console_size: tuple[int, int] = (0, 0),
    ) -> None:
        if not request.cmd:
            raise InvalidParameter("No exec command specified")
        console.check_size(*console_size)
        self.id = exec_id
        self.container_id = container_id
        self.request = request
        self.open_stdin = open_stdin
        self._console_size = console_size  # the terminal's rows and columns at start
        self._lock = threading.Lock()
        self._exited = threading.Event()
        self._started = False
        self._running = False
        self._exit_code: int | None = None
        self._pid = 0
        self._console = -1  # a copy of the terminal's master while it runs, for resize
        self.on_ended: Callable[[int], None] | None = None  # told the exit code, once

    def start(self, command: ProcessCommand) -> ExecProcess:
        """Start the process (once): ``command`` runs ``request`` inside the container."""
        with self._lock:
            if self._started:
                raise Conflict(f"Exec {self.id} has already been started")
            self._started = True
            self._running = True
        try:
            if self.request.tty:
                process = self._spawn_on_terminal(command)
                with self._lock:
                    if self._running:
                        self._console = os.dup(process.stdout.fileno())
            else:
                child = REAPER.spawn(
                    command.args,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=command.env,
                    on_exit=self._ended,
                )
                assert child.stdin is not None and child.stdout is not None
                process = ExecProcess(self, child, child.stdin, child.stdout, child.stderr)
        except OSError as err:
            with self._lock:
                self._running = False
            raise CnmError(f"cannot start exec {self.id}: {err}") from err
        with self._lock:
            self._pid = process.pid
        return process

    def _spawn_on_terminal(self, command: ProcessCommand) -> ExecProcess:
        master, slave = os.openpty()
        try:
            console.set_size(master, *self._console_size)
            child = REAPER.spawn(
                ["setsid", "--wait", "--ctty", *command.args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=command.env,
                on_exit=self._ended,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        stdin = open(master, "wb", buffering=0)  # noqa: SIM115 - the client's to close
        stdout = open(os.dup(master), "rb", buffering=0)  # noqa: SIM115
        return ExecProcess(self, child, stdin, stdout, None)

    def _ended(self, pid: int, returncode: int) -> None:
        """From the reaper thread, before anyone waiting on the process wakes."""
        with self._lock:
            self._exit_code = exit_code(returncode)
            self._running = False
            if self._console >= 0:
                os.close(self._console)
                self._console = -1
        self._exited.set()
        if self.on_ended is not None:
            self.on_ended(exit_code(returncode))

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise TimeoutError(f"exec {self.id} did not end in {timeout} s")
        assert self._exit_code is not None
        return self._exit_code

    def resize(self, height: int, width: int) -> None:
        """Set the size of the terminal (nothing to do without one, or once it ended)."""
        console.check_size(height, width)
        with self._lock:
            if self._console >= 0:
                console.set_size(self._console, height, width)

    def info(self) -> ExecInfo:
        with self._lock:
            return ExecInfo(
                id=self.id,
                container_id=self.container_id,
                cmd=list(self.request.cmd),
                tty=self.request.tty,
                open_stdin=self.open_stdin,
                running=self._running,
                exit_code=None if self._running or not self._started else self._exit_code,
                pid=self._pid,
            )


class ExecSessions:
    """Every container's exec sessions, by id, until the container is removed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, ExecSession] = {}

    def create(
        self,
        container_id: str,
        request: ExecRequest,
        open_stdin: bool = False,
        console_size: tuple[int, int] = (0, 0),
    ) -> ExecSession:
        session = ExecSession(
            secrets.token_hex(32), container_id, request, open_stdin, console_size
        )
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, exec_id: str) -> ExecSession:
        with self._lock:
            session = self._sessions.get(exec_id)
        if session is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return session

    def forget_container(self, container_id: str) -> None:
        with self._lock:
            for exec_id in [
                s.id for s in self._sessions.values() if s.container_id == container_id
            ]:
                del self._sessions[exec_id]
