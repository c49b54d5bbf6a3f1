"""Throwaway network namespaces that play the host, and the leftover check.

Every kernel-touching test runs against a fresh namespace, so tests never see the machine's
real interfaces and cleanup is deleting that namespace. Namespaces are made under
/run/cnm-test/netns and remembered, so that the session's leftover check (tests/conftest.py)
can remove, and fail on, any that a test left behind: only what this session made counts,
since other runs may be going on beside it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterable
from pathlib import Path

from cnm.osl.namespace import NetNamespace, create_netns, delete_netns

NETNS_DIR = Path("/run/cnm-test/netns")
MADE_NAMESPACES: list[str] = []  # every namespace make_test_netns made in this session


def nsfs_mounts_under(root: Path) -> list[str]:
    """Namespace bind mounts at or below ``root``."""
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            mount_point = fields[4]
            if " nsfs " in line and mount_point.startswith(str(root)):
                found.append(mount_point)
    return found


def nsfs_mounts() -> list[str]:
    return nsfs_mounts_under(Path("/"))


def unmount_namespaces_under(root: Path) -> None:
    """Delete every namespace bind mount below ``root`` (sandboxes a test left behind)."""
    for mount_point in sorted(nsfs_mounts_under(root), reverse=True):
        delete_netns(mount_point)


def make_test_netns(prefix: str = "host") -> NetNamespace:
    """A throwaway namespace with loopback up, at /run/cnm-test/netns/<prefix>-<random>."""
    ns = create_netns(NETNS_DIR / f"{prefix}-{secrets.token_hex(4)}")
    MADE_NAMESPACES.append(ns.path)
    subprocess.run(["nsenter", f"--net={ns.path}", "ip", "link", "set", "lo", "up"], check=True)
    return ns


def remove_leftovers(base: Path, made: Iterable[str]) -> list[str]:
    """Delete the namespaces a session left behind and return them: the mounts below its base
    temp directory ``base`` and those of ``made`` that still exist."""
    mounts = nsfs_mounts()
    leftovers = [m for m in mounts if m == str(base) or m.startswith(f"{base}/")]
    leftovers += [p for p in made if p in mounts or os.path.exists(p)]
    for path in sorted(leftovers, reverse=True):
        delete_netns(path)
    return leftovers
