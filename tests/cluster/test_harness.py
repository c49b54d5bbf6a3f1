"""The simulated-cluster harness itself (tests/support/cluster.py): hosts reach each other and
etcd over the underlay, a three-member etcd survives losing one member, and nothing is left
behind, also when the test fails inside the cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnm.store.api import WatchEvent
from cnm.store.etcd import EtcdStore, parse_cluster_store
from tests.support.cluster import SimulatedCluster
from tests.support.etcd import EtcdServer
from tests.support.netns import nsfs_mounts
from tests.support.store import EventLog


def assert_gone(paths: list[str], servers: list[EtcdServer], pids: list[int]) -> None:
    mounts = nsfs_mounts()
    assert [p for p in paths if p in mounts or os.path.exists(p)] == []
    assert all(server.process is None for server in servers)
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []


def test_two_hosts_reach_each_other_and_etcd_and_leave_nothing(tmp_path: Path) -> None:
    with SimulatedCluster(tmp_path) as cluster:
        a, b = cluster.add_host(), cluster.add_host()
        (etcd,) = cluster.start_etcd()
        assert (a.address, b.address, etcd.address) == ("10.77.0.1", "10.77.0.2", "10.77.0.100")
        assert cluster.cluster_store == "etcd://10.77.0.100:2379"
        a.check_underlay_route(etcd.address)
        a.check_underlay_route(b.address)

        a.run("busybox", "ping", "-c", "1", "-W", "5", b.address)
        with a.namespace.entered():
            store = EtcdStore(parse_cluster_store(cluster.cluster_store))
            try:
                rev = store.put("host/h1", a.address.encode())
            finally:
                store.close()
        with b.namespace.entered():
            store = EtcdStore(cluster.etcd_endpoints)
            try:
                entry = store.get("host/h1")
            finally:
                store.close()
        assert entry is not None and (entry.value, entry.revision) == (b"10.77.0.1", rev)

        paths = cluster.namespace_paths
        assert len(paths) == 4  # h1, h2, etcd0, the underlay
        pids = [etcd.process.pid] if etcd.process else []
        servers = list(cluster.etcd)
    assert_gone(paths, servers, pids)


def test_route_check_rejects_addresses_off_the_underlay(tmp_path: Path) -> None:
    with SimulatedCluster(tmp_path) as cluster:
        host = cluster.add_host()
        host.check_underlay_route("10.77.0.200")
        with pytest.raises(AssertionError, match="would not reach"):
            host.check_underlay_route("127.0.0.1")


def test_three_member_etcd_survives_a_follower_killed(tmp_path: Path) -> None:
    # A follower, so that no election window (when writes time out) comes into this test.
    with SimulatedCluster(tmp_path) as cluster:
        host = cluster.add_host()
        members = cluster.start_etcd(3)
        for member in members:
            host.check_underlay_route(member.address)
        follower = (cluster.etcd_leader() + 1) % 3
        others = [m.endpoint for i, m in enumerate(members) if i != follower]
        with host.namespace.entered():
            store = EtcdStore([members[follower].endpoint, *others])
            try:
                events = EventLog()
                store.watch("network/", events)  # its stream goes to the follower
                before = store.put("network/n1", b"1")
                cluster.kill_etcd(follower)
                assert not members[follower].healthy()
                after = store.put("network/n1", b"2", expect_revision=before)
                assert events.wait_for(2) == [
                    WatchEvent("network/n1", b"1", before),
                    WatchEvent("network/n1", b"2", after),
                ]
                cluster.restart_etcd(follower)
                rejoined = EtcdStore([members[follower].endpoint])
                try:
                    entry = rejoined.get("network/n1")
                finally:
                    rejoined.close()
            finally:
                store.close()
        assert entry is not None and (entry.value, entry.revision) == (b"2", after)


def test_teardown_runs_when_the_test_fails_inside(tmp_path: Path) -> None:
    paths: list[str] = []
    servers: list[EtcdServer] = []
    with pytest.raises(RuntimeError, match="test failed"), SimulatedCluster(tmp_path) as cluster:
        cluster.add_host()
        servers.extend(cluster.start_etcd())
        paths.extend(cluster.namespace_paths)
        pid = servers[0].process.pid if servers[0].process else -1
        raise RuntimeError("test failed")
    assert_gone(paths, servers, [pid])
