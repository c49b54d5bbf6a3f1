"""A running container's figures for ``docker stats`` and ``docker top``: CPU, memory, block
I/O and pids from its cgroups, traffic per interface from its sandbox's network namespace
(through ``cnm.osl``), processes from ``ps``.

Where the figures come from (cgroup v1, the hybrid layout of this machine; v2's files where a
controller lives there): cpuacct.usage, cpuacct.usage_percpu and cpuacct.stat (user and system
time, in clock ticks), cpu.stat (throttling), memory.usage_in_bytes, memory.max_usage_in_bytes,
memory.limit_in_bytes, memory.failcnt and memory.stat, blkio.throttle.io_service_bytes and
io_serviced, pids.current and pids.max. The machine's CPU time is /proc/stat's first line, in
nanoseconds, as Docker reports ``system_cpu_usage``. The groups are the ones runc made for the
container (its state names them). The counters of a container that shares another's network
namespace are that namespace's, as Docker shows them.

``top`` runs the host's ``ps`` with the user's arguments (``-ef`` by default) and keeps the rows
whose PID column is one of the container's processes, as Docker does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cnm.errors import CnmError, InvalidParameter
from cnm.osl.links import sandbox_network
from cnm.osl.reaper import REAPER
from cnm.runtime.cgroups import read_int, read_keyed

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NANOS = 1_000_000_000


@dataclass
class BlkioEntry:
    major: int
    minor: int
    op: str
    value: int


@dataclass
class Sample:
    """One reading of a container's figures (Docker's StatsJSON, typed)."""

    read_ns: int
    pids_current: int = 0
    pids_limit: int = 0
    cpu_total: int = 0  # ns
    cpu_percpu: list[int] = field(default_factory=list)
    cpu_user: int = 0  # ns
    cpu_system: int = 0  # ns
    system_cpu: int = 0  # ns of the whole machine
    online_cpus: int = 0
    throttling: tuple[int, int, int] = (0, 0, 0)  # periods, throttled periods, throttled ns
    memory_usage: int = 0
    memory_max_usage: int = 0
    memory_limit: int = 0
    memory_failcnt: int = 0
    memory_stats: dict[str, int] = field(default_factory=dict)
    io_service_bytes: list[BlkioEntry] = field(default_factory=list)
    io_serviced: list[BlkioEntry] = field(default_factory=list)
    networks: dict[str, dict[str, int]] = field(default_factory=dict)


def system_cpu_ns() -> int:
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:8]
    return sum(int(f) for f in fields) * NANOS // CLOCK_TICKS


def _blkio(path: Path) -> list[BlkioEntry]:
    found: list[BlkioEntry] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            found.append(BlkioEntry(int(major), int(minor), parts[1], int(parts[2])))
    return found


def sample(groups: dict[str, str], sandbox_key: str) -> Sample:
    """The figures now, from the container's cgroups (by controller) and its namespace."""
    now = time.time_ns()
    found = Sample(read_ns=now, system_cpu=system_cpu_ns(), online_cpus=os.cpu_count() or 1)
    unified = Path(groups[""]) if groups.get("") else None
    cpuacct = Path(groups["cpuacct"]) if "cpuacct" in groups else None
    if cpuacct is not None:
        found.cpu_total = read_int(cpuacct / "cpuacct.usage") or 0
        try:
            found.cpu_percpu = [
                int(v) for v in (cpuacct / "cpuacct.usage_percpu").read_text().split()
            ]
        except (OSError, ValueError):
            found.cpu_percpu = []
        ticks = read_keyed(cpuacct / "cpuacct.stat")
        found.cpu_user = ticks.get("user", 0) * NANOS // CLOCK_TICKS
        found.cpu_system = ticks.get("system", 0) * NANOS // CLOCK_TICKS
    elif unified is not None:
        usage = read_keyed(unified / "cpu.stat")
        found.cpu_total = usage.get("usage_usec", 0) * 1000
        found.cpu_user = usage.get("user_usec", 0) * 1000
        found.cpu_system = usage.get("system_usec", 0) * 1000
    if found.cpu_percpu:
        found.online_cpus = len(found.cpu_percpu)
    cpu = Path(groups["cpu"]) if "cpu" in groups else unified
    if cpu is not None:
        throttle = read_keyed(cpu / "cpu.stat")
        throttled = throttle.get("throttled_time", throttle.get("throttled_usec", 0) * 1000)
        found.throttling = (
            throttle.get("nr_periods", 0),
            throttle.get("nr_throttled", 0),
            throttled,
        )
    memory = Path(groups["memory"]) if "memory" in groups else None
    if memory is not None:
        found.memory_usage = read_int(memory / "memory.usage_in_bytes") or 0
        found.memory_max_usage = read_int(memory / "memory.max_usage_in_bytes") or 0
        found.memory_limit = read_int(memory / "memory.limit_in_bytes") or 0
        found.memory_failcnt = read_int(memory / "memory.failcnt") or 0
        found.memory_stats = read_keyed(memory / "memory.stat")
    elif unified is not None:
        found.memory_usage = read_int(unified / "memory.current") or 0
        found.memory_limit = read_int(unified / "memory.max") or 0
        found.memory_stats = read_keyed(unified / "memory.stat")
    blkio = Path(groups["blkio"]) if "blkio" in groups else None
    if blkio is not None:
        found.io_service_bytes = _blkio(blkio / "blkio.throttle.io_service_bytes")
        found.io_serviced = _blkio(blkio / "blkio.throttle.io_serviced")
    pids = Path(groups["pids"]) if "pids" in groups else unified
    if pids is not None:
        found.pids_current = read_int(pids / "pids.current") or 0
        found.pids_limit = read_int(pids / "pids.max") or 0
    if sandbox_key:
        try:
            with sandbox_network(sandbox_key) as namespace:
                found.networks = namespace.counters()
        except (OSError, CnmError):
            found.networks = {}
    return found


def top(pids: list[int], ps_args: str) -> tuple[list[str], list[list[str]]]:
    """(titles, rows) of ``ps ps_args`` for the container's processes."""
    args = ps_args.split() or ["-ef"]
    done = REAPER.run(["ps", *args], timeout=30)
    if done.returncode != 0:
        raise InvalidParameter(f"Error running ps: {done.stderr.decode(errors='replace').strip()}")
    lines = done.stdout.decode(errors="replace").splitlines()
    if not lines:
        raise CnmError("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidParameter("Couldn't find PID field in ps output")
    column = titles.index("PID")
    wanted = {str(pid) for pid in pids}
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > column and fields[column] in wanted:
            rows.append(fields)
    return titles, rows
