"""``docker cp``: a container's files as tar archives, both ways, through the helper process
``archiveinit`` (why a helper: see its note).

The daemon starts the helper with what it needs to see the container's files as the container
does: the mount namespace of a running container's first process, or, for a stopped one, the
overlay's layers and the container's bind and volume mounts (with their read-only flags); then
it reads the helper's one status line (Docker's PathStat, or a refusal with its HTTP status),
and streams the tar from or to it. Paths are the container's; a container of the host's
filesystem sees the host's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound
from cnm.osl.reaper import REAPER, Child
from cnm.runtime.files import ContainerFiles
from cnm.runtime.model import Container, Image

STATUS_TIMEOUT_S = 30.0
_ERRORS: dict[int, type[CnmError]] = {
    400: InvalidParameter,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


class Readable(Protocol):
    """Where a tar comes from (a file, or a request body read from a worker thread)."""

    def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class PathStat:
    """Docker's container PathStat (the ``X-Docker-Container-Path-Stat`` header)."""

    name: str
    size: int
    mode: int  # Go's os.FileMode bits
    mtime: str
    link_target: str


class ArchiveStream:
    """A tar of a container's path being read from the helper; ``close`` when done."""

    def __init__(self, child: Child, stat: PathStat) -> None:
        self._child = child
        self.stat = stat
        assert child.stdout is not None
        self.stream: IO[bytes] = child.stdout

    def close(self) -> None:
        self.stream.close()
        if self._child.poll() is None:
            try:
                self._child.wait(STATUS_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()


class ContainerArchives:
    def __init__(self, files: ContainerFiles) -> None:
        self._files = files

    def _view(self, container: Container, image: Image | None, writable: bool) -> list[str]:
        """The helper's options that show it the container's files."""
        if container.state.running:
            return ["--mntns", f"/proc/{container.state.pid}/ns/mnt"]
        if image is None:
            return ["--mntns", f"/proc/{os.getpid()}/ns/mnt"]
        state = self._files.state_dir(container.id)
        lowers = [self._files.init_layer(container.id), Path(image.rootfs)]
        if writable and not container.host_config.readonly_rootfs:
            layers = "lowerdir={}:{},upperdir={},workdir={}".format(
                *lowers, state / "upper", state / "work"
            )
        else:
            layers = "lowerdir={}:{}:{}".format(state / "upper", *lowers)
        (state / "upper").mkdir(parents=True, exist_ok=True)
        (state / "work").mkdir(parents=True, exist_ok=True)
        args = [
            "--rootfs",
            str(self._files.bundle_dir(container.id) / "cp-root"),
            "--layers",
            layers,
            "--unmount-under",
            str(self._files.exec_root),
        ]
        binds = [
            [point.source, point.destination, "ro" if point.read_only else "rw"]
            for point in container.mount_points
            if point.type in ("bind", "volume") and point.source
        ]
        return [*args, "--binds", json.dumps(binds)]

    def _spawn(self, args: list[str], stdin: int = subprocess.DEVNULL) -> tuple[Child, int]:
        """The helper, started, and the read end of its status pipe."""
        status_r, status_w = os.pipe()
        try:
            child = REAPER.spawn(
                [
                    sys.executable,
                    "-I",
                    "-m",
                    "cnm.runtime.archiveinit",
                    "--status-fd",
                    str(status_w),
                    *args,
                ],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_w,),
            )
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        return child, status_r

    @staticmethod
    def _report(status_r: int) -> dict[str, object]:
        with os.fdopen(status_r, "rb") as status:
            line = status.readline()
        try:
            found = json.loads(line) if line else {}
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    @staticmethod
    def _check(child: Child, report: dict[str, object]) -> PathStat:
        if "stat" in report:
            found = report["stat"]
            assert isinstance(found, dict)
            return PathStat(
                name=str(found["name"]),
                size=int(found["size"]),
                mode=int(found["mode"]),
                mtime=str(found["mtime"]),
                link_target=str(found["linkTarget"]),
            )
        status = report.get("status", 500)
        message = str(report.get("message") or "")
        if not message:
            try:
                child.wait(STATUS_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
            error = child.stderr.read().decode(errors="replace") if child.stderr else ""
            message = f"cannot reach the container's files: {error.strip() or 'helper failed'}"
        raise _ERRORS.get(int(status) if isinstance(status, int) else 500, CnmError)(message)

    def stat(self, container: Container, image: Image | None, path: str) -> PathStat:
        child, status = self._spawn([*self._view(container, image, False), "stat", path])
        try:
            return self._check(child, self._report(status))
        finally:
            child.wait(STATUS_TIMEOUT_S)

    def get(self, container: Container, image: Image | None, path: str) -> ArchiveStream:
        child, status = self._spawn([*self._view(container, image, False), "get", path])
        try:
            found = self._check(child, self._report(status))
        except CnmError:
            child.wait(STATUS_TIMEOUT_S)
            raise
        return ArchiveStream(child, found)

    def put(
        self,
        container: Container,
        image: Image | None,
        path: str,
        source: Readable,
        no_overwrite_dir_non_dir: bool = False,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Extract the tar read from ``source`` into the directory ``path``."""
        args = self._view(container, image, True)
        if no_overwrite_dir_non_dir:
            args.append("--no-overwrite-dir-non-dir")
        if owner is not None:
            args += ["--chown", f"{owner[0]}:{owner[1]}"]
        child, status = self._spawn([*args, "put", path], stdin=subprocess.PIPE)
        feeder = threading.Thread(
            target=_feed, args=(source, child), name="cnm-cp-input", daemon=True
        )
        feeder.start()
        try:
            self._check(child, self._report(status))
        finally:
            feeder.join(STATUS_TIMEOUT_S)
            child.wait(STATUS_TIMEOUT_S)


def _feed(source: Readable, child: Child) -> None:
    """The request body to the helper's stdin, until its end or the helper's."""
    assert child.stdin is not None
    try:
        while chunk := source.read(1 << 20):
            child.stdin.write(chunk)
    except (BrokenPipeError, ConnectionError):
        pass  # the helper refused and left; its report says why
    finally:
        with suppress(OSError):
            child.stdin.close()
