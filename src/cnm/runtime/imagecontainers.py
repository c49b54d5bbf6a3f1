"""Containers of an imported image: an overlay over the image, an OCI bundle, runc.

A start mounts the rootfs (``bundle.mount_overlay``), writes config.json with the sandbox's
namespace and files, and runs ``runc run -d`` with the container's stdio: the log files for
output (runc hands its own stdio to the container when there is no terminal), and for input the
read end of a stdin pipe (``OpenStdin``) or, with ``Tty``, a console socket that runc sends the
terminal's master to. What the daemon keeps of those is left in a ``console.ProcessStdio``.
runc's init is reparented to the daemon once ``runc run -d`` returns (the daemon is a child
subreaper), so the reaper learns its exit like any child's.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cnm.errors import CnmError
from cnm.model import Sandbox
from cnm.runtime import bundle, console
from cnm.runtime.files import ContainerFiles
from cnm.runtime.model import Container, Image
from cnm.runtime.process import ExecRequest, ProcessCommand, process_env
from cnm.runtime.runc import Runc
from cnm.transaction import Transaction

log = logging.getLogger(__name__)


class ImageContainers:
    def __init__(self, runc: Runc, files: ContainerFiles) -> None:
        self._runc = runc
        self._files = files

    def start(
        self,
        container: Container,
        image: Image,
        sandbox: Sandbox,
        sandbox_files: dict[str, Path],
        stdio: console.ProcessStdio,
        txn: Transaction,
    ) -> int:
        """Run the container's process in ``sandbox``; its pid. ``sandbox_files`` maps a path
        inside (/etc/hosts) to the file bind-mounted there."""
        bundle_dir = self._files.bundle_dir(container.id)
        state = self._files.state_dir(container.id)
        rootfs = bundle_dir / "rootfs"
        bundle.mount_overlay(Path(image.rootfs), state / "upper", state / "work", rootfs)
        txn.on_failure("rootfs", lambda: bundle.unmount(rootfs))
        spec = bundle.oci_spec(
            container_id=container.id,
            args=[*container.config.entrypoint, *container.config.cmd],
            env=process_env(container.config, sandbox.hostname),
            cwd=container.config.working_dir,
            hostname=sandbox.hostname,
            domainname=sandbox.domainname,
            rootfs=rootfs,
            netns=sandbox.key,
            files=sandbox_files,
            terminal=container.config.tty,
            console_size=container.host_config.console_size,
        )
        bundle.write_spec(bundle_dir, spec)
        with _runc_stdio(container, bundle_dir, stdio) as (stdin, console_socket):
            with self._files.appending_logs(container.id) as (out, err, offset):
                try:
                    pid = self._runc.run(
                        container.id,
                        bundle_dir,
                        stdin=stdin,
                        stdout=out,
                        stderr=err,
                        console_socket=console.SOCKET_NAME if console_socket else None,
                    )
                except CnmError:
                    err.truncate(offset)
                    raise
            txn.on_failure("runc container", lambda: self._runc.delete(container.id))
            if console_socket is not None:
                stdio.master = console_socket.receive()
        return pid

    def exec_command(self, container: Container, request: ExecRequest) -> ProcessCommand:
        args = self._runc.exec_args(
            container.id, request.cmd, request.env, request.workdir, request.tty
        )
        return ProcessCommand(args)

    def signal_all(self, container: Container, signum: int) -> None:
        """Nothing to do: the container's init dies of SIGKILL, and with it its namespace."""

    def end(self, container: Container) -> None:
        self._runc.delete(container.id)
        try:
            self._files.unmount_rootfs(container.id)
        except OSError:
            log.exception("unmounting the rootfs of %s", container.id[:12])

    def clean_up_stopped(self, container_id: str) -> None:
        """What a crash in the middle of a stop may have left of a stopped container."""
        if self._runc.exists(container_id):
            self._runc.delete(container_id)
        self._files.unmount_rootfs(container_id)

    def remove_unknown(self, known: set[str]) -> None:
        """runc's containers that no record names."""
        for container_id in self._runc.containers():
            if container_id not in known:
                log.warning("removing unknown runc container %s", container_id[:12])
                self._runc.delete(container_id)


@contextmanager
def _runc_stdio(
    container: Container, bundle_dir: Path, stdio: console.ProcessStdio
) -> Iterator[tuple[int, console.ConsoleSocket | None]]:
    """For the time of ``runc run``: its stdin (the read end of the container's stdin pipe,
    whose write end goes to ``stdio``; else /dev/null) and, with a terminal, the console
    socket runc sends the master to."""
    if container.config.tty:
        with console.ConsoleSocket(bundle_dir) as console_socket:
            yield subprocess.DEVNULL, console_socket
        return
    if not container.config.open_stdin:
        yield subprocess.DEVNULL, None
        return
    stdin, stdio.stdin = os.pipe()
    try:
        yield stdin, None
    finally:
        os.close(stdin)
