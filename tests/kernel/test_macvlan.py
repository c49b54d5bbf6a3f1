"""The macvlan driver against the real kernel: containers (controller sandboxes) on a LAN
whose router lives in an "outside" namespace (``lan.py``).

Each test's host namespace is fresh, so every test has its own parent and LAN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cnm.controller import Controller
from cnm.model import EndpointOptions, IpamRequest, Network, NetworkRequest, PortRequest
from cnm.osl.namespace import NetNamespace
from tests.support.lan import Lan, lan, ping

from .probes import addresses, default_routes, link, links, run

MakeController = Callable[..., Controller]


def _macvlan(
    ctl: Controller,
    name: str,
    *configs: IpamRequest,
    parent: str | None = None,
    mode: str | None = None,
    **kwargs: object,
) -> Network:
    options = {}
    if parent is not None:
        options["parent"] = parent
    if mode is not None:
        options["macvlan_mode"] = mode
    return ctl.create_network(
        NetworkRequest(
            name=name, driver="macvlan", options=options, ipam_config=list(configs), **kwargs
        )
    )


def _child(key: str, ifname: str = "eth0") -> dict:
    found = link(ifname, key)
    assert found is not None, f"no {ifname} in {key}"
    return found


@pytest.fixture
def lan77(host_netns: NetNamespace) -> Iterator[Lan]:
    with lan(host_netns.path, ["10.77.0.1/24", "10.78.0.1/24", "fd77::1/64"]) as made:
        yield made


def test_containers_reach_the_router_and_each_other_with_their_own_macs(
    controller: Controller, lan77: Lan
) -> None:
    host_links = set(links())
    net = _macvlan(controller, "lan", IpamRequest(subnet="10.77.0.0/24"), parent=lan77.parent)
    assert net.ipv4_pools[0].gateway == "10.77.0.1/24"  # the first usable address
    assert set(links()) == host_links  # nothing in the host: the gateway is the LAN's router
    assert all("10.77.0.1/24" not in addresses(name) for name in links())
    boxes = [controller.create_sandbox() for _ in range(2)]
    endpoints = [controller.connect("lan", box.id) for box in boxes]
    assert [e.ipv4_address for e in endpoints] == ["10.77.0.2/24", "10.77.0.3/24"]
    assert [e.mac_address for e in endpoints] == ["02:42:0a:4d:00:02", "02:42:0a:4d:00:03"]
    for box, endpoint in zip(boxes, endpoints, strict=True):
        child = _child(box.key)
        assert child["linkinfo"]["info_kind"] == "macvlan"
        assert child["linkinfo"]["info_data"]["mode"] == "bridge"
        assert child["address"] == endpoint.mac_address
        assert addresses("eth0", box.key) == [endpoint.ipv4_address]
        assert [(r["gateway"], r["dev"]) for r in default_routes(box.key)] == [
            ("10.77.0.1", "eth0")
        ]
        ping(box.key, "10.77.0.1")
    ping(boxes[0].key, "10.77.0.3")
    ping(boxes[1].key, "10.77.0.2")
    assert set(links()) == host_links  # the children live only in the sandboxes
    neighbours = lan77.neighbours()
    for endpoint in endpoints:
        address = endpoint.ipv4_address.split("/")[0]
        assert neighbours[address] == endpoint.mac_address  # its own MAC on the wire


def test_gateway_aux_addresses_several_subnets_and_ipv6(controller: Controller, lan77: Lan) -> None:
    _macvlan(
        controller,
        "lan",
        IpamRequest(
            subnet="10.77.0.0/24", gateway="10.77.0.1", aux_addresses={"printer": "10.77.0.2"}
        ),
        IpamRequest(subnet="10.78.0.0/24"),
        IpamRequest(subnet="fd77::/64"),
        parent=lan77.parent,
        enable_ipv6=True,
    )
    first, second = controller.create_sandbox(), controller.create_sandbox()
    one = controller.connect("lan", first.id)
    assert one.ipv4_address == "10.77.0.3/24"  # .1 the gateway, .2 kept for the printer
    assert one.ipv6_address == "fd77::2/64"
    two = controller.connect("lan", second.id, EndpointOptions(ipv4_address="10.78.0.9"))
    assert two.gateway_v4 == "10.78.0.1"  # the gateway of its own subnet
    assert default_routes(second.key)[0]["gateway"] == "10.78.0.1"
    assert default_routes(first.key, "6")[0]["gateway"] == "fd77::1"
    ping(first.key, "10.77.0.1")
    ping(second.key, "10.78.0.1")
    ping(first.key, "fd77::1")


@pytest.mark.parametrize("mode", ["private", "vepa"])
def test_private_and_vepa_children_reach_the_lan_but_not_each_other(
    controller: Controller, lan77: Lan, mode: str
) -> None:
    """Private mode never lets children talk; vepa sends everything to the switch, which here
    (a veth, no hairpin) does not send it back."""
    _macvlan(controller, "lan", IpamRequest(subnet="10.77.0.0/24"), parent=lan77.parent, mode=mode)
    boxes = [controller.create_sandbox() for _ in range(2)]
    for box in boxes:
        controller.connect("lan", box.id)
        assert _child(box.key)["linkinfo"]["info_data"]["mode"] == mode
        ping(box.key, "10.77.0.1")
    ping(boxes[0].key, "10.77.0.3", expect=False, timeout_s=1)


def test_passthru_gives_the_parent_to_one_container(controller: Controller, lan77: Lan) -> None:
    parent = link(lan77.parent)
    assert parent is not None
    _macvlan(
        controller, "lan", IpamRequest(subnet="10.77.0.0/24"), parent=lan77.parent, mode="passthru"
    )
    box = controller.create_sandbox()
    endpoint = controller.connect("lan", box.id)
    assert endpoint.mac_address == parent["address"]
    assert _child(box.key)["address"] == parent["address"]
    ping(box.key, "10.77.0.1")


def test_internal_network_on_the_parent_has_no_default_route(
    controller: Controller, lan77: Lan
) -> None:
    _macvlan(
        controller, "lan", IpamRequest(subnet="10.77.0.0/24"), parent=lan77.parent, internal=True
    )
    box = controller.create_sandbox()
    endpoint = controller.connect("lan", box.id)
    assert endpoint.gateway_v4 is None
    assert default_routes(box.key) == []
    ping(box.key, "10.77.0.1")  # the LAN's own subnet is on-link


def test_without_parent_containers_reach_only_each_other_on_a_placeholder(
    controller: Controller,
) -> None:
    net = _macvlan(controller, "island", IpamRequest(subnet="10.79.0.0/24"))
    placeholder = link(f"dm-{net.id[:12]}")
    assert placeholder is not None
    assert placeholder["linkinfo"]["info_kind"] == "bridge"
    assert placeholder["ifalias"] == f"cnm:macvlan:{net.id}"
    assert "UP" in placeholder["flags"] and "LOWER_UP" in placeholder["flags"]
    boxes = [controller.create_sandbox() for _ in range(2)]
    for box in boxes:
        endpoint = controller.connect("island", box.id)
        assert endpoint.gateway_v4 is None
        assert default_routes(box.key) == []
    ping(boxes[0].key, "10.79.0.3")
    ping(boxes[1].key, "10.79.0.2")
    for box in boxes:
        controller.delete_sandbox(box.id)
    controller.delete_network("island")
    controller.host.drain_deletions()
    assert link(f"dm-{net.id[:12]}") is None


def test_leave_removes_the_child_and_a_new_join_gets_it_again(
    controller: Controller, lan77: Lan
) -> None:
    _macvlan(
        controller,
        "lan",
        IpamRequest(subnet="10.77.0.0/24"),
        parent=lan77.parent,
    )
    controller.create_network(NetworkRequest(name="br", ipam_config=[IpamRequest("10.90.0.0/24")]))
    box = controller.create_sandbox()
    controller.connect("br", box.id)
    controller.connect("lan", box.id)
    assert _child(box.key, "eth1")["linkinfo"]["info_kind"] == "macvlan"
    controller.disconnect("lan", box.id)
    assert link("eth1", box.key) is None
    again = controller.connect("lan", box.id)
    assert again.ifname == "eth1"
    ping(box.key, "10.77.0.1")


def test_mtu_option_is_honoured(controller: Controller, lan77: Lan) -> None:
    controller.create_network(
        NetworkRequest(
            name="lan",
            driver="macvlan",
            options={"parent": lan77.parent, "com.docker.network.driver.mtu": "1400"},
            ipam_config=[IpamRequest(subnet="10.77.0.0/24")],
        )
    )
    box = controller.create_sandbox()
    controller.connect("lan", box.id)
    assert _child(box.key)["mtu"] == 1400


def test_published_ports_are_ignored_as_docker_does(controller: Controller, lan77: Lan) -> None:
    _macvlan(controller, "lan", IpamRequest(subnet="10.77.0.0/24"), parent=lan77.parent)
    box = controller.create_sandbox()
    controller.connect("lan", box.id)
    assert controller.publish(box.id, [PortRequest("tcp", 80, host_port=8080)]) == []
    assert controller.published(box.id) == []
    ruleset = run("nft", "list", "ruleset")
    assert "8080" not in ruleset


def test_host_reaches_containers_only_through_a_macvlan_of_its_own(
    controller: Controller, lan77: Lan, host_netns: NetNamespace
) -> None:
    """The documented limitation and its usual workaround (README)."""
    _macvlan(controller, "lan", IpamRequest(subnet="10.77.0.0/24"), parent=lan77.parent)
    box = controller.create_sandbox()
    controller.connect("lan", box.id)
    run("ip", "addr", "add", "10.77.0.100/24", "dev", lan77.parent)
    ping(host_netns.path, "10.77.0.1")  # the host itself is on the LAN
    ping(host_netns.path, "10.77.0.2", expect=False, timeout_s=1)
    run("ip", "link", "add", "mv-host", "link", lan77.parent, "type", "macvlan", "mode", "bridge")
    run("ip", "addr", "add", "10.77.0.101/32", "dev", "mv-host")
    run("ip", "link", "set", "mv-host", "up")
    run("ip", "route", "add", "10.77.0.2/32", "dev", "mv-host")
    ping(host_netns.path, "10.77.0.2")
