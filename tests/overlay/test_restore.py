"""A restarted daemon's overlay driver (``restore``): it adopts the namespaces of networks with
joined endpoints here, keeping their forwarding entries so containers keep reaching other
hosts before the store is back; recreates what is missing or no longer matches (bridge, VXLAN
device, uplink); removes the namespaces of networks with no joined endpoint here, tagged links
no record names (an earlier layout's too) and stray veths; and leaves the bridge driver's
links alone, as that driver leaves the overlay's."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable

from cnm.driverapi import EndpointSpec, NetworkSpec
from cnm.drivers.overlay import BRIDGE, VXLAN, uplink_name

from .hosts import (
    Box,
    MemoryIds,
    OverlayHost,
    introduce,
    network_spec,
    overlay_pair,
    overlay_spec,
    own_links,
    settled_links,
)

Hosts = Callable[[int], list[OverlayHost]]


def endpoint_spec(box: Box, joined: bool = True) -> EndpointSpec:
    return EndpointSpec(
        box.network_id,
        box.endpoint_id,
        address=box.address,
        address_v6=box.address_v6,
        mac_address=box.mac,
        joined=joined,
    )


def restart(host: OverlayHost, networks: list[NetworkSpec], boxes: list[Box]) -> None:
    """Stop the host's parts as a stopping daemon does and start new ones that restore."""
    host.stop()
    host.start()
    host.driver.restore(networks, [endpoint_spec(box) for box in boxes])


def indexes(host: OverlayHost, network_id: str) -> tuple[int, int, int]:
    inside = host.network_links(network_id)
    uplink = host.links()[uplink_name(network_id)]
    return inside[BRIDGE]["ifindex"], inside[VXLAN]["ifindex"], uplink["ifindex"]


def firewall_bridges(host: OverlayHost) -> str:
    return host.run("nft", "list", "set", "inet", "cnm", "bridges")


def test_a_restart_adopts_the_devices_and_their_entries(make_hosts: Hosts, ids: MemoryIds) -> None:
    h1, _, spec, a, b = overlay_pair(make_hosts, ids)
    before = indexes(h1, spec.network_id)

    restart(h1, [spec], [a])
    assert indexes(h1, spec.network_id) == before
    assert a.ping(b.ip), "the entries stayed: no add_peer was needed"
    assert uplink_name(spec.network_id) in firewall_bridges(h1)
    h1.driver.add_peer(spec.network_id, b.peer())  # the store's listing, once it answers
    h1.driver.sync_peers(spec.network_id, [b.peer()])
    assert a.ping(b.ip)

    h1.detach(a)
    assert settled_links(h1, []) == []
    assert uplink_name(spec.network_id) not in firewall_bridges(h1)


def test_missing_or_changed_devices_are_made_again(make_hosts: Hosts, ids: MemoryIds) -> None:
    h1, h2 = make_hosts(2)
    spec = overlay_spec(ids, h1.driver, "ov1")
    other = overlay_spec(ids, h1.driver, "ov2", "10.101.0.0/24")
    for host in (h1, h2):
        host.driver.create_network(spec)
        host.driver.create_network(other)
    a = h1.attach(spec, "10.100.0.2/24", name="a")
    c = h1.attach(other, "10.101.0.2/24", name="c")
    b = h2.attach(spec, "10.100.0.3/24", name="b")
    d = h2.attach(other, "10.101.0.3/24", name="d")
    introduce(a, b)
    introduce(c, d)

    h1.stop()
    h1.network_run(spec.network_id, "ip", "link", "del", BRIDGE)  # the VXLAN device stays
    h1.run("ip", "link", "del", uplink_name(spec.network_id))  # and the uplink goes
    h1.network_run(other.network_id, "ip", "link", "del", VXLAN)
    h1.network_run(other.network_id, "ip", "link", "add", VXLAN, "type", "vxlan", "id", "99",
                   "local", h1.sim.address, "dstport", "4789")  # fmt: skip
    h1.start()
    h1.driver.restore([spec, other], [endpoint_spec(a), endpoint_spec(c)])

    for network, box in ((spec, a), (other, c)):
        links = h1.network_links(network.network_id)
        assert links[VXLAN]["linkinfo"]["info_data"]["id"] == int(network.options[
            "com.docker.network.driver.overlay.vxlanid_list"])  # fmt: skip
        assert links[VXLAN]["master"] == BRIDGE
        assert links[f"veth{box.endpoint_id[:11]}"]["master"] == BRIDGE
        assert uplink_name(network.network_id) in firewall_bridges(h1)
    uplink = uplink_name(spec.network_id)
    assert f"via inet6 fe80::2 dev {uplink}" in h1.run("ip", "route", "show", "10.100.0.0/24")
    introduce(a, b)
    introduce(c, d)
    assert a.ping(b.ip) and c.ping(d.ip)
    a.check_route("10.100.0.1")
    assert a.ping("10.100.0.1"), "the bridge made again carries the gateway"


def test_orphans_are_removed_and_the_bridge_driver_is_left_alone(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    (h1,) = make_hosts(1)
    kept = overlay_spec(ids, h1.driver, "kept")
    idle = overlay_spec(ids, h1.driver, "idle", "10.101.0.0/24")
    gone = overlay_spec(ids, h1.driver, "gone", "10.102.0.0/24")
    bridged = network_spec("br", "10.200.0.0/24")
    for spec in (kept, idle, gone):
        h1.driver.create_network(spec)
    h1.bridge_driver.create_network(bridged)
    a = h1.attach(kept, "10.100.0.2/24", name="a")
    stray = h1.attach(kept, "10.100.0.3/24", name="stray")
    idle_box = h1.attach(idle, "10.101.0.2/24", name="idle")
    h1.attach(gone, "10.102.0.2/24", name="gone")
    plain = h1.attach(bridged, "10.200.0.2/24", name="plain", driver=h1.bridge_driver)

    h1.stop()
    h1.start()
    h1.bridge_driver.restore([bridged], [endpoint_spec(plain)])
    h1.driver.restore(
        [kept, idle],  # "gone" was deleted while the daemon was down
        [endpoint_spec(a), endpoint_spec(idle_box, joined=False)],  # "stray" never recorded
    )
    h1.host.drain_deletions()
    expected = sorted(
        [
            uplink_name(kept.network_id),
            f"netns:{kept.network_id}",
            f"br-{bridged.network_id[:12]}",
            f"veth{plain.endpoint_id[:11]}",
        ]
    )
    assert own_links(h1) == expected
    inside = h1.network_links(kept.network_id)
    assert sorted(inside) == sorted(["lo", BRIDGE, VXLAN, "uplink", f"veth{a.endpoint_id[:11]}"])
    assert f"veth{stray.endpoint_id[:11]}" not in inside
    assert plain.run("ip", "-4", "-o", "addr", "show", "eth0").count("10.200.0.2/24") == 1


def test_a_restart_keeps_egress_working(make_hosts: Hosts, ids: MemoryIds) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    a = h1.attach(spec, "10.100.0.2/24", name="a")
    restart(h1, [spec], [a])
    rules = h1.run("nft", "list", "table", "inet", "cnm")
    assert f'"{uplink_name(spec.network_id)}" . 10.100.0.2' in rules
    assert "10.100.0.0/24" in rules  # masqueraded
    assert a.info.gateway == ipaddress.ip_address("10.100.0.1")
    a.check_route("10.100.0.1")
    assert a.ping("10.100.0.1")


def test_records_that_cannot_be_restored_are_skipped_and_their_devices_go(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    a = h1.attach(spec, "10.100.0.2/24", name="a")
    h1.stop()
    h1.start(advertise_address=None)  # restarted without --cluster-advertise
    h1.driver.restore([spec], [endpoint_spec(a)])
    assert settled_links(h1, []) == []

    h1.stop()
    h1.start()
    h1.driver.restore([], [])
    h1.driver.create_network(spec)
    b = h1.attach(spec, "10.100.0.3/24", name="b")
    broken = dataclasses.replace(spec, options={})  # its VNI lost by whoever rewrote it
    h1.stop()
    h1.start()
    h1.driver.restore([broken], [endpoint_spec(b)])
    assert settled_links(h1, []) == []


def test_deleting_a_network_removes_its_devices_even_with_endpoints_joined(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    h1.attach(spec, "10.100.0.2/24")
    h1.driver.delete_network(spec.network_id)
    h1.host.drain_deletions()
    assert own_links(h1) == []
    assert uplink_name(spec.network_id) not in firewall_bridges(h1)


def test_a_namespace_file_without_its_namespace_is_made_again(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    """A daemon killed between making the namespace's file and mounting it leaves a plain
    file; the restart makes the namespace anew at that path."""
    h1, _, spec, a, b = overlay_pair(make_hosts, ids, introduced=False)
    h1.network_run(spec.network_id, "ip", "link", "del", "vxlan0")  # gone with its namespace
    h1.stop()
    h1.run("umount", h1.namespace(spec.network_id))  # the file stays
    h1.start()
    h1.driver.restore([spec], [endpoint_spec(a)])
    assert sorted(h1.network_links(spec.network_id)) == ["br0", "lo", "uplink", "vxlan0"]
    c = h1.attach(spec, "10.100.0.4/24", name="c")
    introduce(b, c)
    assert c.ping(b.ip) and b.ping(c.ip)


def test_the_layout_before_namespaces_is_replaced(make_hosts: Hosts, ids: MemoryIds) -> None:
    """A daemon upgraded from the layout with the bridge ``ov-<id>`` and the VXLAN device
    ``vx-<id>`` in the host: restore removes them (and the endpoint's veth on the bridge) and
    makes the network's namespace, whose uplink takes the name ``ov-<id>``."""
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "old")
    nid, vni = spec.network_id, spec.options["com.docker.network.driver.overlay.vxlanid_list"]
    key = h1.sandbox("old")
    endpoint_id = "e" * 64
    h1.run("ip", "link", "add", f"ov-{nid[:12]}", "type", "bridge")
    h1.run("ip", "link", "add", f"vx-{nid[:12]}", "master", f"ov-{nid[:12]}", "type", "vxlan",
           "id", vni, "local", h1.sim.address, "dstport", "4789")  # fmt: skip
    for name in (f"ov-{nid[:12]}", f"vx-{nid[:12]}"):
        h1.run("ip", "link", "set", name, "alias", f"cnm:overlay:{nid}")
    h1.run("ip", "link", "add", f"veth{endpoint_id[:11]}", "master", f"ov-{nid[:12]}",
           "type", "veth", "peer", "name", "eth0", "netns", key)  # fmt: skip
    h1.stop()
    h1.start()
    address = ipaddress.IPv4Interface("10.100.0.2/24")
    records = [EndpointSpec(nid, endpoint_id, address=address, joined=True)]
    h1.driver.restore([spec], records)
    h1.host.drain_deletions()
    assert own_links(h1) == sorted([uplink_name(nid), f"netns:{nid}"])
    assert h1.links()[uplink_name(nid)]["linkinfo"]["info_kind"] == "veth"
    assert sorted(h1.network_links(nid)) == ["br0", "lo", "uplink", "vxlan0"]

    # Restored again on the running driver (the cluster store's history was compacted): the
    # namespace is adopted as it is.
    before = indexes(h1, nid)
    h1.driver.restore([spec], records)
    assert indexes(h1, nid) == before


def test_a_network_that_cannot_be_restored_does_not_stop_the_others(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    """While the daemon was down, the host's own network came to overlap one overlay (its
    uplink is gone): restore removes that network's namespace, keeps the other, and returns."""
    (h1,) = make_hosts(1)
    blocked = overlay_spec(ids, h1.driver, "blocked", "10.100.0.0/24")
    kept = overlay_spec(ids, h1.driver, "kept", "10.101.0.0/24")
    for spec in (blocked, kept):
        h1.driver.create_network(spec)
    a = h1.attach(blocked, "10.100.0.2/24", name="a")
    b = h1.attach(kept, "10.101.0.2/24", name="b")
    h1.stop()
    h1.run("ip", "link", "del", uplink_name(blocked.network_id))
    h1.run("ip", "addr", "add", "10.100.0.250/24", "dev", "eth0")
    h1.start()
    h1.driver.restore([blocked, kept], [endpoint_spec(a), endpoint_spec(b)])
    h1.host.drain_deletions()
    assert own_links(h1) == sorted([uplink_name(kept.network_id), f"netns:{kept.network_id}"])
    assert uplink_name(blocked.network_id) not in firewall_bridges(h1)
    assert "dev eth0" in h1.run("ip", "route", "show", "10.100.0.0/24")
    b.check_route("10.101.0.1")
    assert b.ping("10.101.0.1")
