"""Where each container's files live, and their removal.

Two directories per container: the bundle under the exec root (``containers/<id>``: the OCI
config, the overlay's mount point, runc's log and pid file, the terminal copier's pid), which
may be on a tmpfs and is rebuilt at each start; and the state under the data root
(``containers/<id>``: the overlay's upper and work directories, the two log files), which lives
as long as the container. runc's own state is under ``<exec root>/runc``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cnm.runtime import bundle

LOG_NAMES = ("stdout.log", "stderr.log")


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

    def log_paths(self, container_id: str) -> tuple[Path, Path]:
        """stdout.log and stderr.log."""
        state = self.state_dir(container_id)
        return state / LOG_NAMES[0], state / LOG_NAMES[1]

    def prepare(self) -> None:
        for path in (self.runc_root, self.bundles, self.states):
            path.mkdir(parents=True, exist_ok=True)

    def create(self, container_id: str) -> None:
        """A new container's state directory with its empty logs."""
        self.state_dir(container_id).mkdir(parents=True, exist_ok=True)
        for path in self.log_paths(container_id):
            path.touch()

    @contextmanager
    def appending_logs(self, container_id: str) -> Iterator[tuple[IO[bytes], IO[bytes], int]]:
        """The log files opened for appending, and the size of stderr.log before the start (a
        failed start's own message is cut off again)."""
        out_path, err_path = self.log_paths(container_id)
        with open(out_path, "ab") as out, open(err_path, "ab") as err:
            yield out, err, err.tell()

    def unmount_rootfs(self, container_id: str) -> None:
        bundle.unmount(self.bundle_dir(container_id) / "rootfs")

    def remove(self, container_id: str) -> None:
        bundle_dir = self.bundle_dir(container_id)
        bundle.unmount(bundle_dir / "rootfs")
        shutil.rmtree(bundle_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir(container_id), ignore_errors=True)

    def remove_unknown(self, known: set[str]) -> None:
        """The directories of containers no record names (left by a crash during a removal)."""
        for path in self.bundles.iterdir():
            if path.name not in known:
                bundle.unmount(path / "rootfs")
                shutil.rmtree(path, ignore_errors=True)
        for path in self.states.iterdir():
            if path.name not in known:
                shutil.rmtree(path, ignore_errors=True)
