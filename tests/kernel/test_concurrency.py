"""Concurrent calls: threads made inside the test (so they start in the test's host namespace)
call one controller at the same time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from cnm.controller import Controller
from cnm.errors import Conflict
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest

from .probes import addresses, host_veths, ip_json, link, links

THREADS = 20


def _in_threads(count: int, work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``work(i)`` in ``count`` threads released together; results and errors."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results, errors


def test_concurrent_sandboxes_on_one_network_get_distinct_addresses(
    controller: Controller,
) -> None:
    net = controller.create_network(
        NetworkRequest("busy", ipam_config=[IpamRequest(subnet="10.120.0.0/24")])
    )
    bridge = f"br-{net.id[:12]}"

    def attach(i: int):
        sandbox = controller.create_sandbox()
        return sandbox, controller.connect("busy", sandbox.id)

    results, errors = _in_threads(THREADS, attach)
    assert errors == []
    endpoints = [endpoint for _, endpoint in results]
    assert len({e.ipv4_address for e in endpoints}) == THREADS
    assert len({e.mac_address for e in endpoints}) == THREADS
    assert len(controller.endpoints(net.id)) == THREADS
    assert len(controller.store.list("endpoint/")) == THREADS
    assert len(controller.store.list("sandbox/")) == THREADS
    # one veth per endpoint, all on the bridge, each peer eth0 in its sandbox with its address
    veths = host_veths(bridge)
    assert sorted(veths) == sorted(f"veth{e.id[:11]}" for e in endpoints)
    assert all("UP" in info["flags"] for info in veths.values())
    for sandbox, endpoint in results:
        eth0 = link("eth0", sandbox.key)
        assert eth0 is not None and eth0["address"] == endpoint.mac_address
        assert addresses("eth0", sandbox.key, family="4") == [endpoint.ipv4_address]
        assert veths[f"veth{endpoint.id[:11]}"]["ifindex"] == eth0["link_index"]
    # the kernel agrees: the bridge has exactly these 20 ports
    ports = ip_json("link", "show", "master", bridge)
    assert len(ports) == THREADS
    # a newcomer gets none of the 20 addresses
    newcomer = controller.connect("busy", controller.create_sandbox().id)
    assert newcomer.ipv4_address not in {e.ipv4_address for e in endpoints}


def test_concurrent_teardown_releases_everything(controller: Controller) -> None:
    net = controller.create_network(
        NetworkRequest("churn", ipam_config=[IpamRequest(subnet="10.121.0.0/24")])
    )
    boxes = [controller.create_sandbox() for _ in range(THREADS)]
    for i, box in enumerate(boxes):
        controller.connect("churn", box.id, EndpointOptions(ipv4_address=f"10.121.0.{10 + i}"))

    def teardown(i: int) -> None:
        if i % 2:
            controller.disconnect("churn", boxes[i].id)
        controller.delete_sandbox(boxes[i].id)

    _, errors = _in_threads(THREADS, teardown)
    assert errors == []
    assert controller.sandboxes() == [] and controller.endpoints() == []
    assert controller.store.list("endpoint/") == [] and controller.store.list("sandbox/") == []
    assert list(controller.netns_dir.iterdir()) == []
    # every address is free again
    box = controller.create_sandbox()
    for i in range(THREADS):
        option = EndpointOptions(ipv4_address=f"10.121.0.{10 + i}")
        controller.delete_endpoint(controller.create_endpoint("churn", option).id)
    controller.connect("churn", box.id, EndpointOptions(ipv4_address="10.121.0.10"))
    controller.disconnect("churn", box.id)
    controller.delete_network(net.id)
    controller.host.drain_deletions()
    assert link(f"br-{net.id[:12]}") is None


def test_concurrent_create_of_one_name_succeeds_once(controller: Controller) -> None:
    before = set(links())

    def create(i: int):
        return controller.create_network(NetworkRequest("same"))

    results, errors = _in_threads(8, create)
    made = [r for r in results if r is not None]
    assert len(made) == 1
    assert len(errors) == 7 and all(isinstance(e, Conflict) for e in errors), errors
    assert [n.name for n in controller.networks()].count("same") == 1
    assert set(links()) - before == {f"br-{made[0].id[:12]}"}
    assert len(controller.store.list("network/")) == 4
    # the losers kept no pool: the next automatic network takes the next subnet
    assert [p.subnet for p in made[0].ipv4_pools] == ["172.18.0.0/16"]
    other = controller.create_network(NetworkRequest("other"))
    assert [p.subnet for p in other.ipv4_pools] == ["172.19.0.0/16"]


def test_concurrent_creates_of_different_names_get_distinct_pools(
    controller: Controller,
) -> None:
    def create(i: int):
        return controller.create_network(NetworkRequest(f"net{i}"))

    results, errors = _in_threads(10, create)
    assert errors == []
    subnets = sorted(n.ipv4_pools[0].subnet for n in results)
    assert subnets == sorted(f"172.{octet}.0.0/16" for octet in range(18, 28))
    for net in results:
        bridge = f"br-{net.id[:12]}"
        assert addresses(bridge, family="4") == [net.ipv4_pools[0].gateway]


def test_one_sandbox_joins_many_networks_concurrently(controller: Controller) -> None:
    count = 6
    for i in range(count):
        controller.create_network(
            NetworkRequest(f"multi{i}", ipam_config=[IpamRequest(subnet=f"10.13{i}.0.0/24")])
        )
    sandbox = controller.create_sandbox()
    results, errors = _in_threads(count, lambda i: controller.connect(f"multi{i}", sandbox.id))
    assert errors == []
    assert sorted(e.ifname for e in results) == [f"eth{i}" for i in range(count)]
    assert sorted(links(sandbox.key)) == sorted(["lo", *(f"eth{i}" for i in range(count))])
    for endpoint in results:
        assert addresses(endpoint.ifname, sandbox.key, family="4") == [endpoint.ipv4_address]
    defaults = ip_json("-4", "route", "show", "default", netns=sandbox.key)
    # whatever the order they joined in, the default route is the first network's by name
    first = min(results, key=lambda e: controller.network(e.network_id).name)
    assert [(r["gateway"], r["dev"]) for r in defaults] == [(first.gateway_v4, first.ifname)]


def test_delete_network_racing_connects_leaves_a_consistent_state(
    controller: Controller,
) -> None:
    net = controller.create_network(
        NetworkRequest("racy", ipam_config=[IpamRequest(subnet="10.140.0.0/24")])
    )
    bridge = f"br-{net.id[:12]}"
    boxes = [controller.create_sandbox() for _ in range(8)]

    def work(i: int):
        if i == 8:
            return controller.delete_network(net.id)
        return controller.connect(net.id, boxes[i].id)

    results, errors = _in_threads(9, work)
    controller.host.drain_deletions()
    connected = [r for r in results[:8] if r is not None]
    if link(bridge) is None:  # the delete won: nothing may hang on the vanished network
        assert connected == []
        assert controller.endpoints() == [] and controller.store.list("endpoint/") == []
        assert host_veths() == {}
    else:  # the delete lost: it was refused and every connect that succeeded works
        assert any(e.status == 403 for e in errors if hasattr(e, "status"))
        assert len(host_veths(bridge)) == len(connected) == len(controller.endpoints())
    for box in boxes:
        inside = sorted(links(box.key))
        assert inside in (["lo"], ["eth0", "lo"])
