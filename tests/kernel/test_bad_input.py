"""Bad input: each request gets a clear cnm.errors class and leaves nothing behind (links,
store keys, namespaces, sandbox files, controller tables and IPAM pools are compared)."""

from __future__ import annotations

import pytest

from cnm.controller import Controller
from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest, SandboxOptions

from .probes import fails_cleanly, links


def _subnet(subnet: str, **kwargs: object) -> list[IpamRequest]:
    return [IpamRequest(subnet=subnet, **kwargs)]


NETWORK_CASES = {
    "cidr-prefix-too-long": (
        NetworkRequest("n", ipam_config=_subnet("10.90.0.0/33")),
        InvalidParameter,
    ),
    "cidr-garbage": (NetworkRequest("n", ipam_config=_subnet("ten.ninety/24")), InvalidParameter),
    "cidr-without-prefix": (
        NetworkRequest("n", ipam_config=_subnet("10.90.0.0")),
        InvalidParameter,
    ),
    "gateway-outside-subnet": (
        NetworkRequest("n", ipam_config=_subnet("10.90.0.0/24", gateway="10.91.0.1")),
        InvalidParameter,
    ),
    "gateway-not-an-address": (
        NetworkRequest("n", ipam_config=_subnet("10.90.0.0/24", gateway="10.90.0.x")),
        InvalidParameter,
    ),
    "gateway-without-subnet": (
        NetworkRequest("n", ipam_config=[IpamRequest(gateway="10.90.0.1")]),
        InvalidParameter,
    ),
    "ip-range-outside-subnet": (
        NetworkRequest("n", ipam_config=_subnet("10.90.0.0/24", ip_range="10.90.1.0/25")),
        InvalidParameter,
    ),
    "ip-range-larger-than-subnet": (
        NetworkRequest("n", ipam_config=_subnet("10.90.0.0/24", ip_range="10.90.0.0/23")),
        InvalidParameter,
    ),
    "aux-address-outside-subnet": (
        NetworkRequest(
            "n", ipam_config=_subnet("10.90.0.0/24", aux_addresses={"router": "10.91.0.5"})
        ),
        InvalidParameter,
    ),
    "aux-address-after-good-one": (
        NetworkRequest(
            "n",
            ipam_config=_subnet(
                "10.90.0.0/24", aux_addresses={"ok": "10.90.0.5", "bad": "10.91.0.5"}
            ),
        ),
        InvalidParameter,
    ),
    "ipv6-without-subnet": (NetworkRequest("n", enable_ipv6=True), InvalidParameter),
    "second-ipv4-pool-overlaps-first": (
        NetworkRequest(
            "n",
            ipam_config=[IpamRequest(subnet="10.90.0.0/24"), IpamRequest(subnet="10.90.0.0/25")],
        ),
        Conflict,
    ),
    "gateway-is-network-address": (
        NetworkRequest("n", ipam_config=_subnet("10.90.0.0/24", gateway="10.90.0.0")),
        InvalidParameter,
    ),
    "gateway-is-broadcast-address": (
        NetworkRequest("n", ipam_config=_subnet("10.90.0.0/24", gateway="10.90.0.255")),
        InvalidParameter,
    ),
    "aux-address-is-the-gateway": (
        NetworkRequest(
            "n",
            ipam_config=_subnet(
                "10.90.0.0/24", gateway="10.90.0.1", aux_addresses={"gw": "10.90.0.1"}
            ),
        ),
        Conflict,
    ),
    "ip-range-without-subnet": (
        NetworkRequest("n", ipam_config=[IpamRequest(ip_range="10.90.0.0/25")]),
        InvalidParameter,
    ),
    "ipv6-cidr-prefix-too-long": (
        NetworkRequest("n", enable_ipv6=True, ipam_config=_subnet("fd00:90::/129")),
        InvalidParameter,
    ),
    "ipv6-gateway-outside-subnet": (
        NetworkRequest(
            "n", enable_ipv6=True, ipam_config=_subnet("fd00:90::/64", gateway="fd00:91::1")
        ),
        InvalidParameter,
    ),
    "unknown-driver": (NetworkRequest("n", driver="nosuchdriver"), NotFound),
    "unknown-ipam-driver": (NetworkRequest("n", ipam_driver="nosuchipam"), NotFound),
    "name-empty": (NetworkRequest(""), InvalidParameter),
    "name-blank": (NetworkRequest(" \t "), InvalidParameter),
    "second-host-network": (NetworkRequest("myhost", driver="host"), Forbidden),
    "second-null-network": (NetworkRequest("mynone", driver="null"), Forbidden),
    "mtu-not-a-number": (
        NetworkRequest("n", options={"com.docker.network.driver.mtu": "big"}),
        InvalidParameter,
    ),
    "mtu-too-small": (
        NetworkRequest("n", options={"com.docker.network.driver.mtu": "10"}),
        InvalidParameter,
    ),
    "bridge-name-too-long": (
        NetworkRequest("n", options={"com.docker.network.bridge.name": "a-much-too-long-name"}),
        InvalidParameter,
    ),
}


@pytest.mark.parametrize("case", list(NETWORK_CASES))
def test_bad_network_request_fails_cleanly(controller: Controller, case: str) -> None:
    request, error = NETWORK_CASES[case]
    fails_cleanly(controller, lambda: controller.create_network(request), error)
    # the pool and the name are free: a good network on the same subnet can be made now
    controller.create_network(NetworkRequest("n", ipam_config=_subnet("10.90.0.0/24")))
    auto = controller.create_network(NetworkRequest("auto"))
    assert [p.subnet for p in auto.ipv4_pools] == ["172.18.0.0/16"]


def test_overlapping_subnet_is_a_conflict(controller: Controller) -> None:
    controller.create_network(NetworkRequest("first", ipam_config=_subnet("10.91.0.0/24")))
    second = NetworkRequest("second", ipam_config=_subnet("10.91.0.128/25"))
    fails_cleanly(controller, lambda: controller.create_network(second), Conflict, "overlap")
    same = NetworkRequest("same", ipam_config=_subnet("10.91.0.0/24"))
    fails_cleanly(controller, lambda: controller.create_network(same), Conflict)
    wider = NetworkRequest("wider", ipam_config=_subnet("10.91.0.0/16"))
    fails_cleanly(controller, lambda: controller.create_network(wider), Conflict)


def test_explicit_subnet_overlapping_the_default_bridge_is_a_conflict(
    controller: Controller,
) -> None:
    request = NetworkRequest("clash", ipam_config=_subnet("172.17.5.0/24"))
    fails_cleanly(controller, lambda: controller.create_network(request), Conflict)


def test_duplicate_name_is_a_conflict(controller: Controller) -> None:
    controller.create_network(NetworkRequest("dup", ipam_config=_subnet("10.92.0.0/24")))
    again = NetworkRequest("dup", ipam_config=_subnet("10.93.0.0/24"))
    error = fails_cleanly(
        controller, lambda: controller.create_network(again), Conflict, "already exists"
    )
    assert error.status == 409
    # 10.93.0.0/24 was not kept by the failed request
    controller.create_network(NetworkRequest("other", ipam_config=_subnet("10.93.0.0/24")))


@pytest.fixture
def user_net(controller: Controller):
    config = [*_subnet("10.94.0.0/24", ip_range="10.94.0.128/25"), *_subnet("fd00:94::/64")]
    return controller.create_network(NetworkRequest("user", ipam_config=config))


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("10.95.0.5", InvalidParameter),  # outside the subnet
        ("10.94.0.x", InvalidParameter),  # not an address
        ("10.94.0.1", Conflict),  # the gateway
        ("10.94.0.0", InvalidParameter),  # the network address
        ("10.94.0.255", InvalidParameter),  # the broadcast address
        ("fd00::5", InvalidParameter),  # no IPv6 pool
        ("fd00:94::5", InvalidParameter),  # an IPv6 pool, but the network has no IPv6
    ],
)
def test_bad_static_address_fails_cleanly(
    controller: Controller, user_net, address: str, error: type[CnmError]
) -> None:
    sandbox = controller.create_sandbox()
    option = (
        EndpointOptions(ipv6_address=address)
        if ":" in address
        else EndpointOptions(ipv4_address=address)
    )
    fails_cleanly(controller, lambda: controller.connect("user", sandbox.id, option), error)
    fails_cleanly(controller, lambda: controller.create_endpoint("user", option), error)
    assert sorted(links(sandbox.key)) == ["lo"]


def test_static_address_outside_ip_range_but_inside_subnet_is_allowed(
    controller: Controller, user_net
) -> None:
    sandbox = controller.create_sandbox()
    endpoint = controller.connect("user", sandbox.id, EndpointOptions(ipv4_address="10.94.0.10"))
    assert endpoint.ipv4_address == "10.94.0.10/24"
    dynamic = controller.connect("user", controller.create_sandbox().id)
    # dynamic addresses come from the ip-range; only the subnet's own network and broadcast
    # addresses are excluded (as in Docker), so the range's first address is handed out
    assert dynamic.ipv4_address == "10.94.0.128/24"


def test_static_address_in_use_is_a_conflict(controller: Controller, user_net) -> None:
    first = controller.create_sandbox()
    second = controller.create_sandbox()
    controller.connect("user", first.id, EndpointOptions(ipv4_address="10.94.0.20"))
    fails_cleanly(
        controller,
        lambda: controller.connect("user", second.id, EndpointOptions(ipv4_address="10.94.0.20")),
        Conflict,
        "in use",
    )
    assert sorted(links(second.key)) == ["lo"]


@pytest.mark.parametrize("mac", ["not-a-mac", "02:42:0a:5e:00", "01:00:5e:00:00:01"])
def test_bad_mac_address_fails_cleanly(controller: Controller, user_net, mac: str) -> None:
    sandbox = controller.create_sandbox()
    option = EndpointOptions(mac_address=mac)
    fails_cleanly(
        controller, lambda: controller.connect("user", sandbox.id, option), InvalidParameter
    )
    fails_cleanly(controller, lambda: controller.create_endpoint("user", option), InvalidParameter)
    assert sorted(links(sandbox.key)) == ["lo"]


def test_duplicate_endpoint_name_on_a_network_is_a_conflict(
    controller: Controller, user_net
) -> None:
    controller.create_endpoint("user", EndpointOptions(name="web"))
    sandbox = controller.create_sandbox()
    option = EndpointOptions(name="web")
    fails_cleanly(controller, lambda: controller.connect("user", sandbox.id, option), Conflict)
    fails_cleanly(controller, lambda: controller.create_endpoint("user", option), Conflict)


def test_static_address_on_the_default_bridge_is_refused(controller: Controller) -> None:
    sandbox = controller.create_sandbox()
    option = EndpointOptions(ipv4_address="172.17.0.50")
    fails_cleanly(
        controller, lambda: controller.connect("bridge", sandbox.id, option), InvalidParameter
    )


def test_none_cannot_join_with_a_bridge_network(controller: Controller, user_net) -> None:
    in_bridge = controller.create_sandbox()
    controller.connect("user", in_bridge.id)
    fails_cleanly(controller, lambda: controller.connect("none", in_bridge.id), Forbidden)
    in_none = controller.create_sandbox()
    controller.connect("none", in_none.id)
    fails_cleanly(controller, lambda: controller.connect("user", in_none.id), Forbidden)
    assert sorted(links(in_none.key)) == ["lo"]
    fails_cleanly(controller, lambda: controller.connect("bridge", in_none.id), Forbidden)


def test_host_cannot_join_with_a_bridge_network(controller: Controller, user_net) -> None:
    normal = controller.create_sandbox()
    controller.connect("user", normal.id)
    fails_cleanly(controller, lambda: controller.connect("host", normal.id), Forbidden)
    fresh = controller.create_sandbox()
    fails_cleanly(controller, lambda: controller.connect("host", fresh.id), Forbidden)
    host_box = controller.create_sandbox(SandboxOptions(use_host_network=True))
    fails_cleanly(controller, lambda: controller.connect("user", host_box.id), Forbidden)
    controller.connect("host", host_box.id)
    fails_cleanly(controller, lambda: controller.connect("user", host_box.id), Forbidden)
    fails_cleanly(controller, lambda: controller.connect("none", host_box.id), Forbidden)


def test_joining_the_same_network_twice_is_refused(controller: Controller, user_net) -> None:
    sandbox = controller.create_sandbox()
    controller.connect("user", sandbox.id, EndpointOptions(ipv4_address="10.94.0.30"))
    option = EndpointOptions(ipv4_address="10.94.0.31")
    fails_cleanly(controller, lambda: controller.connect("user", sandbox.id, option), Forbidden)
    assert sorted(links(sandbox.key)) == ["eth0", "lo"]
    # the refused endpoint's address went back to the pool
    controller.connect("user", controller.create_sandbox().id, option)
    # a separately created endpoint joining a second time is refused too
    endpoint = controller.create_endpoint("user")
    fails_cleanly(controller, lambda: controller.join(endpoint.id, sandbox.id), Forbidden)


def test_joining_an_already_joined_endpoint_is_refused(controller: Controller, user_net) -> None:
    first = controller.create_sandbox()
    second = controller.create_sandbox()
    endpoint = controller.create_endpoint("user")
    controller.join(endpoint.id, first.id)
    fails_cleanly(controller, lambda: controller.join(endpoint.id, second.id), Forbidden)
    assert sorted(links(second.key)) == ["lo"]
    fails_cleanly(controller, lambda: controller.delete_endpoint(endpoint.id), Forbidden)


def test_unknown_objects_are_not_found(controller: Controller, user_net) -> None:
    sandbox = controller.create_sandbox()
    endpoint = controller.create_endpoint("user")
    fails_cleanly(controller, lambda: controller.network("nosuch"), NotFound)
    fails_cleanly(controller, lambda: controller.delete_network("nosuch"), NotFound)
    fails_cleanly(controller, lambda: controller.create_endpoint("nosuch"), NotFound)
    fails_cleanly(controller, lambda: controller.connect("nosuch", sandbox.id), NotFound)
    fails_cleanly(controller, lambda: controller.connect("user", "nosuch"), NotFound)
    fails_cleanly(controller, lambda: controller.join("nosuch", sandbox.id), NotFound)
    fails_cleanly(controller, lambda: controller.join(endpoint.id, "nosuch"), NotFound)
    fails_cleanly(controller, lambda: controller.leave("nosuch"), NotFound)
    fails_cleanly(controller, lambda: controller.delete_endpoint("nosuch"), NotFound)
    fails_cleanly(controller, lambda: controller.delete_sandbox("nosuch"), NotFound)
    fails_cleanly(controller, lambda: controller.disconnect("user", sandbox.id), NotFound)


@pytest.mark.parametrize(
    "options",
    [
        SandboxOptions(extra_hosts=["no-address"]),
        SandboxOptions(extra_hosts=["db:not-an-ip"]),
        SandboxOptions(dns=["resolver.example"]),
    ],
)
def test_bad_sandbox_options_fail_cleanly(controller: Controller, options) -> None:
    fails_cleanly(controller, lambda: controller.create_sandbox(options), InvalidParameter)
