"""Exec sessions: a command run in a running container, from create to exit.

An ``ExecSession`` owns everything about one exec, the way a resolution owns its own state in
dnspython's resolver: what was asked (command, environment, terminal and its first size), where
it is (created, running, exited), its process and its exit code, and while it runs a copy of its
terminal's master for resize. Nothing outside changes it; the runtime finds the container and
the command line (``runc exec``, or ``nsenter`` for a host container) and asks the session to
start, resize or describe itself (``ExecInfo``).

A started session hands its client an ``ExecProcess``: the process's stdin, stdout and stderr
as byte streams, and its exit code. With a terminal, stdin and stdout are both the master side
of the terminal and there is no stderr (the terminal merges the streams). In an image's
container that terminal is the one runc makes inside the container (``runc exec --detach
--tty`` sends its master over a console socket, as for a container's own terminal; the process,
orphaned when runc leaves, comes back to the daemon, a subreaper). Docker does the same: one
terminal, so a newline reaches the client as CR LF once (a second terminal of the daemon's
between, converting too, would make it CR CR LF while runc had not yet set that one raw). A
host container's exec gets a pseudo-terminal of the daemon's in a session of its own
(``setsid --ctty``). Either way the reaper reports the process's exit to the session before
anyone waiting on it wakes. A command runc cannot start (no such file, no such user) exits 126,
Docker's code.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.osl.reaper import REAPER, Child
from cnm.runtime import console
from cnm.runtime.model import ExecInfo
from cnm.runtime.process import ExecRequest, ProcessCommand, exit_code
from cnm.runtime.runc import RUNC_TIMEOUT_S, exec_failure


class ExecProcess:
    """A started exec's process as its client sees it: byte streams and the exit code."""

    def __init__(
        self,
        session: ExecSession,
        child: Child | None,
        stdin: IO[bytes],
        stdout: IO[bytes],
        stderr: IO[bytes] | None,
        pid: int = 0,
    ) -> None:
        self._session = session
        self._child = child  # kept while the streams are in use; None: not our direct child
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr  # None with a terminal
        self._pid = pid

    @property
    def pid(self) -> int:
        return self._child.pid if self._child is not None else self._pid

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
        self._failure_log: Path | None = None
        self._files: tuple[Path, ...] = ()  # the command's, removed once it has ended
        self.failure = ""  # why the command could not be started, if it could not
        self.on_ended: Callable[[int], None] | None = None  # told the exit code, once

    def start(self, command: ProcessCommand) -> ExecProcess:
        """Start the process (once): ``command`` runs ``request`` inside the container."""
        with self._lock:
            if self._started:
                raise Conflict(f"Exec {self.id} has already been started")
            self._started = True
            self._running = True
            self._failure_log = command.failure_log
            self._files = command.files
        try:
            if self.request.tty:
                if command.console_dir is not None:
                    process = self._receive_terminal(command, command.console_dir)
                else:
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

    def refuse(self, message: str) -> ExecProcess:
        """The command cannot be started (Docker's exec start failure): its client reads
        ``message`` on the error stream (the output with a terminal) and the exit code 126."""
        with self._lock:
            if self._started:
                raise Conflict(f"Exec {self.id} has already been started")
            self._started = True
            self.failure = message
            self._exit_code = 126
        self._exited.set()
        if self.on_ended is not None:
            self.on_ended(126)
        text = f"{message}\r\n" if self.request.tty else f"{message}\n"
        streams = []
        for data in (b"", text.encode()):
            read_end, write_end = os.pipe()
            os.write(write_end, data)
            os.close(write_end)
            streams.append(open(read_end, "rb", buffering=0))  # noqa: SIM115 - the client's
        sink = open(os.devnull, "wb")  # noqa: SIM115 - the client's to close
        if self.request.tty:
            return ExecProcess(self, None, sink, streams[1], None)
        return ExecProcess(self, None, sink, streams[0], streams[1])

    def _receive_terminal(self, command: ProcessCommand, directory: Path) -> ExecProcess:
        """``runc exec --detach --tty``: runc makes the terminal inside the container, sends
        its master over the console socket in ``directory`` and leaves; the process, orphaned,
        comes back to the daemon (a subreaper), whose reaper reports its exit."""
        directory.mkdir(parents=True, exist_ok=True)
        try:
            with console.ConsoleSocket(directory) as console_socket:
                done = REAPER.run(
                    command.args, env=command.env, cwd=directory, timeout=RUNC_TIMEOUT_S
                )
                if done.returncode != 0:
                    message = exec_failure(command.failure_log) or done.stderr.decode().strip()
                    with self._lock:
                        self._started = False
                        self._running = False
                    return self.refuse(message or f"runc exec exited {done.returncode}")
                master = console_socket.receive()
            pid = int((directory / "exec.pid").read_text())
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            for path in (command.failure_log, *command.files):
                if path is not None:
                    path.unlink(missing_ok=True)
        REAPER.watch(pid, self._ended)
        stdin = open(master, "wb", buffering=0)  # noqa: SIM115 - the client's to close
        stdout = open(os.dup(master), "rb", buffering=0)  # noqa: SIM115
        return ExecProcess(self, None, stdin, stdout, None, pid)

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
        """From the reaper thread, before anyone waiting on the process wakes. runc exits 255
        when it could not start the command: Docker reports 126 then."""
        failure = exec_failure(self._failure_log) if returncode == 255 else ""
        for path in (self._failure_log, *self._files):
            if path is not None:
                path.unlink(missing_ok=True)
        code = 126 if failure else exit_code(returncode)
        with self._lock:
            self.failure = failure
            self._exit_code = code
            self._running = False
            if self._console >= 0:
                os.close(self._console)
                self._console = -1
        self._exited.set()
        if self.on_ended is not None:
            self.on_ended(code)

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
                user=self.request.user,
                privileged=self.request.privileged,
                detach_keys=self.request.detach_keys,
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
