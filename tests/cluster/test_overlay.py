"""Overlay networks end to end: a ``cnm daemon`` on each simulated host, one etcd, the docker
CLI as the user. Containers on different hosts reach each other by name and address; a host
whose daemon died is dropped after its lease and taken back when it returns; etcd going away
and coming back, or losing one member of three, costs no endpoint. Before anything is sent
between hosts, the underlay route is checked to use the link the harness made."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnm.store.etcd import EtcdStore, parse_cluster_store
from tests.support.cluster import SimulatedCluster
from tests.support.daemon import Daemon
from tests.support.netns import unmount_namespaces_under
from tests.support.overlay import TTL_S, ClusterHost, eventually, fdb, start_host

SERVE = (
    "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"
)
VNI_OPTION = "com.docker.network.driver.overlay.vxlanid_list"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SimulatedCluster]:
    with SimulatedCluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def two_hosts(cluster: SimulatedCluster, tmp_path: Path) -> Iterator[list[ClusterHost]]:
    cluster.start_etcd()
    hosts: list[ClusterHost] = []
    try:
        sims = [cluster.add_host(), cluster.add_host()]
        sims[0].check_underlay_route(sims[1].address)
        sims[1].check_underlay_route(sims[0].address)
        for sim in sims:
            hosts.append(start_host(cluster, sim, tmp_path / sim.name))
        yield hosts
    finally:
        for host in hosts:
            host.stop()
        unmount_namespaces_under(tmp_path)


def etcd_keys(cluster: SimulatedCluster, host: ClusterHost) -> list[str]:
    with host.sim.namespace.entered():
        store = EtcdStore(parse_cluster_store(cluster.cluster_store))
        try:
            return [entry.key for entry in store.list("")]
        finally:
            store.close()


def degraded(host: ClusterHost) -> bool:
    """Whether ``docker info`` warns that the cluster store is out of reach."""
    info = json.loads(host.docker("info", "--format", "{{json .}}").stdout)
    return any("degraded" in warning for warning in info.get("Warnings") or [])


def inspect(host: ClusterHost, network: str) -> dict[str, object]:
    data = json.loads(host.docker("network", "inspect", network).stdout)
    assert isinstance(data, list)
    return dict(data[0])


def test_containers_on_two_hosts_reach_each_other_by_name(
    cluster: SimulatedCluster, two_hosts: list[ClusterHost]
) -> None:
    h1, h2 = two_hosts
    network_id = h1.docker(
        "network", "create", "-d", "overlay", "--subnet", "10.100.0.0/24", "ov1"
    ).stdout.strip()
    eventually(lambda: "ov1" in h2.docker("network", "ls").stdout, what="ov1 listed on h2")
    shown = inspect(h2, "ov1")
    assert shown["Scope"] == "global" and shown["Driver"] == "overlay"
    assert shown["Options"][VNI_OPTION] == "4096"  # type: ignore[index]
    h1.docker("run", "-d", "--name", "web", "--network", "ov1", "busybox:local", "sh", "-c", SERVE)
    page = h2.docker(
        "run",
        "--rm",
        "--network",
        "ov1",
        "busybox:local",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do timeout 2 wget -qO- http://web/ && exit 0; sleep 0.2; done; exit 1",
    ).stdout
    assert page.startswith("hello from ")
    address = json.loads(h1.docker("inspect", "web").stdout)[0]["NetworkSettings"]["Networks"][
        "ov1"
    ]["IPAddress"]
    assert address.startswith("10.100.0.")
    h2.docker("run", "-d", "--name", "cli", "--network", "ov1", "busybox:local", "sleep", "600")
    eventually(  # h1 learns of cli from etcd within moments of its start
        lambda: (
            "1 packets received"
            in h2.docker("exec", "cli", "ping", "-c", "1", "-W", "1", address, check=False).stdout
        ),
        what="cli on h2 pings web on h1",
    )
    peers = inspect(h1, "ov1")["Peers"]
    assert sorted(p["IP"] for p in peers) == [h1.sim.address, h2.sim.address]  # type: ignore[index,union-attr]
    info = json.loads(h2.docker("info", "--format", "{{json .}}").stdout)
    assert info["ClusterStore"] == cluster.cluster_store
    assert (
        info["ClusterAdvertise"] == f"{h2.sim.address}:2376"
        or info["ClusterAdvertise"] == h2.sim.address
    )
    # removing everything leaves no record of it in etcd
    h1.docker("rm", "-f", "web")
    h2.docker("rm", "-f", "cli")
    h2.docker("network", "rm", "ov1")
    eventually(lambda: "ov1" not in h1.docker("network", "ls").stdout, what="ov1 gone on h1")
    kinds = {key.split("/")[0] for key in etcd_keys(cluster, h1)}
    assert kinds <= {"hosts", "subnets"}, etcd_keys(cluster, h1)
    assert f"ov-{network_id[:12]}" not in h1.sim.run("ip", "-br", "link")
    assert not (h1.daemon.root / "exec" / "overlay-netns" / network_id).exists()


def test_a_dead_host_is_dropped_after_its_lease_and_taken_back(
    cluster: SimulatedCluster, two_hosts: list[ClusterHost]
) -> None:
    h1, h2 = two_hosts
    network_id = h1.docker("network", "create", "-d", "overlay", "ov1").stdout.strip()
    h1.docker("run", "-d", "--name", "web", "--network", "ov1", "busybox:local", "sh", "-c", SERVE)
    mac = json.loads(h1.docker("inspect", "web").stdout)[0]["NetworkSettings"]["Networks"]["ov1"][
        "MacAddress"
    ]
    h2.docker("run", "-d", "--name", "cli", "--network", "ov1", "busybox:local", "sleep", "600")
    eventually(lambda: mac in fdb(h2, network_id), what="a's MAC in h2's FDB")
    h1.kill()
    eventually(lambda: mac not in fdb(h2, network_id), timeout=TTL_S + 10, what="a dropped")
    h1.daemon.start()
    eventually(lambda: mac in fdb(h2, network_id), what="a back in h2's FDB")
    page = h2.docker("exec", "cli", "timeout", "3", "wget", "-qO-", "http://web/").stdout
    assert page.startswith("hello from ")


def test_etcd_away_and_back_keeps_and_resumes(
    cluster: SimulatedCluster, two_hosts: list[ClusterHost]
) -> None:
    h1, h2 = two_hosts
    h1.docker("network", "create", "-d", "overlay", "ov1")
    h1.docker("run", "-d", "--name", "web", "--network", "ov1", "busybox:local", "sh", "-c", SERVE)
    h2.docker("run", "-d", "--name", "cli", "--network", "ov1", "busybox:local", "sleep", "600")
    cluster.kill_etcd(0)
    eventually(lambda: degraded(h1), what="h1 reports itself degraded")
    # the data path stays as it was
    assert h2.docker(
        "exec", "cli", "timeout", "3", "wget", "-qO-", "http://web/"
    ).stdout.startswith("hello")
    cluster.restart_etcd(0)
    eventually(lambda: not degraded(h1), what="h1 healthy again")
    h2.docker("run", "-d", "--name", "late", "--network", "ov1", "busybox:local", "sh", "-c", SERVE)
    eventually(
        lambda: h1.docker(
            "exec", "web", "sh", "-c", "timeout 2 wget -qO- http://late/ || true"
        ).stdout.startswith("hello"),
        what="c reached from a after etcd came back",
    )


def test_one_of_three_etcd_members_lost(cluster: SimulatedCluster, tmp_path: Path) -> None:
    cluster.start_etcd(3)
    sims = [cluster.add_host(), cluster.add_host()]
    hosts = [start_host(cluster, sim, tmp_path / sim.name) for sim in sims]
    try:
        h1, h2 = hosts
        h1.docker("network", "create", "-d", "overlay", "ov1")
        eventually(lambda: "ov1" in h2.docker("network", "ls").stdout)
        cluster.kill_etcd(cluster.etcd_leader())
        made = []
        for i in range(4):  # an election window may refuse a few: retried as a user would
            name = f"c{i}"
            for _ in range(20):
                result = h1.docker(
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--network",
                    "ov1",
                    "busybox:local",
                    "sleep",
                    "600",
                    check=False,
                )
                if result.returncode == 0:
                    made.append(name)
                    break
                h1.docker("rm", "-f", name, check=False)
        assert made == ["c0", "c1", "c2", "c3"]
        for name in made:
            h2.docker(
                "run",
                "--rm",
                "--network",
                "ov1",
                "busybox:local",
                "ping",
                "-c",
                "1",
                "-W",
                "3",
                name,
            )
    finally:
        for host in hosts:
            host.stop()
        unmount_namespaces_under(tmp_path)


def test_overlay_bad_input(cluster: SimulatedCluster, tmp_path: Path) -> None:
    cluster.start_etcd()
    sim1, sim2 = cluster.add_host(), cluster.add_host()
    alone = Daemon(tmp_path / "alone", sim2.namespace)
    alone.start()
    try:
        reply = alone.request("POST", "/networks/create", {"Name": "ov1", "Driver": "overlay"})
        assert reply.status == 403 and "need a cluster store" in reply.message
    finally:
        alone.stop()
    narrow = start_host(
        cluster,
        sim1,
        tmp_path / "narrow",
        "--cluster-store-opt",
        "vni.max=4096",
        import_busybox=False,
    )
    try:
        narrow.docker("network", "create", "-d", "overlay", "ov1")
        failed = narrow.docker("network", "create", "-d", "overlay", "ov2", check=False)
        assert failed.returncode != 0 and "no free VNI between 4096 and 4096" in failed.stderr
        narrow.docker("network", "create", "--subnet", "10.150.0.0/24", "localnet")
        overlapping = narrow.docker(
            "network", "create", "-d", "overlay", "--subnet", "10.150.0.0/25", "ov3", check=False
        )
        assert overlapping.returncode != 0 and "10.150.0.0" in overlapping.stderr
        encrypted = narrow.docker(
            "network", "create", "-d", "overlay", "--opt", "encrypted", "ov4", check=False
        )
        assert encrypted.returncode != 0 and "encrypt" in encrypted.stderr.lower()
    finally:
        narrow.stop()
    wrong = Daemon(
        tmp_path / "wrong",
        sim2.namespace,
        [
            "--cluster-store",
            cluster.cluster_store,
            "--cluster-advertise",
            "10.77.0.250",
        ],
    )
    done = subprocess.run(wrong.command(), capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "10.77.0.250 is not an address of this host" in done.stderr
    unmount_namespaces_under(tmp_path)
