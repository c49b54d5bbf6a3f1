"""Start-up and networks: predefined networks, the default bridge, pools, bridge names, MTU,
deletion — checked against the kernel with ``ip``."""

from __future__ import annotations

import pytest

from cnm.controller import Controller
from cnm.errors import Conflict, Forbidden, Unavailable
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest

from .probes import addresses, host_veths, link, links, run, snapshot

MTU = "com.docker.network.driver.mtu"
BRIDGE_NAME = "com.docker.network.bridge.name"


def _create(ctl: Controller, name: str, subnet: str | None = None, **kwargs: object):
    config = [IpamRequest(subnet=subnet)] if subnet else []
    return ctl.create_network(NetworkRequest(name=name, ipam_config=config, **kwargs))


def test_start_makes_bridge_host_and_none(controller: Controller) -> None:
    by_name = {n.name: n for n in controller.networks()}
    assert set(by_name) == {"bridge", "host", "none"}
    assert by_name["bridge"].driver == "bridge"
    assert by_name["host"].driver == "host"
    assert by_name["none"].driver == "null"
    assert all(n.predefined for n in by_name.values())
    assert [p.subnet for p in by_name["bridge"].ipv4_pools] == ["172.17.0.0/16"]
    assert by_name["host"].ipv4_pools == [] and by_name["none"].ipv4_pools == []
    # host and none make no kernel object: the only new link is the default bridge
    assert sorted(links()) == ["cnm0", "lo"]
    assert sorted(e.key for e in controller.store.list("network/")) == sorted(
        f"network/{n.id}" for n in by_name.values()
    )


def test_default_bridge_device_cnm0_has_gateway_and_is_up(controller: Controller) -> None:
    bridge = controller.network("bridge")
    cnm0 = link("cnm0")
    assert cnm0 is not None
    assert cnm0["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in cnm0["flags"]
    assert cnm0["mtu"] == 1500
    assert cnm0.get("ifalias") == f"cnm:net:{bridge.id}"
    assert addresses("cnm0", family="4") == ["172.17.0.1/16"]
    assert controller.network_info(bridge.id) == {BRIDGE_NAME: "cnm0"}
    routes = run("ip", "-4", "route", "show", "dev", "cnm0")
    assert "172.17.0.0/16" in routes


def test_start_is_idempotent_on_the_same_store(make_controller) -> None:
    first = make_controller()
    ids = sorted(n.id for n in first.networks())
    first.close()
    first.store.close()
    second = make_controller()
    assert sorted(n.id for n in second.networks()) == ids
    assert sorted(links()) == ["cnm0", "lo"]


def test_automatic_pools_in_dockers_order(controller: Controller) -> None:
    second = _create(controller, "second")
    third = _create(controller, "third")
    assert [p.subnet for p in second.ipv4_pools] == ["172.18.0.0/16"]
    assert [p.gateway for p in second.ipv4_pools] == ["172.18.0.1/16"]
    assert [p.subnet for p in third.ipv4_pools] == ["172.19.0.0/16"]
    assert addresses(f"br-{second.id[:12]}", family="4") == ["172.18.0.1/16"]
    assert addresses(f"br-{third.id[:12]}", family="4") == ["172.19.0.1/16"]
    # a deleted network gives its pool back: the next automatic network takes it again
    controller.delete_network("second")
    again = _create(controller, "again")
    assert [p.subnet for p in again.ipv4_pools] == ["172.18.0.0/16"]


def test_automatic_pools_skip_on_link_routes_and_nameservers(
    controller: Controller, host_resolv_conf
) -> None:
    # a host interface on 172.18.5.0/24 (this kernel has no dummy links: a veth pair instead)
    run("ip", "link", "add", "hostlan", "type", "veth", "peer", "name", "hostlan-p")
    run("ip", "addr", "add", "172.18.5.1/24", "dev", "hostlan")
    run("ip", "link", "set", "hostlan", "up")
    run("ip", "link", "set", "hostlan-p", "up")
    host_resolv_conf.write_text(host_resolv_conf.read_text() + "nameserver 172.19.0.53\n")
    net = _create(controller, "avoids")
    assert [p.subnet for p in net.ipv4_pools] == ["172.20.0.0/16"]


def test_user_network_bridge_is_named_after_its_id(controller: Controller) -> None:
    net = _create(controller, "plain", "10.20.0.0/24")
    name = f"br-{net.id[:12]}"
    bridge = link(name)
    assert bridge is not None, f"{name} missing; links: {sorted(links())}"
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in bridge["flags"]
    assert bridge.get("ifalias") == f"cnm:net:{net.id}"
    assert addresses(name, family="4") == ["10.20.0.1/24"]
    assert controller.network_info(net.id) == {BRIDGE_NAME: name}


def test_bridge_name_option_is_honoured(controller: Controller) -> None:
    net = _create(controller, "named", "10.21.0.0/24", options={BRIDGE_NAME: "cnmtest-br"})
    bridge = link("cnmtest-br")
    assert bridge is not None and bridge["linkinfo"]["info_kind"] == "bridge"
    assert addresses("cnmtest-br", family="4") == ["10.21.0.1/24"]
    assert link(f"br-{net.id[:12]}") is None
    assert controller.network("named").options[BRIDGE_NAME] == "cnmtest-br"


def test_mtu_option_applies_to_bridge_and_both_veth_ends(controller: Controller) -> None:
    net = _create(controller, "small", "10.22.0.0/24", options={MTU: "1400"})
    bridge = f"br-{net.id[:12]}"
    assert link(bridge)["mtu"] == 1400
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("small", sandbox.id)
    veth = link(f"veth{endpoint.id[:11]}")
    assert veth is not None and veth["mtu"] == 1400
    assert veth["master"] == bridge
    assert link("eth0", sandbox.key)["mtu"] == 1400
    assert link(bridge)["mtu"] == 1400


def test_default_bridge_mtu_from_config(make_controller) -> None:
    ctl = make_controller(default_bridge_mtu=1450)
    assert link("cnm0")["mtu"] == 1450
    sandbox = ctl.create_sandbox()
    endpoint = ctl.connect("bridge", sandbox.id)
    assert link("eth0", sandbox.key)["mtu"] == 1450
    assert link(f"veth{endpoint.id[:11]}")["mtu"] == 1450


def test_delete_network_removes_its_bridge_and_record(controller: Controller) -> None:
    before = snapshot(controller)
    net = _create(controller, "gone", "10.23.0.0/24")
    assert link(f"br-{net.id[:12]}") is not None
    controller.delete_network("gone")
    # The bridge goes down at once and is deleted in the background (the kernel's delete waits
    # ~40 ms for an RCU grace period).
    bridge = link(f"br-{net.id[:12]}")
    assert bridge is None or "UP" not in bridge["flags"]
    controller.host.drain_deletions()
    assert link(f"br-{net.id[:12]}") is None
    assert controller.store.get(f"network/{net.id}") is None
    assert snapshot(controller) == before
    # the subnet is free again
    _create(controller, "gone-again", "10.23.0.0/24")


def test_delete_network_with_an_endpoint_is_forbidden(controller: Controller) -> None:
    net = _create(controller, "busy", "10.24.0.0/24")
    endpoint = controller.create_endpoint("busy")
    with pytest.raises(Forbidden, match="has active endpoints") as info:
        controller.delete_network("busy")
    assert info.value.status == 403
    assert link(f"br-{net.id[:12]}") is not None
    assert controller.store.get(f"network/{net.id}") is not None
    # a joined endpoint counts too
    sandbox = controller.create_sandbox()
    controller.join(endpoint.id, sandbox.id)
    with pytest.raises(Forbidden, match="has active endpoints"):
        controller.delete_network(net.id)
    controller.leave(endpoint.id)
    controller.delete_endpoint(endpoint.id)
    controller.delete_network(net.id)
    controller.host.drain_deletions()
    assert link(f"br-{net.id[:12]}") is None


@pytest.mark.parametrize("name", ["bridge", "host", "none"])
def test_predefined_networks_cannot_be_deleted(controller: Controller, name: str) -> None:
    before = snapshot(controller)
    with pytest.raises(Forbidden) as info:
        controller.delete_network(name)
    assert info.value.status == 403
    with pytest.raises(Forbidden):
        controller.delete_network(controller.network(name).id)
    with pytest.raises(Forbidden):
        controller.create_network(NetworkRequest(name=name))
    assert snapshot(controller) == before
    assert link("cnm0") is not None


def test_prune_removes_only_unused_user_networks(controller: Controller) -> None:
    used = _create(controller, "used", "10.25.0.0/24")
    unused = _create(controller, "unused", "10.26.0.0/24")
    sandbox = controller.create_sandbox()
    controller.connect("used", sandbox.id, EndpointOptions())
    pruned = controller.prune_networks(lambda n: True)
    assert [n.name for n in pruned] == ["unused"]
    controller.host.drain_deletions()
    assert link(f"br-{unused.id[:12]}") is None
    assert link(f"br-{used.id[:12]}") is not None
    assert {n.name for n in controller.networks()} == {"bridge", "host", "none", "used"}
    assert host_veths(f"br-{used.id[:12]}")


def test_explicit_gateway_is_put_on_the_bridge_and_used_as_default(
    controller: Controller,
) -> None:
    net = controller.create_network(
        NetworkRequest(
            "gw254", ipam_config=[IpamRequest(subnet="10.27.0.0/24", gateway="10.27.0.254")]
        )
    )
    assert addresses(f"br-{net.id[:12]}", family="4") == ["10.27.0.254/24"]
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("gw254", sandbox.id)
    assert endpoint.ipv4_address == "10.27.0.1/24"
    defaults = run("ip", "-4", "route", "show", "default", netns=sandbox.key)
    assert defaults.split()[:5] == ["default", "via", "10.27.0.254", "dev", "eth0"]


def test_aux_addresses_and_ip_range_bound_dynamic_allocation(controller: Controller) -> None:
    controller.create_network(
        NetworkRequest(
            "aux",
            ipam_config=[
                IpamRequest(
                    subnet="10.28.0.0/24",
                    ip_range="10.28.0.0/29",
                    aux_addresses={"printer": "10.28.0.2", "nas": "10.28.0.3"},
                )
            ],
        )
    )
    got = [controller.create_endpoint("aux").ipv4_address for _ in range(4)]
    # .0 and .255 are the subnet's, .1 the gateway, .2/.3 auxiliary: the /29 leaves .4-.7
    assert got == ["10.28.0.4/24", "10.28.0.5/24", "10.28.0.6/24", "10.28.0.7/24"]
    with pytest.raises(Unavailable):
        controller.create_endpoint("aux")
    with pytest.raises(Conflict):
        controller.create_endpoint("aux", EndpointOptions(ipv4_address="10.28.0.2"))
    # outside the range but inside the subnet: allowed as a static address
    assert (
        controller.create_endpoint("aux", EndpointOptions(ipv4_address="10.28.0.100")).ipv4_address
        == "10.28.0.100/24"
    )


def test_deleting_a_dual_stack_network_releases_both_pools(controller: Controller) -> None:
    request = NetworkRequest(
        "dual",
        enable_ipv6=True,
        ipam_config=[IpamRequest(subnet="10.29.0.0/24"), IpamRequest(subnet="fd00:29::/64")],
    )
    net = controller.create_network(request)
    assert "fd00:29::1/64" in addresses(f"br-{net.id[:12]}", family="6")
    controller.delete_network("dual")
    again = controller.create_network(request)
    assert [p.subnet for p in again.ipv6_pools] == ["fd00:29::/64"]


def test_an_ipv6_subnet_without_ipv6_is_reserved_and_unused(controller: Controller) -> None:
    """Docker's rule: the pool is taken and shown, but the network has no IPv6 (no address on
    the bridge, none for its containers) until it is made with enable_ipv6."""
    request = NetworkRequest(
        "v6off",
        ipam_config=[IpamRequest(subnet="10.31.0.0/24"), IpamRequest(subnet="fd00:31::/64")],
    )
    net = controller.create_network(request)
    assert [p.subnet for p in net.ipv6_pools] == ["fd00:31::/64"]
    assert not net.enable_ipv6
    assert addresses(f"br-{net.id[:12]}", family="6") == []
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("v6off", sandbox.id)
    assert (endpoint.ipv4_address, endpoint.ipv6_address) == ("10.31.0.2/24", None)
    assert run("ip", "-6", "route", "show", "default", netns=sandbox.key) == ""
    with pytest.raises(Conflict):  # the pool is reserved
        _create(controller, "v6again", "fd00:31::/64", enable_ipv6=True)
