"""The option parsers under hypothesis: whatever text a user gives, a parser returns a value in
its normal form or raises InvalidParameter (the API's 400), never another exception; what it
accepts it accepts again unchanged; and well-formed input built from its parts parses back to
those parts."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cnm import validate
from cnm.api.filters import parse_filters
from cnm.drivers.bridge import parse_mtu
from cnm.drivers.macvlan import parse_options, parse_vlan
from cnm.errors import InvalidParameter
from cnm.ipam.default import parse_pool_option
from cnm.portmap.spec import parse_host_ip, parse_port_key, parse_publish, requests_from_config

# Text that looks like input: ASCII and the digits and spaces of other scripts mixed in.
TRICKY = st.sampled_from(["\u0661", "\uff18", "\n", " ", "\u0000", ":", "/", "-", ".", "[", "]"])
TEXT = st.one_of(
    st.text(max_size=30),
    st.lists(st.one_of(st.sampled_from("0123456789abcdef:/.-[]"), TRICKY), max_size=30).map(
        "".join
    ),
)


def _total(parse: Callable[[str], object], text: str) -> object | None:
    """Run a parser: its value, or None when it refused with InvalidParameter."""
    try:
        return parse(text)
    except InvalidParameter:
        return None


PARSERS: dict[str, Callable[[str], object]] = {
    "network name": validate.network_name,
    "container name": validate.container_name,
    "mac": validate.mac_address,
    "decimal": lambda t: validate.decimal(t, "n"),
    "mtu": validate.mtu,
    "bridge mtu": parse_mtu,
    "interface": lambda t: validate.interface_name(t, "name"),
    "hostname": validate.hostname,
    "working dir": validate.working_dir,
    "env": validate.env_entry,
    "extra host": validate.extra_host,
    "link": validate.link,
    "dns": validate.dns_server,
    "publish": parse_publish,
    "port key": parse_port_key,
    "host ip": parse_host_ip,
    "pool": parse_pool_option,
    "vlan": parse_vlan,
    "filters": parse_filters,
    "macvlan options": lambda t: parse_options({"parent": t, "macvlan_mode": t}),
    "macvlan mtu": lambda t: parse_options({"com.docker.network.driver.mtu": t}),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(text=TEXT)
def test_parsers_accept_or_refuse_with_a_400(name: str, text: str) -> None:
    _total(PARSERS[name], text)


@given(text=TEXT)
@example(text="\u0661\u0665\u0660\u0660")  # 1500 in Arabic-Indic digits
@example(text="\uff19\uff10\uff10\uff10")  # 9000, full-width
def test_numbers_are_ascii_decimal(text: str) -> None:
    for parse in (validate.decimal, lambda t, _: validate.mtu(t), lambda t, _: parse_mtu(t)):
        value = _total(lambda t, p=parse: p(t, "n"), text)  # type: ignore[misc]
        if value is not None:
            assert text.lstrip("-").isascii() and text.lstrip("-").isdigit(), text
    mtu = _total(
        lambda t: parse_options({"com.docker.network.driver.mtu": t}).mtu,  # type: ignore[union-attr]
        text,
    )
    if mtu is not None:
        assert text.isascii() and text.isdigit(), text


@given(text=TEXT)
def test_normal_forms_are_fixed_points(text: str) -> None:
    for parse in (validate.mac_address, validate.network_name, validate.container_name):
        value = _total(parse, text)
        if isinstance(value, str):
            assert parse(value) == value


OCTETS = st.lists(st.integers(0, 255), min_size=6, max_size=6)


@given(octets=OCTETS, separator=st.sampled_from([":", "-"]), upper=st.booleans())
def test_macs_normalise_to_lower_colon_form(octets: list[int], separator: str, upper: bool) -> None:
    text = separator.join(f"{o:02x}" for o in octets)
    text = text.upper() if upper else text
    value = _total(validate.mac_address, text)
    unicast = not octets[0] & 1 and any(octets)
    assert (value is not None) == unicast
    if value is not None:
        assert value == ":".join(f"{o:02x}" for o in octets)


PORTS = st.integers(1, 65535)


@given(
    host_ip=st.sampled_from(["", "127.0.0.1", "[::1]", "10.0.0.1"]),
    host=st.one_of(st.just(""), PORTS.map(str)),
    container=PORTS,
    span=st.integers(0, 3),
    proto=st.sampled_from(["", "tcp", "udp", "sctp", "TCP"]),
)
def test_publish_specs_parse_back_to_their_parts(
    host_ip: str, host: str, container: int, span: int, proto: str
) -> None:
    end = min(container + span, 65535)
    ports = f"{container}-{end}" if end > container else str(container)
    hosts = host
    if host and end > container:
        first = int(host)
        if first + (end - container) > 65535:
            return
        hosts = f"{first}-{first + end - container}"
    spec = ":".join(part for part in (host_ip, hosts) if part or host_ip)
    spec = f"{spec}:{ports}" if spec else ports
    spec += f"/{proto}" if proto else ""
    parsed = parse_publish(spec)
    bare_ip = host_ip.strip("[]")
    assert [entry[0] for entry in parsed] == [
        f"{p}/{(proto or 'tcp').lower()}" for p in range(container, end + 1)
    ]
    assert all(
        entry[1] == (str(ipaddress.ip_address(bare_ip)) if bare_ip else "") for entry in parsed
    )
    if not host:
        assert all(entry[2] == "" for entry in parsed)


@given(
    key=st.tuples(PORTS, st.integers(0, 3), st.sampled_from(["tcp", "udp"])),
    host_ports=st.lists(st.one_of(st.just(""), PORTS.map(str)), max_size=3),
)
def test_port_bindings_make_one_request_per_port_and_binding(
    key: tuple[int, int, str], host_ports: list[str]
) -> None:
    start, span, proto = key
    end = min(start + span, 65535)
    text = f"{start}-{end}/{proto}" if end > start else f"{start}/{proto}"
    bindings = {text: [("", port) for port in host_ports]}
    try:
        requests = requests_from_config(bindings, [], False)
    except InvalidParameter as err:
        # Only ranges that differ in length, or the same host port asked for twice.
        assert "differ in length" in str(err) or "more than once" in str(err), err
        return
    per_binding = max(len(host_ports), 1)
    singles = [p for p in host_ports if p]
    if end > start and singles:
        return  # a host port for a range is checked elsewhere
    assert len(requests) == (end - start + 1) * per_binding
    assert {r.container_port for r in requests} == set(range(start, end + 1))


@given(
    base=st.tuples(st.integers(0, 255), st.integers(0, 255)),
    prefix=st.integers(8, 16),
    size=st.integers(0, 32),
)
def test_pool_options_parse_back(base: tuple[int, int], prefix: int, size: int) -> None:
    network = ipaddress.ip_network(f"{base[0]}.{base[1]}.0.0/{prefix}", strict=False)
    text = f"base={network},size={size}"
    value = _total(parse_pool_option, text)
    assert (value is not None) == (prefix <= size <= 32)
    if value is not None:
        assert (value.base, value.size) == (network, size)  # type: ignore[attr-defined]
