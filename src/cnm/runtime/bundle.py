"""OCI bundles for runc: the root filesystem (an overlay over the image) and config.json
(written from ``ocispec``).

The rootfs is an overlayfs: the unpacked image is the bottom read-only layer, shared by every
container of that image; above it the container's init layer (its mount points, see
``mounts``); the container's writes go to an upper directory under the data root, kept while
the container exists (a restarted container sees its own changes), removed at rm. The mount
point lives under the exec root, which may be a tmpfs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnm.osl.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, mount, umount


def write_spec(bundle: Path, spec: dict[str, Any]) -> None:
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))


def mount_overlay(lowers: list[Path], upper: Path | None, work: Path | None, target: Path) -> None:
    """An overlay of ``lowers`` (topmost first) at ``target``; without ``upper`` it is
    read-only (a view of the layers, as for a commit or a copy from a stopped container)."""
    for path in (*lowers, upper, work):
        if path is not None and any(c in str(path) for c in ",:"):
            raise OSError(f"overlay layer path {path} holds ',' or ':'")
    for path in (*lowers, upper, work, target):
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
    data = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None and work is not None:
        data += f",upperdir={upper},workdir={work}"
    mount("overlay", str(target), "overlay", data=data)


def mount_shm(target: Path, size: int) -> None:
    """A /dev/shm of ``size`` bytes at ``target`` (a shareable IPC's, bound into containers)."""
    target.mkdir(parents=True, exist_ok=True)
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    mount("shm", str(target), "tmpfs", flags=flags, data=f"mode=1777,size={size}")


def is_mounted(target: Path) -> bool:
    text = str(target)
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == text for line in mounts)


def unmount(target: Path) -> None:
    """Detach the mount at ``target`` if there is one."""
    while is_mounted(target):
        umount(str(target))
