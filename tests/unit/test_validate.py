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


def test_names_have_a_length_limit() -> None:
    assert validate.network_name("n" * 255)
    assert validate.container_name("/" + "c" * 255) == "c" * 255
    with pytest.raises(InvalidParameter, match="at most 255"):
        validate.network_name("n" * 256)
    with pytest.raises(InvalidParameter, match="at most 255"):
        validate.container_name("c" * 300)


@pytest.mark.parametrize(
    "text", ["\u0661\u0665\u0660\u0660", "\uff18\uff10", " 80", "8 0", "", "+1"]
)
def test_decimals_are_ascii_digits_only(text: str) -> None:
    with pytest.raises(InvalidParameter, match="not a decimal number"):
        validate.decimal(text, "port")


def test_mtu_bounds() -> None:
    assert validate.mtu("1500") == 1500
    for bad in ("67", "65536", "\u0661\u0665\u0660\u0660"):
        with pytest.raises(InvalidParameter, match="MTU"):
            validate.mtu(bad)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "a:b", "a b", "a\u0000b", "x" * 16, "é" * 8]
)
def test_interface_names_follow_dev_valid_name(name: str) -> None:
    with pytest.raises(InvalidParameter, match="1-15 bytes"):
        validate.interface_name(name, "bridge name")


def test_process_settings() -> None:
    assert validate.working_dir("") == ""
    assert validate.working_dir("/srv") == "/srv"
    with pytest.raises(InvalidParameter, match="needs to be an absolute path"):
        validate.working_dir("srv")
    assert validate.hostname("h" * 64)
    for bad in ("h" * 65, "a b", "a\u0000b"):
        with pytest.raises(InvalidParameter, match="at most 64 bytes"):
            validate.hostname(bad)
    assert validate.env_entry("A=b=c") == "A=b=c"
    for bad in ("=x", "A B=1", ""):
        with pytest.raises(InvalidParameter, match="invalid environment variable"):
            validate.env_entry(bad)


def test_json_documents_are_bounded() -> None:
    assert validate.json_document(b'{"a": [1, {"b": "c"}]}', "JSON") == {"a": [1, {"b": "c"}]}
    depth = validate.MAX_JSON_DEPTH
    assert validate.json_document("[" * depth + "]" * depth, "JSON")
    for deep in (depth + 1, 5000):
        with pytest.raises(InvalidParameter, match="nested more than"):
            validate.json_document("[" * deep + "]" * deep, "JSON")
    with pytest.raises(InvalidParameter, match=r"Options\.x holds a NUL"):
        validate.json_document('{"Options": {"x": "a\\u0000"}}', "JSON")
    with pytest.raises(InvalidParameter, match="a key holds a NUL"):
        validate.json_document('{"a\\u0000": 1}', "JSON")
    with pytest.raises(InvalidParameter, match="invalid JSON: "):
        validate.json_document(b"{", "JSON")


def test_published_port_budget() -> None:
    validate.published_ports(28232, 56464, (32768, 60999), 60000)
    with pytest.raises(InvalidParameter, match="ephemeral range 32768-60999, which has 28232"):
        validate.published_ports(28233, 10, (32768, 60999), 60000)
    with pytest.raises(InvalidParameter, match="host sockets"):
        validate.published_ports(0, 20001, (32768, 60999), 20000)
