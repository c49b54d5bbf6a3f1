"""Fixtures for the overlay driver's tests: simulated hosts on an underlay, each running the
overlay driver in-process (``hosts.py``), and a shared VNI allocator.

The test's own thread runs inside the throwaway namespace of ``host_netns`` while the drivers
work in the hosts' namespaces, so nothing that slipped out of a host namespace could reach
the machine's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnm.osl.namespace import NetNamespace
from tests.support.cluster import SimulatedCluster

from .hosts import MemoryIds, OverlayHost


@pytest.fixture
def ids() -> MemoryIds:
    return MemoryIds()


@pytest.fixture
def cluster(host_netns: NetNamespace, tmp_path: Path) -> Iterator[SimulatedCluster]:
    """The underlay; ``cluster.add_host()`` gives a plain host (an "outside" machine)."""
    with SimulatedCluster(tmp_path / "cluster") as made:
        yield made


@pytest.fixture
def make_hosts(
    cluster: SimulatedCluster, tmp_path: Path
) -> Iterator[Callable[[int], list[OverlayHost]]]:
    """``make_hosts(n)``: n more simulated hosts with their drivers (h1 at 10.77.0.1, ...)."""
    made: list[OverlayHost] = []

    def make(count: int) -> list[OverlayHost]:
        hosts = [OverlayHost(cluster.add_host(), tmp_path) for _ in range(count)]
        made.extend(hosts)
        return hosts

    yield make
    for host in made:
        host.close()
