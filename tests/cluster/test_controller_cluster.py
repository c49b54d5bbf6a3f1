"""The controller's global scope on simulated hosts with a real etcd: networks and names made
on one host seen on the others, cluster-wide uniqueness under concurrency, peers and their
expiry, catching up after etcd was away, and records written by someone else.

Each host runs a controller in this process, bound to the host's namespace (every call goes
through ``Host.call``, which enters it, so connections to etcd leave from that host). The
network driver is ``Recorder``: a global-scope driver that makes no kernel objects and
records what the controller tells it, so these tests are about the controller and etcd; the
overlay's data path has tests of its own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cnm.controller import Controller, ControllerConfig
from cnm.controller.cluster import ClusterConfig
from cnm.driverapi import (
    Capability,
    EndpointInfo,
    EndpointSpec,
    IdAllocator,
    JoinInfo,
    NetworkDriver,
    NetworkSpec,
    Peer,
    Scope,
)
from cnm.errors import Conflict, Forbidden
from cnm.events import Event
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest, SandboxOptions
from cnm.store.etcd import EtcdStore, parse_cluster_store
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller
from tests.support.cluster import SimHost, SimulatedCluster
from tests.support.netns import unmount_namespaces_under

T = TypeVar("T")
VNI_OPTION = "com.docker.network.driver.overlay.vxlanid_list"
TTL = 2
HEARTBEAT = 1


class Recorder(NetworkDriver):
    """A global-scope driver that records the controller's calls and makes nothing."""

    name = "recorder"

    def __init__(self) -> None:
        self.networks: dict[str, NetworkSpec] = {}
        self.peers: dict[str, dict[str, Peer]] = {}
        self.restored: list[tuple[list[str], list[str]]] = []
        self.lock = threading.Lock()

    def configure(self, config: Mapping[str, Any]) -> None:
        return None

    def capabilities(self) -> Capability:
        return Capability(Scope.GLOBAL, Scope.GLOBAL)

    def allocate_network(self, spec: NetworkSpec, ids: IdAllocator) -> Mapping[str, str]:
        return {VNI_OPTION: str(ids.allocate("vxlan", 4096, 4099))}

    def free_network(self, spec: NetworkSpec, ids: IdAllocator) -> None:
        ids.release("vxlan", int(spec.options[VNI_OPTION]))

    def create_network(self, spec: NetworkSpec) -> None:
        with self.lock:
            self.networks[spec.network_id] = spec

    def delete_network(self, network_id: str) -> None:
        with self.lock:
            self.networks.pop(network_id, None)

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        return EndpointInfo(mac_address="02:42:0a:00:00:" + spec.endpoint_id[:2])

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        return None

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None, ifname: str
    ) -> JoinInfo:
        return JoinInfo(configure_interface=False)

    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        return None

    def add_peer(self, network_id: str, peer: Peer) -> None:
        with self.lock:
            self.peers.setdefault(network_id, {})[peer.endpoint_id] = peer

    def remove_peer(self, network_id: str, peer: Peer) -> None:
        with self.lock:
            self.peers.get(network_id, {}).pop(peer.endpoint_id, None)

    def restore(self, networks: list[NetworkSpec], endpoints: list[EndpointSpec]) -> None:
        with self.lock:
            self.restored.append(
                ([n.network_id for n in networks], [e.endpoint_id for e in endpoints])
            )
            self.networks.update({n.network_id: n for n in networks})

    def peer_ids(self, network_id: str) -> set[str]:
        with self.lock:
            return set(self.peers.get(network_id, {}))


class Host:
    """A controller on a simulated host; every call runs inside the host's namespace."""

    def __init__(self, sim: SimHost, root: Path, cluster_store: str | None) -> None:
        self.sim = sim
        self.root = root
        self.cluster_store = cluster_store
        self.driver = Recorder()
        self.events: list[Event] = []
        self.controller: Controller | None = None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        with self.sim.namespace.entered():
            return fn(*args)

    def start(self) -> Controller:
        self.driver = Recorder()
        self.controller = self.call(self._start)
        return self.controller

    def _start(self) -> Controller:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "resolv.conf").write_text("nameserver 192.0.2.53\n")
        store = SqliteStore(self.root / "cnm.db")
        cluster_store = None
        node = None
        if self.cluster_store is not None:
            cluster_store = EtcdStore(parse_cluster_store(self.cluster_store), timeout=2.0)
            node = ClusterConfig(
                node_id=f"node-{self.sim.name}",
                node_name=self.sim.name,
                advertise_address=self.sim.address,
                ttl=TTL,
                heartbeat=HEARTBEAT,
            )
        config = ControllerConfig(
            exec_root=self.root / "exec",
            host_resolv_conf=self.root / "resolv.conf",
            default_bridge_name=f"cnm-{self.sim.name}",
            cluster=node,
        )
        controller = build_controller(config, store, cluster_store=cluster_store)
        controller.register_driver(self.driver)
        controller.subscribe(self.events.append)
        controller.start()
        return controller

    def stop(self) -> None:
        """As a stopping daemon: the lease is not revoked, the kernel is left as it is."""
        if self.controller is None:
            return
        controller, self.controller = self.controller, None
        self.call(controller.close)
        controller.store.close()

    @property
    def ctl(self) -> Controller:
        assert self.controller is not None
        return self.controller


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SimulatedCluster]:
    with SimulatedCluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def hosts(cluster: SimulatedCluster, tmp_path: Path) -> Iterator[list[Host]]:
    made: list[Host] = []
    cluster.start_etcd()
    for _ in range(2):
        sim = cluster.add_host()
        host = Host(sim, tmp_path / sim.name, cluster.cluster_store)
        host.start()
        made.append(host)
    try:
        yield made
    finally:
        for host in made:
            host.stop()
        unmount_namespaces_under(tmp_path)


def etcd_keys(host: Host) -> list[str]:
    """Every key in the cluster's store, read from ``host``."""
    assert host.cluster_store is not None
    store = host.call(EtcdStore, parse_cluster_store(host.cluster_store))
    try:
        return [entry.key for entry in host.call(store.list, "")]
    finally:
        store.close()


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what or check}")


def connect(host: Host, network: str, name: str) -> tuple[str, str]:
    """A sandbox on ``host`` joined to ``network``; returns (sandbox id, endpoint id)."""
    sandbox = host.call(host.ctl.create_sandbox, SandboxOptions(hostname=name))
    endpoint = host.call(host.ctl.connect, network, sandbox.id, EndpointOptions(name=name))
    return sandbox.id, endpoint.id


def test_a_network_made_on_one_host_is_listed_on_all(hosts: list[Host]) -> None:
    a, b = hosts
    net = a.call(
        a.ctl.create_network,
        NetworkRequest(name="ov1", driver="recorder", ipam_config=[IpamRequest("10.100.0.0/24")]),
    )
    assert net.scope == "global" and net.options[VNI_OPTION] == "4096"
    eventually(lambda: any(n.id == net.id for n in b.ctl.networks()), what="ov1 on b")
    seen = b.ctl.network("ov1")
    assert (seen.scope, seen.options[VNI_OPTION], seen.ipv4_pools[0].subnet) == (
        "global",
        "4096",
        "10.100.0.0/24",
    )
    assert net.id in b.driver.networks  # b's driver was told of it
    with pytest.raises(Conflict, match="ov1 already exists"):
        b.call(b.ctl.create_network, NetworkRequest(name="ov1", driver="recorder"))
    b.call(b.ctl.delete_network, "ov1")
    eventually(lambda: all(n.id != net.id for n in a.ctl.networks()), what="ov1 gone on a")
    assert net.id not in a.driver.networks
    leftovers = [k for k in etcd_keys(b) if k.startswith(("network/", "names/", "ids/", "ipam/"))]
    assert leftovers == []


def test_concurrent_creates_never_share_subnets_vnis_or_addresses(hosts: list[Host]) -> None:
    made: dict[str, list[Any]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def create(host: Host, label: str) -> None:
        try:
            for i in range(2):
                network = host.call(
                    host.ctl.create_network,
                    NetworkRequest(name=f"ov-{label}{i}", driver="recorder"),
                )
                made[label].append(network)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=create, args=(h, n)) for h, n in zip(hosts, "ab", strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    networks = made["a"] + made["b"]
    assert len({n.options[VNI_OPTION] for n in networks}) == 4
    assert len({n.ipv4_pools[0].subnet for n in networks}) == 4
    assert all(n.ipv4_pools[0].subnet.startswith("10.") for n in networks)
    # every VNI of the range 4096-4099 is taken now: the next create says so
    with pytest.raises(Exception, match="no free vxlan left in 4096-4099"):
        hosts[0].call(hosts[0].ctl.create_network, NetworkRequest(name="ov5", driver="recorder"))
    # addresses of one network handed out on both hosts at once
    shared = networks[0].name
    eventually(lambda: any(n.name == shared for n in hosts[1].ctl.networks()))
    addresses: list[str] = []
    lock = threading.Lock()

    def attach(host: Host, label: str) -> None:
        for i in range(4):
            sandbox = host.call(host.ctl.create_sandbox, SandboxOptions())
            endpoint = host.call(
                host.ctl.connect, shared, sandbox.id, EndpointOptions(name=f"{label}{i}")
            )
            with lock:
                addresses.append(endpoint.ipv4_address or "")

    threads = [
        threading.Thread(target=attach, args=(h, n)) for h, n in zip(hosts, "ab", strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(addresses) == 8 and len(set(addresses)) == 8, addresses


def test_endpoints_become_peers_on_the_other_hosts(hosts: list[Host]) -> None:
    a, b = hosts
    net = a.call(a.ctl.create_network, NetworkRequest(name="ov1", driver="recorder"))
    eventually(lambda: any(n.id == net.id for n in b.ctl.networks()))
    _, endpoint_id = connect(a, "ov1", "web")
    eventually(lambda: endpoint_id in b.driver.peer_ids(net.id), what="web as b's peer")
    peer = b.driver.peers[net.id][endpoint_id]
    endpoint = a.ctl.endpoint(endpoint_id)
    assert (str(peer.vtep), peer.mac_address, str(peer.address)) == (
        a.sim.address,
        endpoint.mac_address,
        endpoint.ipv4_address,
    )
    assert endpoint_id not in a.driver.peer_ids(net.id)  # a host is not its own peer
    joined = [e for e in b.events if e.kind == "peer-join" and e.endpoint]
    assert joined and joined[-1].endpoint.name == "web"  # type: ignore[union-attr]
    assert joined[-1].endpoint.hostname == "web"  # type: ignore[union-attr]
    # the name is the network's, on every host
    sandbox = b.call(b.ctl.create_sandbox, SandboxOptions())
    with pytest.raises(Conflict, match="endpoint with name web already exists in network ov1"):
        b.call(b.ctl.connect, "ov1", sandbox.id, EndpointOptions(name="web"))
    assert b.ctl.network_hosts(net.id) == [("h1", a.sim.address)]
    with pytest.raises(Forbidden, match="has active endpoints"):
        b.call(b.ctl.delete_network, "ov1")
    a.call(a.ctl.disconnect, "ov1", a.ctl.endpoint(endpoint_id).sandbox_id)
    eventually(lambda: endpoint_id not in b.driver.peer_ids(net.id), what="web gone from b")
    assert any(e.kind == "peer-leave" for e in b.events)


def test_a_host_gone_past_its_lease_loses_its_peers_and_gets_them_back(
    hosts: list[Host],
) -> None:
    a, b = hosts
    net = a.call(a.ctl.create_network, NetworkRequest(name="ov1", driver="recorder"))
    eventually(lambda: any(n.id == net.id for n in b.ctl.networks()))
    _, endpoint_id = connect(a, "ov1", "web")
    eventually(lambda: endpoint_id in b.driver.peer_ids(net.id))
    a.stop()  # the daemon is gone; its containers would keep running
    eventually(lambda: endpoint_id not in b.driver.peer_ids(net.id), timeout=TTL + 8, what="expiry")
    a.start()
    assert endpoint_id in {e.id for e in a.ctl.endpoints()}  # restored from etcd
    assert any(endpoint_id in ids for _, ids in a.driver.restored)
    eventually(lambda: endpoint_id in b.driver.peer_ids(net.id), what="peer again")


def test_etcd_away_and_back(cluster: SimulatedCluster, hosts: list[Host]) -> None:
    a, b = hosts
    net = a.call(a.ctl.create_network, NetworkRequest(name="ov1", driver="recorder"))
    eventually(lambda: any(n.id == net.id for n in b.ctl.networks()))
    cluster.kill_etcd(0)
    eventually(
        lambda: (status := a.ctl.cluster_status()) is not None and status.degraded is not None,
        timeout=HEARTBEAT * 8,
        what="a degraded",
    )
    cluster.restart_etcd(0)
    eventually(
        lambda: (status := a.ctl.cluster_status()) is not None and status.degraded is None,
        timeout=HEARTBEAT * 10,
        what="a healthy again",
    )
    _, endpoint_id = connect(a, "ov1", "late")
    eventually(lambda: endpoint_id in b.driver.peer_ids(net.id), what="watch resumed on b")


def test_malformed_records_are_skipped(hosts: list[Host]) -> None:
    a, b = hosts
    assert a.cluster_store is not None
    store = a.call(EtcdStore, parse_cluster_store(a.cluster_store))
    try:
        a.call(store.put, "network/bogus", b"{not json")
        a.call(store.put, "endpoint/also-bogus", json.dumps({"id": "x"}).encode())
        a.call(store.put, "hosts/strange", b"[]")
    finally:
        store.close()
    net = a.call(a.ctl.create_network, NetworkRequest(name="ov1", driver="recorder"))
    eventually(lambda: any(n.id == net.id for n in b.ctl.networks()), what="still watching")
    assert all(n.name != "bogus" for n in b.ctl.networks())


def test_without_a_cluster_store_a_global_driver_is_refused(
    cluster: SimulatedCluster, tmp_path: Path
) -> None:
    host = Host(cluster.add_host(), tmp_path / "alone", None)
    host.start()
    try:
        with pytest.raises(Forbidden, match="needs a cluster store: start the daemon with"):
            host.call(host.ctl.create_network, NetworkRequest(name="ov1", driver="recorder"))
        assert [n.name for n in host.ctl.networks() if n.driver == "recorder"] == []
    finally:
        host.stop()
        unmount_namespaces_under(tmp_path)


def test_an_unreachable_etcd_at_start_is_joined_later(
    cluster: SimulatedCluster, tmp_path: Path
) -> None:
    cluster.start_etcd()
    cluster.kill_etcd(0)
    host = Host(cluster.add_host(), tmp_path / "early", cluster.cluster_store)
    host.start()
    try:
        status = host.ctl.cluster_status()
        assert status is not None and status.degraded is not None
        host.call(host.ctl.create_network, NetworkRequest(name="local1"))  # local ones work
        cluster.restart_etcd(0)
        eventually(
            lambda: (s := host.ctl.cluster_status()) is not None and s.degraded is None,
            timeout=HEARTBEAT * 10,
            what="joined",
        )
        assert (
            host.call(host.ctl.create_network, NetworkRequest(name="ov1", driver="recorder")).scope
            == "global"
        )
    finally:
        host.stop()
        unmount_namespaces_under(tmp_path)
