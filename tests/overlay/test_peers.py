"""Remote endpoints (peers) in the kernel: one permanent FDB entry (MAC -> VTEP, ``self``) and
one permanent neighbour entry per address on the VXLAN device, programmed when the device
exists, following add_peer / remove_peer / sync_peers, idempotent, and gone with the device."""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnm.driverapi import Peer
from cnm.drivers.overlay import VXLAN
from cnm.osl.neighbour_table import NeighbourTableRoom

from .hosts import (
    Box,
    MemoryIds,
    OverlayHost,
    overlay_pair,
    overlay_spec,
    own_links,
    settled_links,
)

Hosts = Callable[[int], list[OverlayHost]]


def remote(n: int, vtep: str = "10.77.0.2", address: str | None = None) -> Peer:
    """A made-up endpoint on another host: MAC 02:42:0a:64:xx:yy, address 10.100.1xx.yy."""
    hi, lo = divmod(n, 256)
    return Peer(
        endpoint_id=f"{n:064x}",
        host="h2",
        vtep=ipaddress.ip_address(vtep),
        mac_address=f"02:42:0a:64:{hi:02x}:{lo:02x}",
        address=ipaddress.IPv4Interface(address or f"10.100.{100 + hi}.{lo}/16"),
    )


def programmed(
    host: OverlayHost, network_id: str
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The device's (MAC, VTEP) FDB entries and (address, MAC) neighbour entries."""
    fdb = {(e["mac"], e["dst"]) for e in host.fdb(network_id)}
    neighbours = {(n["dst"], n["lladdr"]) for n in host.neighbours(network_id)}
    return fdb, neighbours


def expected(*peers: Peer) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    fdb = {(p.mac_address, str(p.vtep)) for p in peers}
    neighbours = {(str(p.address.ip), p.mac_address) for p in peers if p.address}
    return fdb, neighbours


def test_entries_follow_add_and_remove_and_carry_the_traffic(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    h1, _, spec, a, b = overlay_pair(make_hosts, ids)
    assert programmed(h1, spec.network_id) == expected(b.peer())
    lines = h1.network_run(spec.network_id, "bridge", "fdb", "show", "dev", VXLAN)
    (line,) = [line for line in lines.splitlines() if line.startswith(b.mac)]
    assert " dst 10.77.0.2 " in line and line.endswith(" self permanent")
    lines = h1.network_run(spec.network_id, "ip", "neigh", "show", "dev", VXLAN)
    assert f"{b.ip} lladdr {b.mac} PERMANENT" in lines
    assert a.ping(b.ip)

    h1.driver.remove_peer(spec.network_id, b.peer())
    assert programmed(h1, spec.network_id) == (set(), set())
    a.run("ip", "neigh", "flush", "dev", "eth0")
    assert not a.ping(b.ip, tries=1), "without its entries the peer is unreachable"
    h1.driver.add_peer(spec.network_id, b.peer())
    assert a.ping(b.ip)


def test_add_peer_is_idempotent_and_replaces_a_changed_peer(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    h1.attach(spec, "10.100.0.2/24")
    peer = remote(5)
    for _ in range(3):
        h1.driver.add_peer(spec.network_id, peer)
    assert programmed(h1, spec.network_id) == expected(peer)

    moved = dataclasses.replace(peer, vtep=ipaddress.ip_address("10.77.0.3"))
    h1.driver.add_peer(spec.network_id, moved)
    assert programmed(h1, spec.network_id) == expected(moved)
    readdressed = dataclasses.replace(moved, address=ipaddress.IPv4Interface("10.100.9.9/16"))
    h1.driver.add_peer(spec.network_id, readdressed)
    assert programmed(h1, spec.network_id) == expected(readdressed)


def test_a_mac_or_address_another_peer_holds_stays_programmed(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    h1.attach(spec, "10.100.0.2/24")
    old = remote(5)
    new = dataclasses.replace(old, endpoint_id="f" * 64, vtep=ipaddress.ip_address("10.77.0.3"))
    h1.driver.add_peer(spec.network_id, old)
    h1.driver.add_peer(spec.network_id, new)  # the same MAC and address, now on another host
    h1.driver.remove_peer(spec.network_id, old)  # the old one's removal arrives late
    assert programmed(h1, spec.network_id) == expected(new)


def test_peers_wait_for_the_first_local_join_and_go_with_the_last_leave(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    early = remote(1)
    h1.driver.add_peer(spec.network_id, early)  # before the network is known here
    h1.driver.create_network(spec)
    known = [remote(n) for n in range(2, 6)]
    for peer in known:
        h1.driver.add_peer(spec.network_id, peer)
    assert own_links(h1) == [], "peers alone make no device"

    first = h1.attach(spec, "10.100.0.2/24", name="first")
    second = h1.attach(spec, "10.100.0.3/24", name="second")
    assert programmed(h1, spec.network_id) == expected(early, *known)
    h1.detach(first)
    assert programmed(h1, spec.network_id) == expected(early, *known)
    h1.detach(second)
    assert settled_links(h1, []) == []

    h1.driver.remove_peer(spec.network_id, known[0])
    h1.attach(spec, "10.100.0.2/24")
    assert programmed(h1, spec.network_id) == expected(early, *known[1:])


def test_peers_on_this_host_are_not_programmed(make_hosts: Hosts, ids: MemoryIds) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    h1.attach(spec, "10.100.0.2/24")
    h1.driver.add_peer(spec.network_id, remote(7, vtep=h1.sim.address))
    assert programmed(h1, spec.network_id) == (set(), set())


def test_sync_peers_leaves_exactly_the_given_peers(make_hosts: Hosts, ids: MemoryIds) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    h1.attach(spec, "10.100.0.2/24")
    peers = [remote(n) for n in range(1, 7)]
    for peer in peers[:4]:
        h1.driver.add_peer(spec.network_id, peer)
    nid = spec.network_id
    h1.network_run(nid, "bridge", "fdb", "add", "02:42:0a:64:99:99", "dev", VXLAN,
                   "dst", "10.77.0.9", "self", "permanent")  # fmt: skip
    h1.network_run(nid, "ip", "neigh", "add", "10.100.99.99", "lladdr", "02:42:0a:64:99:99",
                   "dev", VXLAN, "nud", "permanent")  # fmt: skip

    h1.driver.sync_peers(spec.network_id, peers[2:])
    assert programmed(h1, spec.network_id) == expected(*peers[2:])
    h1.driver.remove_peer(spec.network_id, peers[5])
    assert programmed(h1, spec.network_id) == expected(*peers[2:5])


def test_concurrent_peers_and_joins_end_in_the_full_set(make_hosts: Hosts, ids: MemoryIds) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    peers = [remote(n) for n in range(1, 201)]
    boxes: list[Box] = []

    def announce(share: list[Peer]) -> None:
        for peer in share:
            h1.driver.add_peer(spec.network_id, peer)

    threads = [threading.Thread(target=announce, args=(peers[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for n in range(3):
        boxes.append(h1.attach(spec, f"10.100.0.{250 + n}/16", name=f"c{n}"))
    h1.detach(boxes.pop(0))
    for thread in threads:
        thread.join()
    assert programmed(h1, spec.network_id) == expected(*peers)


def read_thresholds() -> list[str]:
    """The kernel's ARP-table thresholds, as the calling thread's namespace shows them."""
    keys = [f"/proc/sys/net/ipv4/neigh/default/gc_thresh{n}" for n in (1, 2, 3)]
    return [Path(key).read_text().strip() if Path(key).exists() else "" for key in keys]


@pytest.fixture
def machine_thresholds() -> Iterator[list[str]]:
    """The thresholds the machine had, read before ``host_netns`` moves the test's thread
    out of the initial namespace (the only one that shows them) and checked again after."""
    before = read_thresholds()
    if not all(before):
        pytest.skip("the suite does not run in the initial namespace")
    yield before
    assert read_thresholds() == before, "the machine's neighbour thresholds changed"


def test_many_peers_leave_the_machines_neighbour_thresholds_alone(
    machine_thresholds: list[str], make_hosts: Hosts, ids: MemoryIds
) -> None:
    """A host that is not the initial namespace has no gc_thresh sysctls (they belong to the
    kernel's one table): the driver programs past the default gc_thresh1 and touches none."""
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1", "10.100.0.0/16")
    h1.driver.create_network(spec)
    h1.attach(spec, "10.100.0.2/16")
    peers = [remote(n) for n in range(1, 301)]
    for peer in peers:
        h1.driver.add_peer(spec.network_id, peer)
    assert programmed(h1, spec.network_id) == expected(*peers)
    assert read_thresholds() == ["", "", ""], "a namespace shows no thresholds of its own"
    assert NeighbourTableRoom(h1.host).ensure(4, 100_000) is None
