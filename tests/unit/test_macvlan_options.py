"""The macvlan driver's pure parts: options, sub-interface names, Docker's MAC for an address
(the kernel-facing refusals are in tests/kernel/test_macvlan_bad_input.py)."""

from __future__ import annotations

import ipaddress

import pytest

from cnm.driverapi import mac_from_ip
from cnm.drivers.macvlan import MacvlanOptions, parse_options, parse_vlan
from cnm.errors import InvalidParameter


def test_defaults_and_every_option() -> None:
    assert parse_options({}) == MacvlanOptions(parent=None, mode="bridge", mtu=None)
    assert parse_options({"parent": ""}) == MacvlanOptions(None, "bridge", None)
    given = {"parent": "eth1", "macvlan_mode": "vepa", "com.docker.network.driver.mtu": "1400"}
    assert parse_options(given) == MacvlanOptions("eth1", "vepa", 1400)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("eth0.1", ("eth0", 1)), ("eth0.4094", ("eth0", 4094)), ("bond0.050", ("bond0", 50))],
)
def test_vlan_names(name: str, expected: tuple[str, int]) -> None:
    assert parse_vlan(name) == expected


@pytest.mark.parametrize("name", ["eth0.", ".5", "eth0.-1", "eth0.+5", "eth0.٣"])
def test_bad_vlan_names(name: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_vlan(name)


def test_mac_follows_the_address_as_docker_does() -> None:
    assert mac_from_ip(ipaddress.IPv4Address("192.168.1.20")) == "02:42:c0:a8:01:14"
