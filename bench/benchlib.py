"""Helpers shared by the bench scripts: throwaway host namespaces, statistics, RSS, CPU settle,
peer baselines from ../shared/peers/RESULTS.md, and the leftover check.

Every bench runs its controller (or its bare kernel work) with the main thread inside a fresh
network namespace that plays the host, so nothing is created in the machine's real namespace
and cleanup is: return the thread home, unmount every nsfs bind mount under the bench's temp
dir, delete the host namespace.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from pyroute2 import IPRoute

from cnm.osl.namespace import THREAD_NETNS, NetNamespace, create_netns, delete_netns, setns

PEERS_DIR = Path("/work/shared/peers")
RESULTS_MD = PEERS_DIR / "RESULTS.md"


# ----------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def blocks(n: int, size: int) -> list[tuple[int, int]]:
    """Half-open index ranges [start, end) of consecutive blocks covering 0..n."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def fmt(value: float, width: int = 7, digits: int = 2) -> str:
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:{width}.{digits}f}"


# ----------------------------------------------------------------- process and machine


def rss_mb() -> float:
    """VmRSS of this process in MB (MiB / 1.048576 would be MB; we print MiB as MB like ps)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


class ForeignCpu:
    """CPU busy time that is not this process's own, as a % of all CPUs' time, over intervals:
    a noise gauge for a shared machine (kernel workers doing this process's deferred work,
    such as freeing namespaces, count as foreign too)."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")
        self._last = self._sample()

    def _sample(self) -> tuple[float, float]:
        total, idle = _cpu_times()
        own = os.times()
        return total, total - idle - (own.user + own.system) * self._tick

    def lap(self) -> float:
        """% of CPU time used by others since the previous lap (or construction)."""
        now = self._sample()
        total = now[0] - self._last[0]
        foreign = now[1] - self._last[1]
        self._last = now
        return max(0.0, 100.0 * foreign / total) if total > 0 else math.nan


def cpu_busy_pct(interval: float) -> float:
    total0, idle0 = _cpu_times()
    time.sleep(interval)
    total1, idle1 = _cpu_times()
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


def settle(
    max_s: float, threshold: float = 25.0, quiet_s: int = 3, interval: float = 1.0
) -> tuple[float, float]:
    """Wait until the CPU has been quiet (< ``threshold`` % busy) for ``quiet_s`` intervals in a
    row, at most ``max_s`` seconds. Deleting a thousand namespaces keeps kernel workers busy for
    a while after the calls return, and the machine is shared. Returns (waited s, last busy %)."""
    start = time.monotonic()
    streak = 0
    busy = math.nan
    while streak < quiet_s and time.monotonic() - start < max_s:
        busy = cpu_busy_pct(interval)
        streak = streak + 1 if busy < threshold else 0
    return time.monotonic() - start, busy


def nsfs_mounts(under: str = "/") -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            if " nsfs " in line and fields[4].startswith(under):
                found.append(fields[4])
    return found


def unmount_namespaces_under(root: Path) -> None:
    for mount_point in sorted(nsfs_mounts(str(root)), reverse=True):
        delete_netns(mount_point)


def host_link_names() -> set[str]:
    """Names of the links in the calling thread's namespace (read-only dump)."""
    with IPRoute(groups=0) as ipr:
        return {msg.get_attr("IFLA_IFNAME") for msg in ipr.link("dump")}


# ----------------------------------------------------------------- signals


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """SIGINT, SIGTERM and SIGHUP unwind like Ctrl-C, so every ``finally`` cleanup runs (also
    when started in the background by a shell, which would leave SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)


def run_main(main: Callable[[], None]) -> None:
    """Run a bench's main; an interrupt ends it with a short note once cleanup has run."""
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        sys.exit(130)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM while cleaning up, so a second Ctrl-C cannot leave mounts."""
    previous = {
        sig: signal.signal(sig, signal.SIG_IGN)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------- throwaway namespaces

TMPDIR_HELP = (
    "where the run's temp dir goes (exec root: sandbox files, netns mounts; the SQLite store); "
    "default the system temp dir (/tmp, ext4 here, like /run/cnm on this machine); "
    "/dev/shm shows the cost on tmpfs"
)


def describe_fs(path: Path) -> str:
    """The filesystem type under ``path``, from /proc/self/mountinfo (longest mount prefix)."""
    best, fstype = "", "?"
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[4]
            sep = fields.index("-")
            if (target == point or target.startswith(point.rstrip("/") + "/")) and len(
                point
            ) >= len(best):
                best, fstype = point, fields[sep + 1]
    return fstype


@contextmanager
def bench_root(prefix: str, base: str | None = None) -> Iterator[Path]:
    """A temp dir for the run (under ``base``, default the system's temp dir): it holds the
    exec root (sandbox files, netns mounts) and the store. On exit every nsfs mount below it is
    removed, then the dir."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield root
    finally:
        with signals_deferred():
            unmount_namespaces_under(root)
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def host_namespace(phase_dir: Path) -> Iterator[NetNamespace]:
    """A fresh namespace (loopback up) to act as a host, at ``phase_dir``/host. On exit, every
    nsfs mount below ``phase_dir`` (sandboxes left behind) is unmounted and it is deleted.
    The calling thread is not moved: see ``inside``."""
    phase_dir.mkdir(parents=True, exist_ok=True)
    ns = create_netns(phase_dir / "host")
    try:
        with inside(ns), IPRoute(groups=0) as ipr:
            ipr.link("set", index=1, state="up")
        yield ns
    finally:
        with signals_deferred():
            ns.close()
            unmount_namespaces_under(phase_dir)
            delete_netns(ns.path)


@contextmanager
def inside(ns: NetNamespace) -> Iterator[None]:
    """Run the body with the calling thread in ``ns``; back home afterwards, also on Ctrl-C."""
    home = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(ns.fd)
        try:
            yield
        finally:
            with signals_deferred():
                setns(home)
    finally:
        os.close(home)


@contextmanager
def throwaway_host(phase_dir: Path) -> Iterator[NetNamespace]:
    """Run the body with the main thread inside a fresh namespace acting as the host.

    On exit (also on Ctrl-C or an exception): the thread goes back to its own namespace, every
    nsfs mount below ``phase_dir`` (sandboxes) is unmounted, and the host namespace deleted."""
    with host_namespace(phase_dir) as ns, inside(ns):
        yield ns


def leftover_report(root: Path, links_before: set[str]) -> str:
    """One line: what this run left behind (nsfs mounts below ``root``, the temp dir, links
    new in the real host namespace), plus the machine-wide nsfs count (other users' included)."""
    below = nsfs_mounts(str(root))
    new_links = sorted(host_link_names() - links_before)
    return (
        f"left behind by this run: nsfs mounts under {root}: {len(below)}, temp dir "
        f"{'still there' if root.exists() else 'removed'}, new links in the real host: "
        f"{', '.join(new_links) if new_links else 'none'} (nsfs mounts machine-wide now: "
        f"{len(nsfs_mounts('/'))}, other users' included)"
    )


# ----------------------------------------------------------------- peer baselines


def _table_rows(text: str, heading: str) -> list[list[str]]:
    """Rows (cells) of the first Markdown table after a line starting with ``heading``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(heading):
            rows = []
            for row in lines[i + 1 :]:
                if row.startswith("|"):
                    cells = [c.strip() for c in row.strip().strip("|").split("|")]
                    if not all(set(c) <= set("-: ") for c in cells):
                        rows.append(cells)
                elif rows:
                    break
            return rows
    return []


def _number(cell: str) -> float:
    match = re.match(r"\s*([0-9]+(?:\.[0-9]+)?)", cell)
    return float(match.group(1)) if match else math.nan


def peer_attach_baselines() -> dict[str, list[float]]:
    """Mean attach ms per block of 50 (sandboxes 1..500) per peer, from RESULTS.md's
    "Attach latency by position" table. Falls back to the figures known when this was written."""
    fallback = {
        "docker": [108, 105, 106, 104, 111, 112, 116, 111, 101, 110],
        "netavark": [52, 52, 51, 48, 49, 52, 50, 53, 49, 54],
        "cni": [33, 32, 39, 46, 52, 58, 62, 66, 71, 82],
    }
    try:
        rows = _table_rows(RESULTS_MD.read_text(), "### Attach latency by position")
    except OSError:
        return {k: [float(v) for v in vs] for k, vs in fallback.items()}
    found = {row[0]: [_number(c) for c in row[1:]] for row in rows[1:] if row}
    return {peer: found.get(peer) or [float(v) for v in fallback[peer]] for peer in fallback}


def peer_netcreate_baseline() -> dict[str, float]:
    """Docker's network create/rm p50/p95 (ms) from RESULTS.md, with a fallback."""
    result = {"create_p50_ms": 80.2, "create_p95_ms": 92.5, "rm_p50_ms": 188.2, "rm_p95_ms": 213.1}
    try:
        rows = _table_rows(RESULTS_MD.read_text(), "### Network create / delete (docker")
    except OSError:
        return result
    for row in rows:
        if len(row) >= 2 and row[0] in result:
            value = _number(row[1])
            if not math.isnan(value):
                result[row[0]] = value
    return result
