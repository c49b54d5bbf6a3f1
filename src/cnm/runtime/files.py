"""Where each container's files live, and their removal.

Two directories per container: the bundle under the exec root (``containers/<id>``: the OCI
config, the overlay's mount point, runc's log and pid file, the terminal copier's pid, the
output FIFOs), which may be on a tmpfs and is rebuilt at each start; and the state under the
data root (``containers/<id>``: the overlay's upper and work directories, the init layer with
the container's mount points, the log file), which lives as long as the container. runc's own
state is under ``<exec root>/runc``. The log file is named as Docker names it:
``<id>-json.log`` for json-file, ``local-logs/container.log`` for local.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cnm.runtime import bundle


@dataclass(frozen=True)
class ContainerFiles:
    data_root: Path
    exec_root: Path

    @property
    def runc_root(self) -> Path:
        return self.exec_root / "runc"

    @property
    def bundles(self) -> Path:
        return self.exec_root / "containers"

    @property
    def states(self) -> Path:
        return self.data_root / "containers"

    def bundle_dir(self, container_id: str) -> Path:
        return self.bundles / container_id

    def state_dir(self, container_id: str) -> Path:
        return self.states / container_id

    def log_path(self, container_id: str, driver: str) -> Path:
        """Where the container's log driver writes (also for none, which writes nothing)."""
        state = self.state_dir(container_id)
        if driver == "local":
            return state / "local-logs" / "container.log"
        return state / f"{container_id}-json.log"

    def console_dir(self, name: str) -> Path:
        """A directory for an exec's console socket, whose path runc needs absolute and
        within a socket address's 107 bytes: under the exec root if that is short enough,
        else under /tmp (made by the caller, 0700)."""
        for base in (self.exec_root / "consoles", Path(tempfile.gettempdir()) / "cnm-consoles"):
            candidate = base / name
            if len(str(candidate / "console.sock")) <= 100:
                base.mkdir(mode=0o700, parents=True, exist_ok=True)
                return candidate
        raise OSError(f"no directory short enough for the console socket of {name}")

    def shm_dir(self, container_id: str) -> Path:
        """The /dev/shm of a container of IPC mode shareable: a tmpfs mounted here, in the
        daemon's namespace, which the containers that join its IPC bind too."""
        return self.bundle_dir(container_id) / "shm"

    def init_layer(self, container_id: str) -> Path:
        """The container's own lower layer: its mount points, so they are no change of its."""
        return self.state_dir(container_id) / "init"

    def prepare(self) -> None:
        for path in (self.runc_root, self.bundles, self.states):
            path.mkdir(parents=True, exist_ok=True)

    def create(self, container_id: str) -> None:
        """A new container's state directory, with its init layer and upper directory."""
        for path in (self.init_layer(container_id), self.state_dir(container_id) / "upper"):
            path.mkdir(parents=True, exist_ok=True)

    def unmount_rootfs(self, container_id: str) -> None:
        bundle.unmount(self.bundle_dir(container_id) / "rootfs")
        bundle.unmount(self.shm_dir(container_id))

    def remove(self, container_id: str) -> None:
        bundle_dir = self.bundle_dir(container_id)
        bundle.unmount(bundle_dir / "rootfs")
        bundle.unmount(self.shm_dir(container_id))
        shutil.rmtree(bundle_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir(container_id), ignore_errors=True)

    def remove_unknown(self, known: set[str]) -> None:
        """The directories of containers no record names (left by a crash during a removal)."""
        for path in self.bundles.iterdir():
            if path.name not in known:
                bundle.unmount(path / "rootfs")
                bundle.unmount(path / "shm")
                shutil.rmtree(path, ignore_errors=True)
        for path in self.states.iterdir():
            if path.name not in known:
                shutil.rmtree(path, ignore_errors=True)
