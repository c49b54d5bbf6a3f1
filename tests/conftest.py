"""Shared fixtures: throwaway "host" network namespaces and a leftover check.

Every kernel-touching test runs against a fresh network namespace that plays the host, so tests
never see the machine's real interfaces and cleanup is deleting that namespace. Sandbox
namespaces live under the test's own exec root (a tmp_path) and are unmounted at teardown.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnm.osl.namespace import NetNamespace, create_netns, delete_netns, setns

NETNS_DIR = Path("/run/cnm-test/netns")
_MADE_NAMESPACES: list[str] = []  # every host namespace this session created


def _nsfs_mounts_under(root: Path) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            mount_point = fields[4]
            if " nsfs " in line and mount_point.startswith(str(root)):
                found.append(mount_point)
    return found


def unmount_namespaces_under(root: Path) -> None:
    """Delete every namespace bind mount below ``root`` (sandboxes a test left behind)."""
    for mount_point in sorted(_nsfs_mounts_under(root), reverse=True):
        delete_netns(mount_point)


def make_test_netns(prefix: str = "host") -> NetNamespace:
    """A throwaway namespace with loopback up, at /run/cnm-test/netns/<prefix>-<random>."""
    ns = create_netns(NETNS_DIR / f"{prefix}-{secrets.token_hex(4)}")
    _MADE_NAMESPACES.append(ns.path)
    subprocess.run(["nsenter", f"--net={ns.path}", "ip", "link", "set", "lo", "up"], check=True)
    return ns


@pytest.fixture
def host_netns(tmp_path: Path) -> Iterator[NetNamespace]:
    """Run the test's main thread inside a fresh namespace acting as the host."""
    ns = make_test_netns()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    setns(ns.fd)
    try:
        yield ns
    finally:
        setns(home)
        os.close(home)
        unmount_namespaces_under(tmp_path)
        ns.close()
        delete_netns(ns.path)


@pytest.fixture
def exec_root(tmp_path: Path) -> Path:
    return tmp_path / "exec"


def nsfs_mounts() -> list[str]:
    return _nsfs_mounts_under(Path("/"))


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the session if it left namespaces behind. Only what this session made counts:
    mounts below its base temp directory and the host namespaces it created (other runs may be
    going on beside it), and those are removed before failing."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    mounts = nsfs_mounts()
    leftovers = [m for m in mounts if m == base or m.startswith(base + "/")]
    leftovers += [p for p in _MADE_NAMESPACES if p in mounts or os.path.exists(p)]
    for path in sorted(leftovers, reverse=True):
        delete_netns(path)
    if leftovers:
        pytest.fail(f"the suite left namespaces behind: {leftovers}")
