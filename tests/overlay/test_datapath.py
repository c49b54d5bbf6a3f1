"""The overlay's data path on simulated hosts: containers on different hosts reach each other
across the VXLAN (ICMP and TCP, IPv4 and IPv6), with nothing flooded between hosts, and the
kernel objects are exactly the documented ones (a namespace per network, joined to the host by
its uplink), made on the first local join and gone after the last leave."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

from cnm.drivers.overlay import BRIDGE, NAMESPACE_OPTION, OPT_VNI, VXLAN, uplink_name

from .hosts import (
    MemoryIds,
    OverlayHost,
    TcpServer,
    introduce,
    overlay_pair,
    overlay_spec,
    own_links,
    settled_links,
)

Hosts = Callable[[int], list[OverlayHost]]


def vxlan_stats(host: OverlayHost, network_id: str) -> tuple[int, int]:
    command = ("ip", "-s", "-j", "link", "show", "dev", VXLAN)
    (link,) = json.loads(host.network_run(network_id, *command))
    return link["stats64"]["tx"]["packets"], link["stats64"]["rx"]["packets"]


def test_containers_on_two_hosts_reach_each_other_across_the_vxlan(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    h1, h2, spec, a, b = overlay_pair(make_hosts, ids)

    assert a.ping(b.ip) and b.ping(a.ip)
    server = TcpServer(b.key, "b", 7000)
    try:
        assert a.tcp(b.ip, 7000) == f"b {a.ip}"  # no translation inside the network
    finally:
        server.close()
    tx, rx = vxlan_stats(h1, spec.network_id)
    assert tx > 0 and rx > 0, "the packets did not cross the VXLAN device"
    assert vxlan_stats(h2, spec.network_id)[1] > 0


def test_the_kernel_objects_are_the_documented_ones(make_hosts: Hosts, ids: MemoryIds) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1")
    h1.driver.create_network(spec)
    assert own_links(h1) == [], "learning of a network makes nothing in the kernel"

    box = h1.attach(spec, "10.100.0.2/24")
    nid = spec.network_id
    uplink = uplink_name(nid)
    assert own_links(h1) == [f"netns:{nid}", f"ov-{nid[:12]}"]
    host_end = h1.links()[uplink]
    assert host_end["linkinfo"]["info_kind"] == "veth" and host_end["mtu"] == 1450
    assert host_end["ifalias"] == f"cnm:overlay:{nid}"
    links = h1.network_links(nid)
    assert sorted(links) == sorted(["lo", BRIDGE, VXLAN, "uplink", f"veth{box.endpoint_id[:11]}"])
    bridge, vxlan = links[BRIDGE], links[VXLAN]
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert bridge["ifalias"] == vxlan["ifalias"] == f"cnm:overlay:{nid}"
    assert bridge["mtu"] == vxlan["mtu"] == links["uplink"]["mtu"] == 1450
    data = vxlan["linkinfo"]["info_data"]
    assert data["id"] == int(spec.options[OPT_VNI]) == 4096
    assert data["local"] == "10.77.0.1"
    assert data["port"] == 4789
    assert data["learning"] is False and data["proxy"] is True
    assert "group" not in data and "remote" not in data
    assert vxlan["master"] == BRIDGE
    veth = f"veth{box.endpoint_id[:11]}"
    assert links[veth]["master"] == BRIDGE and links[veth]["mtu"] == 1450
    addresses = h1.network_run(nid, "ip", "-4", "-o", "addr", "show", "dev", BRIDGE)
    assert "10.100.0.1/24" in addresses
    assert "fe80::2/64" in h1.network_run(nid, "ip", "-6", "-o", "addr", "show", "dev", "uplink")
    assert "fe80::1/64" in h1.run("ip", "-6", "-o", "addr", "show", "dev", uplink)
    assert h1.network_run(nid, "ip", "-4", "addr", "show", "dev", "uplink") == ""
    assert h1.run("ip", "-4", "addr", "show", "dev", uplink) == "", "no IPv4 claimed"
    routes = h1.run("ip", "route", "show", "10.100.0.0/24")
    assert f"via inet6 fe80::2 dev {uplink}" in routes
    assert "via inet6 fe80::1 dev uplink" in h1.network_run(nid, "ip", "route", "show", "default")
    for name in ("iptables", "ip6tables", "arptables"):
        key = f"/proc/sys/net/bridge/bridge-nf-call-{name}"
        found = h1.network_run(nid, "sh", "-c", f"cat {key} 2>/dev/null || echo absent")
        assert found.strip() in ("0", "absent"), f"{key}: the bridge's frames skip netfilter"
    assert h1.fdb(nid) == [], "no all-zeros entry: nothing floods"
    assert box.info.gateway == ipaddress.ip_address("10.100.0.1") and box.info.mtu == 1450
    assert box.run("ip", "-j", "link", "show", "eth0").count('"mtu":1450') == 1
    assert h1.driver.network_info(nid) == {
        OPT_VNI: "4096",
        "com.docker.network.bridge.name": uplink,
        NAMESPACE_OPTION: h1.namespace(nid),
    }

    h1.detach(box)
    assert settled_links(h1, []) == [], "the last leave removes the namespace and the uplink"
    assert h1.run("ip", "route", "show", "10.100.0.0/24") == ""


def test_the_mtu_option_sets_every_link(make_hosts: Hosts, ids: MemoryIds) -> None:
    (h1,) = make_hosts(1)
    spec = overlay_spec(ids, h1.driver, "ov1", options={"com.docker.network.driver.mtu": "1400"})
    h1.driver.create_network(spec)
    box = h1.attach(spec, "10.100.0.2/24")
    links = h1.network_links(spec.network_id)
    assert links[BRIDGE]["mtu"] == links[VXLAN]["mtu"] == links["uplink"]["mtu"] == 1400
    assert links[f"veth{box.endpoint_id[:11]}"]["mtu"] == 1400
    assert h1.links()[uplink_name(spec.network_id)]["mtu"] == 1400
    assert box.info.mtu == 1400


def test_ipv6_crosses_hosts_through_the_neighbour_proxy(make_hosts: Hosts, ids: MemoryIds) -> None:
    h1, _, spec, a, b = overlay_pair(make_hosts, ids, subnet_v6="fd00:100::/64")
    assert a.info.gateway_v6 == ipaddress.ip_address("fd00:100::1")
    assert a.ping(b.ip6) and b.ping(a.ip6)
    neighbours = {n["dst"]: n["lladdr"] for n in h1.neighbours(spec.network_id)}
    assert neighbours == {b.ip: b.mac, b.ip6: b.mac}


def test_three_hosts_full_mesh(make_hosts: Hosts, ids: MemoryIds) -> None:
    hosts = make_hosts(3)
    spec = overlay_spec(ids, hosts[0].driver, "ov1")
    for host in hosts:
        host.driver.create_network(spec)
    boxes = [
        host.attach(spec, f"10.100.0.{10 + 2 * i + j}/24", name=f"c{j}")
        for i, host in enumerate(hosts)
        for j in range(2)
    ]
    introduce(*boxes)
    for box in boxes:
        for other in boxes:
            if other is not box:
                assert box.ping(other.ip), f"{box.ip} -> {other.ip}"


def test_frames_between_containers_skip_the_hosts_netfilter(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    """With br_netfilter's bridge-nf-call-iptables on in the hosts (as on a Docker host), a
    TCP flow between containers on two hosts leaves no conntrack entry in either host: its
    frames are bridged in the network's namespace. The tunnel's UDP flow is tracked."""
    h1, h2, _, a, b = overlay_pair(make_hosts, ids)
    for host in (h1, h2):
        setting = host.run("sh", "-c", "cat /proc/sys/net/bridge/bridge-nf-call-iptables || true")
        if setting.strip():
            host.run("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    server = TcpServer(b.key, "b", 7000)
    try:
        assert a.tcp(b.ip, 7000) == f"b {a.ip}"
    finally:
        server.close()
    for host in (h1, h2):
        tracked = host.run("cat", "/proc/net/nf_conntrack")
        assert "dport=4789" in tracked, "the host tracks the tunnel"
        assert f"src={a.ip} dst={b.ip}" not in tracked
