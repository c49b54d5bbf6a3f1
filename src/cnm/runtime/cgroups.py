"""This machine's cgroups, as far as the runtime reads them: which controllers there are and
where, what they support, and where a running container's groups are.

cnm reads the layout, never assumes it. A host may mount cgroup v1 hierarchies (one per
controller, or several co-mounted: ``cpu,cpuacct``), the unified v2 hierarchy alone, or both
(the "hybrid" layout: v1 controllers under /sys/fs/cgroup/<name>, an empty v2 hierarchy at
/sys/fs/cgroup/unified). The mounts are read from /proc/self/mountinfo; a container's groups
from /proc/<pid>/cgroup of its first process, so whatever runc chose (its cgroupsPath is
relative: below the daemon's own group in each hierarchy) is found where it is.

Containers' groups are ``cnm/<id>`` below the daemon's own group in each hierarchy.
runc itself writes the limits (``linux.resources`` at start, ``runc update`` later), pauses
(the v1 freezer or v2's cgroup.freeze) and kills a container's groups; this module only tells
what the machine supports, so an unsupported limit is refused at create instead of being
dropped, and reads the figures ``docker stats`` shows.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    v1: dict[str, Path]  # controller -> mount point of its hierarchy
    v2: Path | None  # the unified hierarchy, if mounted
    v2_controllers: frozenset[str]  # controllers enabled in it


@functools.cache
def layout() -> Layout:
    v1: dict[str, Path] = {}
    v2: Path | None = None
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            separator = fields.index("-")
            fstype, options = fields[separator + 1], fields[separator + 3]
            point = Path(fields[4].replace("\\040", " "))
            if fstype == "cgroup2" and v2 is None:
                v2 = point
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option in _V1_CONTROLLERS and option not in v1:
                        v1[option] = point
    enabled: frozenset[str] = frozenset()
    if v2 is not None:
        try:
            enabled = frozenset((v2 / "cgroup.controllers").read_text().split())
        except OSError:
            enabled = frozenset()
    return Layout(v1, v2, enabled)


_V1_CONTROLLERS = (
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
)
_V2_NAMES = {"blkio": "io", "cpuacct": "cpu", "freezer": "cpu"}  # v2's equivalents


def own_group(controller: str, pid: int | str = "self") -> Path | None:
    """The directory of ``pid``'s group for ``controller`` (v1 hierarchy, else v2)."""
    found = layout()
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        number, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if number == "0" and not names:
            unified = path
            continue
        if controller in names.split(",") and controller in found.v1:
            return found.v1[controller] / path.lstrip("/")
    in_v2 = _V2_NAMES.get(controller, controller) in found.v2_controllers
    if unified is not None and found.v2 is not None and controller not in found.v1 and in_v2:
        return found.v2 / unified.lstrip("/")
    return None


def supports(controller: str, filename: str) -> bool:
    """Whether a container's group of ``controller`` has the interface file ``filename``:
    asked of ``cnm``, the daemon's child group that holds its containers' groups (made here if
    missing, as runc would make it). The daemon's own group will not do: a hierarchy's root
    lacks files its children have (pids.max)."""
    group = own_group(controller)
    if group is None:
        return False
    parent = group / "cnm"
    try:
        parent.mkdir(exist_ok=True)
    except OSError:
        return (group / filename).exists()
    return (parent / filename).exists()


def read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(path: Path) -> dict[str, int]:
    """A ``key value`` per line file (memory.stat, cpu.stat)."""
    found: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            found[key] = int(value)
    return found


def parse_cpu_list(text: str) -> set[int]:
    """``0-3,6`` -> {0, 1, 2, 3, 6}; ValueError if malformed."""
    found: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(text)
        start, end = int(first), int(last) if dash else int(first)
        if end < start:
            raise ValueError(text)
        found.update(range(start, end + 1))
    return found


def available_cpus() -> set[int]:
    """The CPUs the daemon's cpuset allows (its containers are within it)."""
    group = own_group("cpuset")
    for name in ("cpuset.effective_cpus", "cpuset.cpus.effective", "cpuset.cpus"):
        if group is not None:
            try:
                return parse_cpu_list((group / name).read_text())
            except (OSError, ValueError):
                continue
    return set(os.sched_getaffinity(0))


def available_mems() -> set[int]:
    group = own_group("cpuset")
    for name in ("cpuset.effective_mems", "cpuset.mems.effective", "cpuset.mems"):
        if group is not None:
            try:
                return parse_cpu_list((group / name).read_text())
            except (OSError, ValueError):
                continue
    return {0}
