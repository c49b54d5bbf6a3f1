"""Containers on the host's filesystem (image ``cnm/host``): hostinit as their first process.

``hostinit`` enters the sandbox's network namespace, gives itself mount, UTS and IPC namespaces
of its own with the sandbox's hosts/resolv.conf/hostname bound over /etc, and execs the command:
the host's files with the container's network view. It reports a failure before the exec on a
status pipe (EOF means it exec'd), in runc's words, so the start fails the way runc's would.

The process is the daemon's own child, started in a session of its own: a signal for the whole
container goes to its process group, and the group is killed when the first process has ended
(so nothing it started keeps the sandbox's namespace). An exec enters its namespaces with
``nsenter``.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path
from typing import IO

from cnm.errors import CnmError
from cnm.model import Sandbox
from cnm.osl.reaper import REAPER, ExitCallback
from cnm.runtime import console
from cnm.runtime.files import ContainerFiles
from cnm.runtime.model import Container
from cnm.runtime.process import (
    ExecRequest,
    ProcessCommand,
    env_dict,
    kill_group,
    merge_env,
    process_env,
)
from cnm.runtime.runc import RUNC_TIMEOUT_S, start_error
from cnm.transaction import Transaction


class HostContainers:
    def __init__(self, files: ContainerFiles) -> None:
        self._files = files

    def start(
        self,
        container: Container,
        sandbox: Sandbox,
        sandbox_files: dict[str, Path],
        stdio: console.ProcessStdio,
        txn: Transaction,
        on_exit: ExitCallback,
    ) -> int:
        """Run the container's process in ``sandbox``; its pid. The reaper calls ``on_exit``
        when it ends."""
        status_r, status_w = os.pipe()
        stdin: int = subprocess.DEVNULL
        slave = -1
        if container.config.tty:
            stdio.master, slave = os.openpty()
            console.set_size(slave, *container.host_config.console_size)
        elif container.config.open_stdin:
            stdin, stdio.stdin = os.pipe()
        args = [
            sys.executable,
            "-I",
            "-m",
            "cnm.runtime.hostinit",
            f"--status-fd={status_w}",
            f"--netns={sandbox.key}",
            f"--hostname={sandbox.hostname}",
            f"--domainname={sandbox.domainname}",
            f"--unmount-under={self._files.exec_root}",
            f"--cwd={container.config.working_dir or '/'}",
            *(f"--bind={source}:{inside}" for inside, source in sandbox_files.items()),
            "--",
            *container.config.entrypoint,
            *container.config.cmd,
        ]
        env = env_dict(process_env(container.config, sandbox.hostname))
        try:
            with self._files.appending_logs(container.id) as (out, err, offset):
                streams: tuple[int | IO[bytes], ...] = (stdin, out, err)
                if slave >= 0:
                    streams = (slave, slave, slave)  # hostinit makes it the controlling terminal
                child = REAPER.spawn(
                    args,
                    stdin=streams[0],
                    stdout=streams[1],
                    stderr=streams[2],
                    env=env,
                    pass_fds=(status_w,),
                    start_new_session=True,
                    on_exit=on_exit,
                )
                os.close(status_w)
                status_w = -1
                failure = _read_until_eof(status_r, RUNC_TIMEOUT_S)
                if failure:
                    child.wait(RUNC_TIMEOUT_S)
                    err.truncate(offset)
        finally:
            for fd in (status_w, stdin, slave):
                if fd >= 0:
                    os.close(fd)
            os.close(status_r)
        if failure:
            raise start_error(failure)
        txn.on_failure("process", lambda: kill_group(child.pid))
        return child.pid

    def exec_command(self, container: Container, request: ExecRequest) -> ProcessCommand:
        args = ["nsenter", "-t", str(container.state.pid), "--net", "--mount", "--uts", "--ipc"]
        args += [f"--wd={request.workdir or container.config.working_dir or '/'}", "--"]
        env = merge_env(process_env(container.config, container.config.hostname), request.env)
        return ProcessCommand([*args, *request.cmd], env_dict(env))

    def signal_all(self, container: Container, signum: int) -> None:
        kill_group(container.state.pid, signum)

    def end(self, container: Container) -> None:
        kill_group(container.state.pid)


def _read_until_eof(fd: int, timeout: float) -> str:
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise CnmError("the container's process did not start in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks).decode(errors="replace")
        chunks.append(chunk)
