"""What a container's processes have in common, whichever way they run.

A container's first process runs under runc from an OCI bundle (``imagecontainers``) or, for
the reserved image ``cnm/host``, on the host's filesystem through hostinit
(``hostcontainers``). Both kinds answer the same questions the runtime asks after a start
(``ContainerProcesses``): how to run an exec command inside, how to reach every process of the
container with a signal, and what to clean up once the first process has ended. Their
environment follows one rule (``process_env``) and their exit codes one convention
(``exit_code``).
"""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cnm.errors import InvalidParameter
from cnm.runtime.model import Container, ContainerConfig

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ProcessCommand:
    """A command line to start, and its environment (None: the daemon's own). A start that
    failed before the command ran leaves an error in ``failure_log`` (runc's JSON log)."""

    args: list[str]
    env: dict[str, str] | None = None
    failure_log: Path | None = None
    console_dir: Path | None = None  # with a terminal: the command sends it over a socket here
    files: tuple[Path, ...] = ()  # to remove once the command has started and ended


@dataclass(frozen=True)
class ExecRequest:
    """What an exec asks to run inside a container."""

    cmd: list[str]
    env: list[str]
    workdir: str
    tty: bool
    user: str = ""  # as given; "" is the container's user
    privileged: bool = False
    detach_keys: str = ""
    console_size: tuple[int, int] = (0, 0)  # the terminal's rows and columns at start


class ContainerProcesses(Protocol):
    """One kind of container process, once started."""

    def exec_command(self, container: Container, request: ExecRequest) -> ProcessCommand:
        """The command line that runs ``request`` inside the running ``container``."""
        ...

    def signal_all(self, container: Container, signum: int) -> None:
        """``signum`` to every process of the container beyond the first."""
        ...

    def end(self, container: Container) -> None:
        """Clean up after the first process ended: nothing of the run may stay."""
        ...


def exit_code(returncode: int) -> int:
    """Popen's -N for signal N becomes the shell's (and Docker's) 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def parse_signal(value: str | int) -> signal.Signals:
    """A signal as Docker's API names it: ``SIGTERM``, ``TERM`` or ``15``."""
    text = str(value).strip().upper()
    try:
        if text.isascii() and text.isdigit():
            return signal.Signals(int(text))
        return signal.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except (KeyError, ValueError):
        raise InvalidParameter(f"Invalid signal: {value}") from None


def kill_group(pgid: int, signum: int = signal.SIGKILL) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def merge_env(base: list[str], override: list[str]) -> list[str]:
    """``NAME=value`` entries of ``base``, each replaced by the one of ``override`` with its
    name, then ``override``'s new names."""
    merged = {entry.partition("=")[0]: entry for entry in base}
    merged.update({entry.partition("=")[0]: entry for entry in override})
    return list(merged.values())


def process_env(config: ContainerConfig, hostname: str, home: str = "/root") -> list[str]:
    """The container's environment with Docker's additions: PATH, HOSTNAME, HOME (the user's
    home from the container's /etc/passwd), and TERM with a terminal, each unless the container
    sets it."""
    env = list(config.env)
    keys = {entry.partition("=")[0] for entry in env}
    if "PATH" not in keys:
        env.insert(0, DEFAULT_PATH)
    if "HOSTNAME" not in keys:
        env.append(f"HOSTNAME={hostname}")
    if "HOME" not in keys:
        env.append(f"HOME={home}")
    if config.tty and "TERM" not in keys:
        env.append("TERM=xterm")  # as Docker
    return env


def env_dict(env: list[str]) -> dict[str, str]:
    return {name: value for name, _, value in (entry.partition("=") for entry in env)}
