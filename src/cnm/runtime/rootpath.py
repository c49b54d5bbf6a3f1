"""Paths inside a container's root, resolved by the daemon as the container would resolve them.

A path the user names inside a container (``/etc/passwd`` for ``--user``, a volume's mount
point, a working directory) may cross symlinks that the image or the container made. Resolved
naively on the host, ``/etc -> /`` or ``passwd -> /etc/shadow`` lead out of the container's tree
into the host's. ``resolve`` walks the path one component at a time with lstat and readlink,
and resolves every symlink against the container's root, as a chroot would: an absolute target
starts again at the root and ``..`` stops at it. (libcontainer's securejoin does the same.)
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_SYMLINKS = 255


def resolve(root: Path, path: str) -> Path:
    """``path`` inside ``root``, every symlink resolved within ``root``. Components that do
    not exist are kept as they are (the result may not exist)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    followed = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            is_link = candidate.is_symlink()
        except OSError:
            is_link = False
        if not is_link:
            resolved.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise OSError(40, f"too many levels of symbolic links in {path}")  # ELOOP
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return root.joinpath(*resolved)


def read_text(root: Path, path: str) -> str | None:
    """A file inside ``root``, or None if it is missing or unreadable."""
    try:
        return resolve(root, path).read_text(errors="replace")
    except OSError:
        return None
