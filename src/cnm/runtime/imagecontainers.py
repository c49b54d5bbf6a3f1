"""Containers of an imported image: an overlay over the image, an OCI bundle, runc.

A start makes the container's mount points in its init layer, mounts the rootfs
(``bundle.mount_overlay``), fills empty volumes from the image, resolves ``--user`` in the
container's files, writes config.json (``ocispec``) and runs ``runc run -d`` with the
container's stdio: its output FIFOs (runc hands its own stdio to the container when there is no
terminal), and for input the read end of a stdin pipe (``OpenStdin``) or, with ``Tty``, a
console socket that runc sends the terminal's master to. What the daemon keeps of those is left in a ``console.ProcessStdio``.
runc's init is reparented to the daemon once ``runc run -d`` returns (the daemon is a child
subreaper), so the reaper learns its exit like any child's.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnm.model import Sandbox
from cnm.runtime import bundle, console, mounts, ocispec, security, users
from cnm.runtime.files import ContainerFiles
from cnm.runtime.logdriver import STDERR, STDOUT
from cnm.runtime.model import Container, Image
from cnm.runtime.process import ExecRequest, ProcessCommand, merge_env, process_env
from cnm.runtime.runc import Runc
from cnm.transaction import Transaction

SANDBOX_PATHS = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")  # the sandbox's files


@dataclass(frozen=True)
class SharedNamespaces:
    """What a start takes from outside the container: namespaces of another container to join
    (``--pid``/``--ipc container:<id>``: "pid"/"ipc" -> /proc/<pid>/ns/...), the /dev/shm
    to bind (``--ipc host`` or ``container:<id>``), and docker-init for ``--init``."""

    namespaces: dict[str, str] = field(default_factory=dict)
    shm: str = ""
    init_binary: str = ""


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
        shared: SharedNamespaces,
    ) -> int:
        """Run the container's process in ``sandbox``; its pid. ``sandbox_files`` maps a path
        inside (/etc/hosts) to the file bind-mounted there."""
        bundle_dir = self._files.bundle_dir(container.id)
        state = self._files.state_dir(container.id)
        rootfs = bundle_dir / "rootfs"
        init_layer = self._files.init_layer(container.id)
        image_root = Path(image.rootfs)
        self.prepare_init_layer(container, image)
        bundle.mount_overlay([init_layer, image_root], state / "upper", state / "work", rootfs)
        txn.on_failure("rootfs", lambda: bundle.unmount(rootfs))
        shm = shared.shm
        if container.host_config.ipc_mode == "shareable":
            shm_dir = self._files.shm_dir(container.id)
            bundle.mount_shm(shm_dir, container.host_config.shm_size)
            txn.on_failure("shm", lambda: bundle.unmount(shm_dir))
            shm = str(shm_dir)
        mounts.fill_volumes(container, rootfs)
        identity = users.resolve(rootfs, container.config.user, container.host_config.group_add)
        spec = ocispec.build(
            ocispec.SpecRequest(
                container=container,
                args=[*container.config.entrypoint, *container.config.cmd],
                env=process_env(container.config, sandbox.hostname, identity.home),
                cwd=container.config.working_dir,
                hostname=sandbox.hostname,
                domainname=sandbox.domainname,
                rootfs=rootfs,
                netns=sandbox.key,
                sandbox_files=sandbox_files,
                identity=identity,
                joined=shared.namespaces,
                shm_source=shm,
                init_binary=shared.init_binary,
            )
        )
        bundle.write_spec(bundle_dir, spec)
        tty = container.config.tty
        with _runc_stdio(container, bundle_dir, stdio) as (stdin, console_socket):
            pid = self._runc.run(
                container.id,
                bundle_dir,
                stdin=stdin,
                stdout=subprocess.DEVNULL if tty else stdio.output[STDOUT],
                stderr=subprocess.DEVNULL if tty else stdio.output[STDERR],
                console_socket=console.SOCKET_NAME if console_socket else None,
            )
            txn.on_failure("runc container", lambda: self._runc.delete(container.id))
            if console_socket is not None:
                stdio.master = console_socket.receive()
        return pid

    def prepare_init_layer(self, container: Container, image: Image) -> None:
        """The container's mount points that the image lacks, in its init layer (at create,
        so a copy into a volume of a container never started finds its mount point; and at
        each start)."""
        mounts.prepare_init_layer(
            self._files.init_layer(container.id),
            Path(image.rootfs),
            [*mounts.destinations(container), "/proc", "/sys", "/dev"],
            [*SANDBOX_PATHS, *([ocispec.INIT_PATH] if container.host_config.init else [])],
        )

    def exec_command(self, container: Container, request: ExecRequest) -> ProcessCommand:
        """``runc exec`` of an OCI process made from the container's own (config.json), as
        ``request.user`` (resolved in the container's files) or the container's user, with
        every capability when ``privileged`` (Docker's exec --privileged), and the terminal's
        first size given to runc, which sets it before the command runs (a resize later
        would signal a process that may not expect it yet)."""
        bundle_dir = self._files.bundle_dir(container.id)
        process = json.loads((bundle_dir / "config.json").read_text())["process"]
        process["args"] = list(request.cmd)
        process["env"] = merge_env(process.get("env", []), request.env)
        process["cwd"] = request.workdir or process.get("cwd") or "/"
        process["terminal"] = request.tty
        process.pop("consoleSize", None)
        if request.tty and all(request.console_size):
            height, width = request.console_size
            process["consoleSize"] = {"height": height, "width": width}
        if request.user:
            found = users.resolve(
                Path(f"/proc/{container.state.pid}/root"),
                request.user,
                container.host_config.group_add,
            )
            process["user"] = {"uid": found.uid, "gid": found.gid}
            if found.additional_gids:
                process["user"]["additionalGids"] = found.additional_gids
        if request.privileged:
            caps = security.kernel_capabilities()
            process["capabilities"] = dict.fromkeys(("bounding", "effective", "permitted"), caps)
        name = f"exec-{secrets.token_hex(8)}"
        log_path = bundle_dir / f"{name}.log"
        spec_path = bundle_dir / f"{name}.json"
        spec_path.write_text(json.dumps(process))
        console_dir = self._files.console_dir(name) if request.tty else None
        args = self._runc.exec_args(container.id, spec_path, log_path, console_dir)
        return ProcessCommand(
            args, failure_log=log_path, console_dir=console_dir, files=(spec_path,)
        )

    def pause(self, container: Container) -> None:
        self._runc.pause(container.id)

    def resume(self, container: Container) -> None:
        self._runc.resume(container.id)

    def update(self, container: Container, resources: dict[str, Any]) -> None:
        self._runc.update(container.id, resources)

    def pids(self, container: Container) -> list[int]:
        return self._runc.pids(container.id)

    def cgroup_paths(self, container: Container) -> dict[str, str]:
        return self._runc.cgroup_paths(container.id)

    def oom_killed(self, container: Container) -> bool:
        """Whether the kernel's OOM killer killed a process of the container (read before
        its cgroup goes: v1 memory.oom_control, v2 memory.events)."""
        paths = self._runc.cgroup_paths(container.id)
        memory = paths.get("memory") or paths.get("")
        if not memory:
            return False
        for name in ("memory.oom_control", "memory.events"):
            try:
                for line in (Path(memory) / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip() not in ("", "0"):
                        return True
            except OSError:
                continue
        return False

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
