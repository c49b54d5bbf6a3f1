"""The macvlan (and ipvlan) drivers' bad input: each request gets a clear error and leaves
nothing behind (links, records, namespaces, files and tables compared by ``fails_cleanly``;
the IPAM pools by making the network for real afterwards)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cnm.controller import Controller
from cnm.errors import CnmError, Conflict, InvalidParameter, NotSupported, Unavailable
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest
from cnm.osl.namespace import NetNamespace
from tests.support.lan import Lan, lan

from .probes import fails_cleanly, link, links, run

SUBNET = [IpamRequest(subnet="10.77.0.0/24")]


def _request(options: dict[str, str], driver: str = "macvlan", **kwargs: object) -> NetworkRequest:
    return NetworkRequest(name="lan", driver=driver, options=options, ipam_config=SUBNET, **kwargs)


@pytest.fixture
def lan77(host_netns: NetNamespace) -> Iterator[Lan]:
    with lan(host_netns.path, parent="lan0") as made:
        yield made


CASES = {
    "unknown-option": ({"parent": "lan0", "macvlan_flag": "x"}, "unknown option 'macvlan_flag'"),
    "bridge-option": ({"com.docker.network.bridge.name": "x"}, "unknown option"),
    "bad-mode": (
        {"parent": "lan0", "macvlan_mode": "hub"},
        "requested macvlan mode 'hub' is not valid",
    ),
    "loopback-parent": ({"parent": "lo"}, "loopback interface is not a valid macvlan parent"),
    "bad-parent-name": ({"parent": "a/b"}, "invalid parent interface name"),
    "missing-parent": ({"parent": "nosuch0"}, "parent interface nosuch0 was not found"),
    "vlan-zero": ({"parent": "lan0.0"}, "vlan id must be between 1-4094, received: 0"),
    "vlan-too-big": ({"parent": "lan0.4095"}, "vlan id must be between 1-4094, received: 4095"),
    "vlan-not-a-number": ({"parent": "lan0.x"}, "unable to parse a valid vlan id from: x"),
    "vlan-two-dots": ({"parent": "lan0.1.2"}, "required interface name format is: name.vlan_id"),
    "vlan-missing-base": ({"parent": "nosuch.5"}, "nosuch, was not found on the host"),
    "mtu-above-parent": (
        {"parent": "lan0", "com.docker.network.driver.mtu": "9000"},
        "MTU 9000 is larger than the MTU of parent interface lan0",
    ),
    "mtu-garbage": ({"com.docker.network.driver.mtu": "big"}, "invalid MTU"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_network_options(controller: Controller, lan77: Lan, case: str) -> None:
    options, message = CASES[case]
    fails_cleanly(
        controller,
        lambda: controller.create_network(_request(options)),
        InvalidParameter,
        match=message,
    )
    controller.create_network(_request({"parent": "lan0"}))  # the pool was given back


def test_one_network_per_parent(controller: Controller, lan77: Lan) -> None:
    controller.create_network(_request({"parent": "lan0"}))
    for mode in ("bridge", "vepa"):
        other = NetworkRequest(
            name="other",
            driver="macvlan",
            options={"parent": "lan0", "macvlan_mode": mode},
            ipam_config=[IpamRequest(subnet="10.88.0.0/24")],
        )
        fails_cleanly(
            controller,
            lambda other=other: controller.create_network(other),
            Conflict,
            match="network lan is already using parent interface lan0",
        )


def test_vlan_sub_interface_needs_8021q(
    controller: Controller, lan77: Lan, host_netns: NetNamespace
) -> None:
    """Where the kernel has 802.1Q, the sub-interface is made with the network (tagged) and
    deleted with it; where it has not (this machine), the error names the kernel feature."""
    request = _request({"parent": "lan0.50"})
    if controller.host.supports_link_kind("vlan"):
        net = controller.create_network(request)
        made = link("lan0.50")
        assert made is not None and made["ifalias"] == f"cnm:macvlan:{net.id}"
        assert made["linkinfo"]["info_data"]["id"] == 50
        controller.delete_network("lan")
        controller.host.drain_deletions()
        assert link("lan0.50") is None
        return
    error = fails_cleanly(
        controller, lambda: controller.create_network(request), CnmError, match="802.1Q"
    )
    assert "CONFIG_VLAN_8021Q, module 8021q" in str(error)
    assert "lan0.50 (VLAN 50 on lan0)" in str(error)


def test_existing_interface_with_a_dot_is_used_as_it_is(controller: Controller, lan77: Lan) -> None:
    """Docker's rule: a parent that exists is used, whatever its name."""
    run("ip", "link", "set", "lan0", "name", "lan0.7")
    net = controller.create_network(_request({"parent": "lan0.7"}))
    assert controller.network_info(net.id) == {"parent": "lan0.7"}
    controller.delete_network("lan")
    controller.host.drain_deletions()
    assert link("lan0.7") is not None  # not cnm's: left alone


def test_ipvlan_names_the_missing_kernel_feature(controller: Controller) -> None:
    request = _request({"parent": "lan0"}, driver="ipvlan")
    if controller.host.supports_link_kind("ipvlan"):
        fails_cleanly(controller, lambda: controller.create_network(request), NotSupported)
        return
    error = fails_cleanly(
        controller, lambda: controller.create_network(request), NotSupported, match="IPvlan"
    )
    assert "CONFIG_IPVLAN, module ipvlan" in str(error)


def test_passthru_second_container_and_chosen_mac_are_refused(
    controller: Controller, lan77: Lan
) -> None:
    controller.create_network(_request({"parent": "lan0", "macvlan_mode": "passthru"}))
    first = controller.create_sandbox()
    controller.connect("lan", first.id)
    second = controller.create_sandbox()
    fails_cleanly(
        controller,
        lambda: controller.connect("lan", second.id),
        Conflict,
        match="passthru mode gives the parent to one container",
    )
    fails_cleanly(
        controller,
        lambda: controller.connect(
            "lan", second.id, EndpointOptions(mac_address="02:42:00:00:00:09")
        ),
        InvalidParameter,
        match="takes its parent's MAC",
    )
    assert [name for name in links(second.key)] == ["lo"]


def test_join_after_the_parent_vanished(controller: Controller, lan77: Lan) -> None:
    controller.create_network(_request({"parent": "lan0"}))
    box = controller.create_sandbox()
    run("ip", "link", "del", "lan0")
    fails_cleanly(
        controller,
        lambda: controller.connect("lan", box.id),
        Unavailable,
        match="parent interface lan0 of network lan is gone from the host",
    )
