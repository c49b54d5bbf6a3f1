"""The helper process behind ``docker cp``: it reads or writes a container's files from inside
the container's own view of them.

``python -I -m cnm.runtime.archiveinit --status-fd N (--mntns PATH | --rootfs DIR ...) ACTION``

Why a process of its own, inside the container's view: a path the user names may cross
symlinks the container made, and mounts (volumes, binds, tmpfs) cover parts of its tree. Inside
the container's mount namespace, chrooted at its root, the kernel resolves every path exactly as
the container's processes do and no symlink can lead to the host's files; Docker does the same
with a chrooted helper. A running container's mount namespace is entered (setns(2) needs a
single-threaded caller, which a new process is); for a stopped one the helper makes a private
mount namespace, mounts the container's overlay (``--rootfs`` with its layers) and binds its
volumes and bind mounts at their places (read-only ones read-only), then chroots there. The
mounts vanish with the process.

Actions: ``stat PATH``; ``get PATH`` (the tar of PATH on stdout, entries named after its last
component, or its contents for ``dir/.``); ``put PATH`` (the tar on stdin extracted into the
directory PATH, entries that would leave it refused; ``--no-overwrite-dir-non-dir``,
``--chown UID:GID``). Before any tar byte, one JSON line on the status fd says what happened:
``{"stat": {...}}`` (Docker's PathStat) or ``{"status": 404, "message": "..."}``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cnm.osl.syscalls import (
    CLONE_NEWNS,
    MS_BIND,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount,
    setns,
    umount,
    unshare,
)
from cnm.runtime import rootpath
from cnm.runtime.hostinit import unwanted_mounts

# Go's os.FileMode type bits, which Docker's PathStat carries.
_GO_MODE_BITS = (
    (stat.S_ISDIR, 1 << 31),
    (stat.S_ISLNK, 1 << 27),
    (stat.S_ISBLK, 1 << 26),
    (stat.S_ISFIFO, 1 << 25),
    (stat.S_ISSOCK, 1 << 24),
    (stat.S_ISCHR, (1 << 26) | (1 << 21)),
)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def go_mode(mode: int) -> int:
    value = stat.S_IMODE(mode) & 0o777
    for test, bit in _GO_MODE_BITS:
        if test(mode):
            value |= bit
    if mode & stat.S_ISUID:
        value |= 1 << 23
    if mode & stat.S_ISGID:
        value |= 1 << 22
    if mode & stat.S_ISVTX:
        value |= 1 << 20
    return value


def path_stat(path: str) -> dict[str, Any]:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise Refused(404, f"Could not find the file {path} in container") from None
    except OSError as err:
        raise Refused(400, f"cannot stat {path}: {err.strerror}") from None
    moment = datetime.fromtimestamp(info.st_mtime, UTC)
    return {
        "name": os.path.basename(path.rstrip("/")) or "/",
        "size": info.st_size,
        "mode": go_mode(info.st_mode),
        "mtime": moment.isoformat().replace("+00:00", "Z"),
        "linkTarget": os.readlink(path) if stat.S_ISLNK(info.st_mode) else "",
    }


def enter_running(mntns: str) -> None:
    fd = os.open(mntns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, CLONE_NEWNS)  # root and cwd become the namespace's root: the container's
    finally:
        os.close(fd)
    os.chdir("/")


def enter_stopped(
    rootfs: str, layers: str, binds: list[list[str]], unmount_under: list[str]
) -> None:
    unshare(CLONE_NEWNS)
    mount("none", "/", flags=MS_REC | MS_PRIVATE)
    for point in unwanted_mounts(unmount_under):
        umount(point, ignore=(errno.EINVAL, errno.ENOENT))
    os.makedirs(rootfs, exist_ok=True)
    mount("overlay", rootfs, "overlay", data=layers)
    for source, destination, mode in binds:
        try:
            target = str(rootpath.resolve(Path(rootfs), destination))
        except OSError:  # a symlink loop: nowhere to mount it
            continue
        if not os.path.exists(target):
            continue
        mount(source, target, flags=MS_BIND | MS_REC)
        if mode == "ro":
            mount("none", target, flags=MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chroot(rootfs)
    os.chdir("/")


def get(path: str, out: IO[bytes]) -> None:
    contents = path.endswith("/.")
    base = path.rstrip("/").removesuffix("/.") or "/"
    arcname = "." if contents else (os.path.basename(base) or ".")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        tar.add(base, arcname=arcname, recursive=True)


def _inside(target: str, name: str) -> str:
    """The place of a tar entry under ``target``; Refused if it would leave it."""
    normal = os.path.normpath("/" + name).lstrip("/")
    if normal.startswith("../") or normal == "..":
        raise Refused(400, f"invalid archive entry {name!r}: it leads outside {target}")
    return normal


def put(path: str, source: IO[bytes], no_overwrite_dir_non_dir: bool, owner: str) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise Refused(404, f"Could not find the file {path} in container") from None
    if not stat.S_ISDIR(info.st_mode):
        raise Refused(400, "extraction point is not a directory")
    uid = gid = -1
    if owner:
        uid, gid = (int(part) for part in owner.split(":"))
    with tarfile.open(fileobj=source, mode="r|*") as tar:
        for member in tar:
            relative = _inside(path, member.name)
            if member.islnk():
                member.linkname = _inside(path, member.linkname)
            destination = os.path.join(path, relative) if relative != "." else path
            if no_overwrite_dir_non_dir and os.path.lexists(destination):
                existing_dir = os.path.isdir(destination) and not os.path.islink(destination)
                if existing_dir and not member.isdir():
                    raise Refused(
                        400, f"cannot overwrite directory {destination!r} with non-directory"
                    )
                if not existing_dir and member.isdir():
                    raise Refused(
                        400, f"cannot overwrite non-directory {destination!r} with directory"
                    )
            if relative == "." and member.isdir():
                continue
            member.name = relative
            if owner:
                member.uid, member.gid = uid, gid
            try:
                tar.extract(member, path, set_attrs=True, numeric_owner=True)
            except OSError as err:
                if err.errno == errno.EROFS:
                    raise Refused(403, "container rootfs is marked read-only") from None
                raise


def main() -> None:
    parser = argparse.ArgumentParser(prog="cnm-archive")
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--mntns", default="")
    parser.add_argument("--rootfs", default="")
    parser.add_argument("--layers", default="")
    parser.add_argument("--binds", default="[]", help="JSON: [[source, destination, ro|rw]]")
    parser.add_argument("--unmount-under", action="append", default=[])
    parser.add_argument("--no-overwrite-dir-non-dir", action="store_true")
    parser.add_argument("--chown", default="")
    parser.add_argument("action", choices=("stat", "get", "put"))
    parser.add_argument("path")
    args = parser.parse_args()
    status = os.fdopen(args.status_fd, "w")
    try:
        if args.mntns:
            enter_running(args.mntns)
        else:
            enter_stopped(args.rootfs, args.layers, json.loads(args.binds), args.unmount_under)
        found = path_stat(args.path.removesuffix("/.") or "/")
        if args.action == "put":
            put(args.path, sys.stdin.buffer, args.no_overwrite_dir_non_dir, args.chown)
        report(status, {"stat": found})
        if args.action == "get":
            get(args.path, sys.stdout.buffer)
    except Refused as err:
        report(status, {"status": err.status, "message": str(err)})
        sys.exit(1)
    except (OSError, tarfile.TarError) as err:
        report(status, {"status": 500, "message": str(err)})
        sys.exit(1)


def report(status: IO[str], message: dict[str, Any]) -> None:
    if not status.closed:
        status.write(json.dumps(message) + "\n")
        status.close()


if __name__ == "__main__":
    main()
