"""The one place user values are checked: each kind's normal form and Docker's messages."""

from __future__ import annotations

import ipaddress

import pytest

from cnm import validate
from cnm.errors import InvalidParameter


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("02:42:ac:11:00:02", "02:42:ac:11:00:02"),
        ("02-42-AC-11-00-02", "02:42:ac:11:00:02"),
        ("0A:0b:0C:0d:0E:0f", "0a:0b:0c:0d:0e:0f"),
    ],
)
def test_mac_forms_normalise_to_colons(given: str, normal: str) -> None:
    assert validate.mac_address(given) == normal


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("02:42:ac:11:00", "six hex octets"),
        ("02:42-ac:11:00:02", "six hex octets"),  # separators must not mix
        ("02:42:ac:11:00:02\n", "six hex octets"),
        ("01:00:5e:00:00:01", "multicast"),
        ("00:00:00:00:00:00", "all zeros"),
    ],
)
def test_bad_macs_are_refused(given: str, reason: str) -> None:
    with pytest.raises(InvalidParameter, match=reason):
        validate.mac_address(given)


def test_names_are_matched_whole() -> None:
    assert validate.container_name("/web_1") == "web_1"
    for bad in ("web\n", "w", "/"):
        with pytest.raises(InvalidParameter, match="Invalid container name"):
            validate.container_name(bad)


def test_extra_hosts_and_dns_servers_use_dockers_messages() -> None:
    assert validate.extra_host("db:10.0.0.9") == ("db", ipaddress.ip_address("10.0.0.9"))
    assert validate.extra_host("v6:fd00::1") == ("v6", ipaddress.ip_address("fd00::1"))
    with pytest.raises(InvalidParameter, match="bad format for add-host"):
        validate.extra_host("10.0.0.9")
    with pytest.raises(InvalidParameter, match="invalid IP address in add-host"):
        validate.extra_host("db:nowhere")
    assert validate.dns_server("9.9.9.9") == ipaddress.ip_address("9.9.9.9")
    with pytest.raises(InvalidParameter, match="is not an ip address"):
        validate.dns_server("resolver")


def test_static_addresses_must_be_of_their_family() -> None:
    assert validate.ip_address_of_version("10.0.0.2", 4) == ipaddress.ip_address("10.0.0.2")
    with pytest.raises(InvalidParameter, match="invalid IPv4 address"):
        validate.ip_address_of_version("fd00::2", 4)
    with pytest.raises(InvalidParameter, match="invalid IPv6 address"):
        validate.ip_address_of_version("nope", 6)


def test_links_as_dockers_parse_link() -> None:
    assert validate.link("web:www") == ("web", "www")
    assert validate.link("web") == ("web", "web")
    assert validate.link("/web:/client/www") == ("web", "www")  # the form Docker stores
    with pytest.raises(InvalidParameter, match="empty string specified for links"):
        validate.link("")
    for bad in ("a:b:c", "web:", ":www"):
        with pytest.raises(InvalidParameter, match="bad format for links"):
            validate.link(bad)


def test_static_addresses_must_lie_in_a_subnet_of_the_network() -> None:
    subnets = ["10.0.0.0/24", "fd00::/64"]
    assert validate.static_address("10.0.0.9", 4, subnets) == ipaddress.ip_address("10.0.0.9")
    assert validate.static_address("fd00::9", 6, subnets) == ipaddress.ip_address("fd00::9")
    with pytest.raises(InvalidParameter, match="no configured subnet or ip-range contain"):
        validate.static_address("10.0.1.9", 4, subnets)
    with pytest.raises(InvalidParameter, match="invalid IPv6 address"):
        validate.static_address("10.0.0.9", 6, subnets)


def test_network_names_are_any_non_blank_text() -> None:
    """Docker 20.10 takes any network name that is not blank (spaces, slashes, any script)."""
    for name in ("my-net.1", "my net", "-net", "a/b", "é", " lead", "trail "):
        assert validate.network_name(name) == name
    for blank in ("", " ", "\t\n"):
        with pytest.raises(InvalidParameter, match="invalid name"):
            validate.network_name(blank)
