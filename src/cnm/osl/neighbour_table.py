"""Room in the kernel's neighbour tables for the permanent entries cnm programs.

Why: an overlay programs one permanent neighbour entry per remote endpoint, and kernels
before 4.20 count permanent entries against the table's garbage-collection thresholds: past
``gc_thresh3`` (1024 by default) every new entry fails with "neighbour table overflow" and
hosts lose each other (moby/libnetwork#1522; Docker raises the thresholds since
moby/libnetwork#1789). Newer kernels exempt permanent entries (neigh_add passes
``exempt_from_gc``, commit 58956317c8de "neighbor: Improve garbage collection"), so raising
them there costs nothing but a little memory headroom for dynamic entries.

The rule: with ``n`` permanent entries of a family and ``p`` the power of two at or above
``n``, the thresholds become at least ``p``, ``2p`` and ``4p`` (gc_thresh1/2/3): garbage
collection never starts because of cnm's entries alone, and the hard limit stays four times
above them. Values are only ever raised, never set below what is there (an administrator's
higher values win), and written from the highest down so that ``gc_thresh1 <= gc_thresh2 <=
gc_thresh3`` holds at every step. Nothing is lowered when entries go away.

The thresholds belong to the kernel's one ARP table and one ND table (``arp_tbl``,
``nd_tbl``), shared by every namespace, and are exposed only in the initial namespace
(``net.ipv4.neigh.default.gc_thresh*``, ``net.ipv6.neigh.default.gc_thresh*``). A daemon
whose host is any other namespace (the tests' simulated hosts) finds no such files and leaves
the machine's values alone.
"""

from __future__ import annotations

import logging
import threading

from cnm.osl.links import HostNetwork, read_sysctl, write_sysctl

log = logging.getLogger(__name__)

THRESHOLDS = ("gc_thresh1", "gc_thresh2", "gc_thresh3")
Thresholds = tuple[int, int, int]


def _key(version: int, name: str) -> str:
    return f"net.ipv{version}.neigh.default.{name}"


def room_for(entries: int) -> int:
    """The power of two at or above ``entries`` (at least 1)."""
    return 1 << max(entries - 1, 0).bit_length()


def raised_thresholds(current: Thresholds, entries: int) -> Thresholds | None:
    """The thresholds ``entries`` permanent entries need, never below ``current``; None when
    ``current`` is enough."""
    room = room_for(entries)
    wanted = (room, 2 * room, 4 * room)
    raised = (
        max(current[0], wanted[0]),
        max(current[1], wanted[1]),
        max(current[2], wanted[2]),
    )
    return None if raised == current else raised


class NeighbourTableRoom:
    """Keeps the thresholds of the host's neighbour tables above a count of permanent entries,
    touching the sysctls only when the count crosses a power of two it has not seen."""

    def __init__(self, host: HostNetwork) -> None:
        self._host = host
        self._lock = threading.Lock()
        self._ensured: dict[int, int] = {4: 0, 6: 0}  # family -> room already made

    def ensure(self, version: int, entries: int) -> Thresholds | None:
        """Make room for ``entries`` permanent entries of IP ``version``; the thresholds written,
        or None when nothing needed writing (or the host namespace has no such sysctls)."""
        room = room_for(entries)
        with self._lock:
            if room <= self._ensured[version]:
                return None
            self._ensured[version] = room
            with self._host.inside():
                try:
                    current = tuple(int(read_sysctl(_key(version, n))) for n in THRESHOLDS)
                except FileNotFoundError:
                    log.debug(
                        "no IPv%d neighbour thresholds in this namespace (not the initial one)",
                        version,
                    )
                    return None
                raised = raised_thresholds((current[0], current[1], current[2]), entries)
                if raised is None:
                    return None
                for name, value in reversed(list(zip(THRESHOLDS, raised, strict=True))):
                    write_sysctl(_key(version, name), str(value))
        log.info(
            "raised the IPv%d neighbour table thresholds to %s for %d permanent entries",
            version,
            "/".join(map(str, raised)),
            entries,
        )
        return raised
