"""runc, invoked: ``run -d``, ``exec``, ``delete``, and what its failures mean to Docker.

Every call goes through the reaper (``reaper.REAPER``), which owns the daemon's children, with
``--root <exec root>/runc`` so that runc's state of cnm's containers is cnm's alone. ``run``
logs as JSON lines (``--log-format json``) to a file in the bundle: the last error there is the
reason a start failed, and Docker's clients expect it in Docker's words, with Docker's error
class (a command that cannot be found or run is the user's mistake, 400) and the exit code a
shell would give (127 not found, 126 not runnable, 128 otherwise). A host container's init
(``hostinit``) reports its failures in the same words, so the same rules apply to it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import IO, Any

from cnm.errors import CnmError, InvalidParameter
from cnm.osl.reaper import REAPER

log = logging.getLogger(__name__)

RUNC_TIMEOUT_S = 30.0
LOG_NAME = "runc.log"
PID_FILE = "init.pid"

_NOT_FOUND = ("executable file not found", "no such file or directory")
_NOT_RUNNABLE = ("permission denied",)


class Runc:
    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root

    def _command(self) -> list[str]:
        if shutil.which(self.binary) is None:
            raise CnmError(
                f"the container runtime {self.binary!r} is not installed: install Debian's runc "
                "package (scripts/setup.sh does)"
            )
        return [self.binary, "--root", str(self.root)]

    def run(
        self,
        container_id: str,
        bundle_dir: Path,
        *,
        stdin: int,
        stdout: int | IO[bytes],
        stderr: int | IO[bytes],
        console_socket: str | None = None,
    ) -> int:
        """``runc run -d``: start the bundle's process and return its pid. ``console_socket``
        is the name, in the bundle directory, of the socket runc sends a terminal to. On
        failure, what runc left is deleted and Docker's start error raised."""
        pid_file = bundle_dir / PID_FILE
        runc_log = bundle_dir / LOG_NAME
        pid_file.unlink(missing_ok=True)
        runc_log.unlink(missing_ok=True)
        done = REAPER.run(
            [
                *self._command(),
                "--log",
                str(runc_log),
                "--log-format",
                "json",
                "run",
                "-d",
                *(["--console-socket", console_socket] if console_socket else []),
                "--bundle",
                str(bundle_dir),
                "--pid-file",
                str(pid_file),
                container_id,
            ],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=bundle_dir,  # where runc finds the console socket by its short name
            timeout=RUNC_TIMEOUT_S,
        )
        if done.returncode != 0:
            self.delete(container_id)
            raise start_error(read_error(runc_log) or f"runc exited with {done.returncode}")
        return int(pid_file.read_text())

    def exec_args(
        self,
        container_id: str,
        process: Path,
        log: Path | None = None,
        console_dir: Path | None = None,
    ) -> list[str]:
        """The command line of ``runc exec`` of the OCI process in the file ``process``,
        logging runc's own errors to ``log``. With ``console_dir`` (the process has a
        terminal) it detaches, sends the terminal's master over ``console.sock`` there and
        writes the process's pid to ``exec.pid`` there (runc needs the socket's path
        absolute for an exec)."""
        args = [*self._command()]
        if log is not None:
            args += ["--log", str(log), "--log-format", "json"]
        args += ["exec", "--process", str(process)]
        if console_dir is not None:
            args += ["--detach", "--console-socket", str(console_dir / "console.sock")]
            args += ["--pid-file", str(console_dir / "exec.pid")]
        return [*args, container_id]

    def delete(self, container_id: str) -> None:
        """``runc delete --force``: the container's processes are killed, its state removed."""
        done = REAPER.run(
            [*self._command(), "delete", "--force", container_id], timeout=RUNC_TIMEOUT_S
        )
        if done.returncode != 0:
            log.warning("runc delete %s: %s", container_id[:12], done.stderr.decode().strip())

    def _simple(self, *args: str, stdin: bytes | None = None) -> str:
        """A runc command that answers at once; its stdout, or Docker's error."""
        done = REAPER.run([*self._command(), *args], input=stdin, timeout=RUNC_TIMEOUT_S)
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise CnmError(f"runc {args[0]}: {message[-1] if message else done.returncode}")
        return done.stdout.decode(errors="replace")

    def pause(self, container_id: str) -> None:
        """Freeze every process of the container (the cgroup freezer)."""
        self._simple("pause", container_id)

    def resume(self, container_id: str) -> None:
        self._simple("resume", container_id)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """Apply new limits to a running container (``runc update -r -``: OCI resources)."""
        self._simple(
            "update", "--resources", "-", container_id, stdin=json.dumps(resources).encode()
        )

    def pids(self, container_id: str) -> list[int]:
        """Every process of the container, as pids of the daemon's namespace."""
        found = json.loads(self._simple("ps", "--format", "json", container_id) or "[]")
        return [int(pid) for pid in found or []]

    def cgroup_paths(self, container_id: str) -> dict[str, str]:
        """The container's cgroup directories by controller ("" for the v2 hierarchy), from
        runc's own state."""
        try:
            state = json.loads((self.root / container_id / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        paths = state.get("cgroup_paths") or {}
        return {str(k): str(v) for k, v in paths.items()}

    def exists(self, container_id: str) -> bool:
        return (self.root / container_id).exists()

    def containers(self) -> list[str]:
        """The ids of every container runc has state of."""
        return [path.name for path in self.root.iterdir()]


def read_error(log_path: Path) -> str:
    """The last error runc logged (its --log-format json lines)."""
    message = ""
    try:
        lines = log_path.read_text().splitlines()
    except FileNotFoundError:
        return ""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal"):
            message = str(entry.get("msg", ""))
    return message


def exec_failure(log_path: Path | None) -> str:
    """Why ``runc exec`` could not start its command, if it could not (and the log's gone)."""
    if log_path is None:
        return ""
    message = read_error(log_path)
    log_path.unlink(missing_ok=True)
    return message


def start_exit_code(message: str) -> int:
    """Docker's exit codes for a failed start: 127 no such command, 126 cannot run it."""
    if any(reason in message for reason in _NOT_FOUND):
        return 127
    if any(reason in message for reason in _NOT_RUNNABLE):
        return 126
    return 128


def start_error(message: str) -> CnmError:
    """Docker's classes: a command that cannot be found or run is the user's error (400)."""
    text = f"failed to create task for container: OCI runtime create failed: {message}: unknown"
    if any(reason in message for reason in (*_NOT_FOUND, *_NOT_RUNNABLE)):
        return InvalidParameter(text)
    return CnmError(text)
