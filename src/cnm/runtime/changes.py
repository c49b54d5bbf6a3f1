"""What a container changed in its filesystem (``docker diff``), read from its overlay's upper
directory the way Docker's overlay2 driver reads it (moby pkg/archive OverlayChanges).

Every entry of the upper directory is a change. A whiteout (a character device 0:0) is a
deletion; a directory marked opaque (``trusted.overlay.opaque=y``) that exists below was
deleted and made again (reported as deleted, its new entries as added); any other entry is a
modification if its path exists in a lower layer and an addition otherwise, except a directory
that only holds changes and whose size, mode and time match the one below. The parent
directory of an added or deleted entry is reported modified. The lower layers are the
container's init layer (its mount points, never reported) and the image.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MODIFIED = 0
ADDED = 1
DELETED = 2


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _below(lowers: list[Path], relative: str) -> os.stat_result | None:
    for layer in lowers:
        try:
            return os.lstat(layer / relative.lstrip("/"))
        except OSError:
            continue
    return None


def changes(upper: Path, lowers: list[Path]) -> list[tuple[str, int]]:
    """(path inside the container, kind) for every change, in path order."""
    found: list[tuple[str, int]] = []
    changed_dirs: set[str] = set()
    if not upper.is_dir():
        return found
    for root, dirs, names in os.walk(upper):
        dirs.sort()
        entries = sorted([*dirs, *names])
        for name in entries:
            full = Path(root) / name
            relative = "/" + str(full.relative_to(upper))
            try:
                info = os.lstat(full)
            except OSError:
                continue
            below = _below(lowers, relative)
            if _is_whiteout(info) or (
                stat.S_ISDIR(info.st_mode) and below is not None and _opaque(full)
            ):
                kind = DELETED
            elif below is None:
                kind = ADDED
            elif (
                stat.S_ISDIR(info.st_mode)
                and stat.S_ISDIR(below.st_mode)
                and info.st_size == below.st_size
                and info.st_mode == below.st_mode
                and int(info.st_mtime) == int(below.st_mtime)
            ):
                continue  # only the parent of changes: reported once a child is added or gone
            else:
                kind = MODIFIED
            if stat.S_ISDIR(info.st_mode):
                changed_dirs.add(relative)
            found.append((relative, kind))
            if kind in (ADDED, DELETED):
                parent = os.path.dirname(relative)
                if parent != "/" and parent not in changed_dirs:
                    found.append((parent, MODIFIED))
                    changed_dirs.add(parent)
    return sorted(set(found))


def size(upper: Path) -> int:
    """The bytes the container's changes take (Docker's SizeRw): its upper directory's files."""
    total = 0
    for root, _, names in os.walk(upper):
        for name in names:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
