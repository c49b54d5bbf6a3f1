"""Pure-logic tests of the default IPAM driver (no kernel access)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_interface, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnm.errors import Conflict, InvalidParameter, NotFound, Unavailable
from cnm.ipam.default import DEFAULT_POOLS, DefaultIpam, PoolSpec, parse_pool_option
from cnm.ipamapi import (
    GLOBAL_ADDRESS_SPACE,
    LOCAL_ADDRESS_SPACE,
    REQUEST_ADDRESS_TYPE,
    REQUEST_TYPE_GATEWAY,
    IPNetwork,
)

LOCAL = LOCAL_ADDRESS_SPACE
GATEWAY = {REQUEST_ADDRESS_TYPE: REQUEST_TYPE_GATEWAY}


def explicit(ipam: DefaultIpam, pool: str, sub_pool: str | None = None, v6: bool = False) -> str:
    return ipam.request_pool(LOCAL, pool, sub_pool, {}, v6).pool_id


def auto(ipam: DefaultIpam, space: str = LOCAL) -> IPNetwork:
    return ipam.request_pool(space, None, None, {}, False).subnet


def next_addresses(ipam: DefaultIpam, pool_id: str, count: int) -> list[str]:
    return [str(ipam.request_address(pool_id, None, {})) for _ in range(count)]


# --- driver identity --------------------------------------------------------------------------


def test_name_and_address_spaces() -> None:
    ipam = DefaultIpam()
    assert ipam.name == "default"
    assert ipam.default_address_spaces() == (LOCAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE)


def test_unknown_address_space_is_invalid() -> None:
    with pytest.raises(InvalidParameter, match="unknown address space"):
        DefaultIpam().request_pool("Elsewhere", "10.0.0.0/24", None, {}, False)


# --- automatic pools --------------------------------------------------------------------------


def test_default_pools_are_dockers() -> None:
    expected = [PoolSpec(IPv4Network(f"172.{i}.0.0/16"), 16) for i in range(17, 32)]
    expected.append(PoolSpec(IPv4Network("192.168.0.0/16"), 20))
    assert list(DEFAULT_POOLS) == expected


def test_automatic_pool_order() -> None:
    ipam = DefaultIpam()
    subnets = [str(auto(ipam)) for _ in range(18)]
    assert subnets[:3] == ["172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16"]
    assert subnets[14] == "172.31.0.0/16"
    assert subnets[15:] == ["192.168.0.0/20", "192.168.16.0/20", "192.168.32.0/20"]


def test_automatic_pool_grant_id() -> None:
    grant = DefaultIpam().request_pool(LOCAL, None, None, {}, False)
    assert grant.pool_id == "LocalDefault/172.17.0.0/16"
    assert grant.subnet == IPv4Network("172.17.0.0/16")


def test_automatic_pools_exhausted() -> None:
    ipam = DefaultIpam()
    for _ in range(15 + 16):
        auto(ipam)
    with pytest.raises(Unavailable, match="could not find an available, non-overlapping IPv4"):
        auto(ipam)


def test_automatic_pool_skips_reserved_networks() -> None:
    reserved = [ip_network("172.17.5.0/24"), ip_network("172.18.0.10/32")]
    ipam = DefaultIpam(reserved_networks=lambda: reserved)
    assert str(auto(ipam)) == "172.19.0.0/16"


def test_reserved_networks_consulted_at_each_request() -> None:
    calls: list[int] = []
    reserved: list[IPNetwork] = []

    def provider() -> list[IPNetwork]:
        calls.append(1)
        return reserved

    ipam = DefaultIpam(reserved_networks=provider)
    assert str(auto(ipam)) == "172.17.0.0/16"
    reserved.append(ip_network("172.18.0.0/16"))
    assert str(auto(ipam)) == "172.19.0.0/16"
    assert len(calls) == 2


def test_reserved_network_covering_a_whole_base_skips_it() -> None:
    # A /12 covering all 172.16-31 pools: the next base (192.168/16) is used.
    ipam = DefaultIpam(reserved_networks=lambda: [ip_network("172.16.0.0/12")])
    assert str(auto(ipam)) == "192.168.0.0/20"


def test_reserved_ipv6_networks_do_not_block_ipv4() -> None:
    ipam = DefaultIpam(reserved_networks=lambda: [ip_network("::/0")])
    assert str(auto(ipam)) == "172.17.0.0/16"


def test_automatic_pool_skips_explicit_pools_in_any_address_space() -> None:
    ipam = DefaultIpam()
    ipam.request_pool(GLOBAL_ADDRESS_SPACE, "172.17.3.0/24", None, {}, False)
    explicit(ipam, "172.18.0.0/16")
    assert str(auto(ipam)) == "172.19.0.0/16"


def test_released_automatic_pool_is_reused() -> None:
    ipam = DefaultIpam()
    first = ipam.request_pool(LOCAL, None, None, {}, False)
    assert str(auto(ipam)) == "172.18.0.0/16"
    ipam.release_pool(first.pool_id)
    assert str(auto(ipam)) == "172.17.0.0/16"


def test_custom_default_pools_are_carved_in_order_skipping_blockers() -> None:
    pools = [parse_pool_option("base=10.20.0.0/16,size=24")]
    ipam = DefaultIpam(pools, reserved_networks=lambda: [ip_network("10.20.1.0/25")])
    explicit(ipam, "10.20.0.0/23")  # covers 10.20.0.0/24 and 10.20.1.0/24
    assert [str(auto(ipam)) for _ in range(2)] == ["10.20.2.0/24", "10.20.3.0/24"]


def test_custom_default_pool_exhaustion() -> None:
    ipam = DefaultIpam([parse_pool_option("base=10.0.0.0/23,size=24")])
    assert [str(auto(ipam)) for _ in range(2)] == ["10.0.0.0/24", "10.0.1.0/24"]
    with pytest.raises(Unavailable):
        auto(ipam)


def test_no_ipv6_default_pools() -> None:
    with pytest.raises(InvalidParameter, match=r"IPv6.*explicit subnet"):
        DefaultIpam().request_pool(LOCAL, None, None, {}, True)


def test_configured_ipv6_default_pool() -> None:
    ipam = DefaultIpam([PoolSpec(IPv6Network("fd00::/48"), 64)])
    grants = [ipam.request_pool(LOCAL, None, None, {}, True).subnet for _ in range(2)]
    assert [str(g) for g in grants] == ["fd00::/64", "fd00:0:0:1::/64"]


def test_sub_pool_without_pool_is_invalid() -> None:
    with pytest.raises(InvalidParameter, match="requires an explicit subnet"):
        DefaultIpam().request_pool(LOCAL, None, "172.17.1.0/24", {}, False)


# --- explicit pools ---------------------------------------------------------------------------


def test_explicit_pool_grant() -> None:
    grant = DefaultIpam().request_pool(LOCAL, "10.10.0.0/24", None, {}, False)
    assert grant.pool_id == "LocalDefault/10.10.0.0/24"
    assert grant.subnet == IPv4Network("10.10.0.0/24")


def test_explicit_pool_ignores_reserved_networks() -> None:
    ipam = DefaultIpam(reserved_networks=lambda: [ip_network("10.10.0.0/16")])
    assert explicit(ipam, "10.10.0.0/24") == "LocalDefault/10.10.0.0/24"


def test_explicit_pool_overlap_is_conflict() -> None:
    ipam = DefaultIpam()
    explicit(ipam, "10.10.0.0/16")
    with pytest.raises(Conflict, match="Pool overlaps with other one on this address space"):
        explicit(ipam, "10.10.5.0/24")
    with pytest.raises(Conflict):
        explicit(ipam, "10.0.0.0/8")


def test_explicit_pool_overlapping_automatic_pool_is_conflict() -> None:
    ipam = DefaultIpam()
    auto(ipam)
    with pytest.raises(Conflict):
        explicit(ipam, "172.17.1.0/24")


def test_same_pool_twice_is_conflict_until_released() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    with pytest.raises(Conflict):
        explicit(ipam, "10.10.0.0/24")
    with pytest.raises(Conflict):
        explicit(ipam, "10.10.0.0/24", "10.10.0.128/25")
    ipam.release_pool(pool_id)
    assert explicit(ipam, "10.10.0.0/24") == pool_id


def test_same_subnet_in_other_address_space_is_allowed() -> None:
    ipam = DefaultIpam()
    explicit(ipam, "10.10.0.0/24")
    grant = ipam.request_pool(GLOBAL_ADDRESS_SPACE, "10.10.0.0/24", None, {}, False)
    assert grant.pool_id == "GlobalDefault/10.10.0.0/24"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.10.0.0", "expected CIDR notation"),
        ("bogus/24", "invalid subnet"),
        ("10.10.0.0/33", "invalid subnet"),
        ("10.10.0.0/x", "expected CIDR notation"),
        ("", "expected CIDR notation"),
        ("10.10.0.5/24", "host bits are set, the canonical form is 10.10.0.0/24"),
    ],
)
def test_bad_cidr_is_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        explicit(DefaultIpam(), text)


def test_family_mismatch_is_invalid() -> None:
    ipam = DefaultIpam()
    with pytest.raises(InvalidParameter, match="not an IPv6 subnet"):
        explicit(ipam, "10.10.0.0/24", v6=True)
    with pytest.raises(InvalidParameter, match="not an IPv4 subnet"):
        explicit(ipam, "fd00::/64", v6=False)


@pytest.mark.parametrize("sub_pool", ["10.10.1.0/24", "10.0.0.0/8", "fd00::/120"])
def test_sub_pool_outside_pool_is_invalid(sub_pool: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape("is not within subnet 10.10.0.0/24")):
        explicit(DefaultIpam(), "10.10.0.0/24", sub_pool)


def test_bad_sub_pool_cidr_is_invalid() -> None:
    with pytest.raises(InvalidParameter, match="invalid ip-range"):
        explicit(DefaultIpam(), "10.10.0.0/24", "10.10.0.129/25")


def test_failed_request_leaves_no_pool() -> None:
    ipam = DefaultIpam()
    with pytest.raises(InvalidParameter):
        explicit(ipam, "10.10.0.0/24", "10.20.0.0/24")
    assert explicit(ipam, "10.10.0.0/24") == "LocalDefault/10.10.0.0/24"


def test_deterministic_pool_ids_replay_after_restart() -> None:
    before = DefaultIpam()
    ids = [
        explicit(before, "10.10.0.0/24", "10.10.0.128/25"),
        explicit(before, "fd00:0::/64", v6=True),
        before.request_pool(LOCAL, None, None, {}, False).pool_id,
    ]
    assert ids == [
        "LocalDefault/10.10.0.0/24/10.10.0.128/25",
        "LocalDefault/fd00::/64",
        "LocalDefault/172.17.0.0/16",
    ]
    gateway = before.request_address(ids[0], None, GATEWAY)
    # A fresh driver (daemon restart) replays the recorded values and gets the same ids.
    after = DefaultIpam()
    assert explicit(after, "10.10.0.0/24", "10.10.0.128/25") == ids[0]
    assert explicit(after, "fd00::/64", v6=True) == ids[1]
    assert explicit(after, "172.17.0.0/16") == ids[2]
    assert after.request_address(ids[0], gateway.ip, {}) == gateway
    with pytest.raises(Conflict):
        after.request_address(ids[0], gateway.ip, {})


# --- addresses --------------------------------------------------------------------------------


def test_addresses_carry_pool_prefix_length() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    assert ipam.request_address(pool_id, None, {}) == ip_interface("10.10.0.1/24")


def test_gateway_then_lowest_free_allocation() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    assert str(ipam.request_address(pool_id, None, GATEWAY)) == "10.10.0.1/24"
    assert next_addresses(ipam, pool_id, 3) == ["10.10.0.2/24", "10.10.0.3/24", "10.10.0.4/24"]


def test_gateway_is_first_free_of_whole_pool_not_sub_pool() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24", "10.10.0.128/25")
    assert str(ipam.request_address(pool_id, None, GATEWAY)) == "10.10.0.1/24"
    assert next_addresses(ipam, pool_id, 2) == ["10.10.0.128/24", "10.10.0.129/24"]


def test_gateway_takes_first_free_address_after_explicit_one() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    ipam.request_address(pool_id, ip_address("10.10.0.1"), {})
    assert str(ipam.request_address(pool_id, None, GATEWAY)) == "10.10.0.2/24"


def test_sub_pool_with_network_address_skips_it() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24", "10.10.0.0/30")
    assert next_addresses(ipam, pool_id, 3) == ["10.10.0.1/24", "10.10.0.2/24", "10.10.0.3/24"]
    with pytest.raises(Unavailable, match="no available addresses on this pool"):
        ipam.request_address(pool_id, None, {})


def test_sub_pool_exhaustion_leaves_rest_of_pool_to_explicit_requests() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24", "10.10.0.8/31")
    assert next_addresses(ipam, pool_id, 2) == ["10.10.0.8/24", "10.10.0.9/24"]
    with pytest.raises(Unavailable):
        ipam.request_address(pool_id, None, {})
    assert str(ipam.request_address(pool_id, ip_address("10.10.0.200"), {})) == "10.10.0.200/24"


def test_the_lowest_free_address_is_handed_out() -> None:
    """Docker 20.10's order: a released address is the next one handed out if it is the lowest
    free (a container stopped and started again gets its address back)."""
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    assert next_addresses(ipam, pool_id, 3) == ["10.10.0.1/24", "10.10.0.2/24", "10.10.0.3/24"]
    ipam.release_address(pool_id, ip_address("10.10.0.2"))
    assert next_addresses(ipam, pool_id, 2) == ["10.10.0.2/24", "10.10.0.4/24"]


def test_a_full_range_fills_its_holes_lowest_first() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/29")  # usable .1 - .6
    assert len(next_addresses(ipam, pool_id, 6)) == 6
    ipam.release_address(pool_id, ip_address("10.10.0.5"))
    ipam.release_address(pool_id, ip_address("10.10.0.3"))
    assert next_addresses(ipam, pool_id, 2) == ["10.10.0.3/29", "10.10.0.5/29"]
    with pytest.raises(Unavailable):
        ipam.request_address(pool_id, None, {})


def test_the_order_is_the_same_after_a_replay() -> None:
    """What a restart does: a new IPAM, the recorded addresses requested explicitly. It hands
    out what the one before the restart would have."""
    before = DefaultIpam()
    pool_id = explicit(before, "10.10.0.0/24")
    next_addresses(before, pool_id, 8)
    for last in (2, 5, 6):
        before.release_address(pool_id, ip_address(f"10.10.0.{last}"))
    after = DefaultIpam()
    explicit(after, "10.10.0.0/24")
    for last in (1, 3, 4, 7, 8):
        after.request_address(pool_id, ip_address(f"10.10.0.{last}"), {})
    assert next_addresses(before, pool_id, 4) == next_addresses(after, pool_id, 4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["dynamic", "explicit", "release"]), st.integers(1, 14))))
def test_dynamic_requests_get_the_lowest_free_address(operations: list[tuple[str, int]]) -> None:
    """Against a model that scans the range, under any mix of requests and releases."""
    ipam = DefaultIpam()
    pool_id = ipam.request_pool(LOCAL, "10.10.0.0/28", "10.10.0.0/28", {}, False).pool_id
    taken: set[int] = set()
    for kind, last in operations:
        if kind == "release":
            ipam.release_address(pool_id, ip_address(f"10.10.0.{last}"))
            taken.discard(last)
        elif kind == "explicit" and last not in taken:
            ipam.request_address(pool_id, ip_address(f"10.10.0.{last}"), {})
            taken.add(last)
        elif kind == "dynamic":
            free = [n for n in range(1, 15) if n not in taken]
            if not free:
                with pytest.raises(Unavailable):
                    ipam.request_address(pool_id, None, {})
                continue
            assert ipam.request_address(pool_id, None, {}).ip == ip_address(f"10.10.0.{free[0]}")
            taken.add(free[0])


def test_an_explicit_address_is_skipped_not_followed() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    ipam.request_address(pool_id, ip_address("10.10.0.100"), {})
    assert next_addresses(ipam, pool_id, 1) == ["10.10.0.1/24"]


def test_dynamic_allocation_skips_explicit_addresses() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    ipam.request_address(pool_id, ip_address("10.10.0.2"), {})
    assert next_addresses(ipam, pool_id, 2) == ["10.10.0.1/24", "10.10.0.3/24"]


def test_explicit_address_in_use_is_conflict() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    ipam.request_address(pool_id, ip_address("10.10.0.7"), {})
    with pytest.raises(Conflict, match="Address already in use"):
        ipam.request_address(pool_id, ip_address("10.10.0.7"), {})


def test_explicit_address_outside_sub_pool_but_inside_pool_is_allowed() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24", "10.10.0.128/25")
    assert str(ipam.request_address(pool_id, ip_address("10.10.0.5"), {})) == "10.10.0.5/24"


@pytest.mark.parametrize("address", ["10.10.1.1", "fd00::1"])
def test_explicit_address_outside_pool_is_invalid(address: str) -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    with pytest.raises(InvalidParameter, match=re.escape("is not within pool 10.10.0.0/24")):
        ipam.request_address(pool_id, ip_address(address), {})


@pytest.mark.parametrize(
    ("address", "kind"), [("10.10.0.0", "network"), ("10.10.0.255", "broadcast")]
)
def test_explicit_reserved_ipv4_address_is_invalid(address: str, kind: str) -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    with pytest.raises(InvalidParameter, match=f"is the {kind} address"):
        ipam.request_address(pool_id, ip_address(address), {})


def test_unknown_pool_id_is_not_found() -> None:
    ipam = DefaultIpam()
    with pytest.raises(NotFound):
        ipam.request_address("LocalDefault/10.10.0.0/24", None, {})
    with pytest.raises(NotFound):
        ipam.release_address("LocalDefault/10.10.0.0/24", ip_address("10.10.0.1"))
    with pytest.raises(NotFound):
        ipam.release_pool("LocalDefault/10.10.0.0/24")


def test_release_pool_twice_is_not_found() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    ipam.release_pool(pool_id)
    with pytest.raises(NotFound):
        ipam.release_pool(pool_id)


def test_release_of_unallocated_address_is_a_noop() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    ipam.request_address(pool_id, ip_address("10.10.0.1"), {})
    ipam.release_address(pool_id, ip_address("10.10.0.9"))
    ipam.release_address(pool_id, ip_address("192.0.2.1"))
    ipam.release_address(pool_id, ip_address("::a0a:1"))  # same integer as 10.10.0.1
    with pytest.raises(Conflict):
        ipam.request_address(pool_id, ip_address("10.10.0.1"), {})


def test_released_address_can_be_requested_explicitly() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/24")
    address = ipam.request_address(pool_id, None, {})
    ipam.release_address(pool_id, address.ip)
    assert ipam.request_address(pool_id, address.ip, {}) == address


def test_release_pool_frees_its_addresses() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/30")
    next_addresses(ipam, pool_id, 2)
    with pytest.raises(Unavailable):
        ipam.request_address(pool_id, None, {})
    ipam.release_pool(pool_id)
    assert explicit(ipam, "10.10.0.0/30") == pool_id
    assert next_addresses(ipam, pool_id, 2) == ["10.10.0.1/30", "10.10.0.2/30"]
    with pytest.raises(NotFound):
        DefaultIpam().request_address(pool_id, None, {})


# --- small pools ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subnet", "v6", "expected"),
    [
        ("10.10.0.0/30", False, ["10.10.0.1/30", "10.10.0.2/30"]),
        ("10.10.0.0/31", False, ["10.10.0.0/31", "10.10.0.1/31"]),
        ("10.10.0.7/32", False, ["10.10.0.7/32"]),
        ("fd00::/126", True, ["fd00::1/126", "fd00::2/126", "fd00::3/126"]),
        ("fd00::/127", True, ["fd00::/127", "fd00::1/127"]),
        ("fd00::5/128", True, ["fd00::5/128"]),
    ],
)
def test_small_pool_exhaustion(subnet: str, v6: bool, expected: list[str]) -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, subnet, v6=v6)
    assert next_addresses(ipam, pool_id, len(expected)) == expected
    with pytest.raises(Unavailable, match="no available addresses on this pool"):
        ipam.request_address(pool_id, None, {})
    with pytest.raises(Unavailable):
        ipam.request_address(pool_id, None, GATEWAY)


def test_gateway_on_slash_32() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.7/32")
    assert str(ipam.request_address(pool_id, None, GATEWAY)) == "10.10.0.7/32"
    with pytest.raises(Unavailable):
        ipam.request_address(pool_id, None, {})


# --- IPv6 -------------------------------------------------------------------------------------


def test_ipv6_slash_64_allocation_excludes_anycast() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "fd00:1:2:3::/64", v6=True)
    assert str(ipam.request_address(pool_id, None, GATEWAY)) == "fd00:1:2:3::1/64"
    assert next_addresses(ipam, pool_id, 2) == ["fd00:1:2:3::2/64", "fd00:1:2:3::3/64"]
    with pytest.raises(InvalidParameter, match="subnet-router anycast"):
        ipam.request_address(pool_id, ip_address("fd00:1:2:3::"), {})


def test_ipv6_last_address_is_usable_and_anycast_is_skipped() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "fd00::/64", "fd00::ffff:ffff:ffff:fffe/127", v6=True)
    assert next_addresses(ipam, pool_id, 2) == [
        "fd00::ffff:ffff:ffff:fffe/64",
        "fd00::ffff:ffff:ffff:ffff/64",
    ]
    with pytest.raises(Unavailable):
        ipam.request_address(pool_id, None, {})
    whole = explicit(ipam, "fd01::/64", v6=True)
    last = ip_address("fd01::ffff:ffff:ffff:ffff")
    assert ipam.request_address(whole, last, {}).ip == last


def test_ipv6_many_allocations_are_distinct_and_sequential() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "fd00::/64", v6=True)
    addresses = [ipam.request_address(pool_id, None, {}).ip for _ in range(1000)]
    assert addresses[0] == ip_address("fd00::1")
    assert addresses[-1] == ip_address("fd00::3e8")
    assert len(set(addresses)) == 1000


def test_large_ipv4_pool_with_thousands_of_allocations() -> None:
    ipam = DefaultIpam()
    pool_id = ipam.request_pool(LOCAL, None, None, {}, False).pool_id
    addresses = [ipam.request_address(pool_id, None, {}).ip for _ in range(5000)]
    assert addresses[0] == ip_address("172.17.0.1")
    assert addresses[-1] == ip_address("172.17.19.136")
    assert len(set(addresses)) == 5000


def test_full_slash_16_is_exhausted_exactly() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/16")
    for _ in range(65534):
        ipam.request_address(pool_id, None, {})
    with pytest.raises(Unavailable):
        ipam.request_address(pool_id, None, {})
    ipam.release_address(pool_id, ip_address("10.10.128.0"))
    assert str(ipam.request_address(pool_id, None, {})) == "10.10.128.0/16"


# --- parse_pool_option ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("base=10.20.0.0/16,size=24", PoolSpec(IPv4Network("10.20.0.0/16"), 24)),
        (" size = 20 , base = 172.80.0.0/12 ", PoolSpec(IPv4Network("172.80.0.0/12"), 20)),
        ("BASE=10.0.0.0/8,Size=8", PoolSpec(IPv4Network("10.0.0.0/8"), 8)),
        ("base=10.0.0.0/8,size=32", PoolSpec(IPv4Network("10.0.0.0/8"), 32)),
        ("base=fd00::/48,size=64", PoolSpec(IPv6Network("fd00::/48"), 64)),
    ],
)
def test_parse_pool_option(text: str, expected: PoolSpec) -> None:
    assert parse_pool_option(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected key=value"),
        ("base=10.20.0.0/16", "missing size"),
        ("size=24", "missing base"),
        ("base=10.20.0.0/16,size=24,gateway=10.20.0.1", "unexpected key 'gateway'"),
        ("base=10.20.0.0/16,size=24,size=25", "duplicate key 'size'"),
        ("base=10.20.0.0/16,size", "expected key=value"),
        ("base=10.20.0.0/16,size=abc", "not a number"),
        ("base=10.20.0.0/16,size=-1", "not a number"),
        ("base=10.20.0.0/16,size=8", "must be between 16 and 32"),
        ("base=10.20.0.0/16,size=33", "must be between 16 and 32"),
        ("base=fd00::/48,size=129", "must be between 48 and 128"),
        ("base=10.20.0.1/16,size=24", "host bits are set"),
        ("base=10.300.0.0/16,size=24", "invalid address pool base"),
        ("base=10.20.0.0,size=24", "expected CIDR notation"),
    ],
)
def test_parse_pool_option_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        parse_pool_option(text)


def test_pool_spec_validates_size() -> None:
    with pytest.raises(InvalidParameter):
        PoolSpec(IPv4Network("10.0.0.0/16"), 12)


# --- concurrency ------------------------------------------------------------------------------


def run_threads(count: int, target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_address_allocation_is_distinct() -> None:
    ipam = DefaultIpam()
    pool_id = explicit(ipam, "10.10.0.0/16")
    per_thread, threads = 500, 8
    results: list[str] = []
    results_lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        mine = [str(ipam.request_address(pool_id, None, {})) for _ in range(per_thread)]
        with results_lock:
            results.extend(mine)

    run_threads(threads, worker)
    assert len(results) == per_thread * threads
    assert len(set(results)) == len(results)


def test_concurrent_pool_requests_are_distinct() -> None:
    ipam = DefaultIpam()
    results: list[IPNetwork] = []
    results_lock = threading.Lock()
    start = threading.Barrier(10)

    def worker() -> None:
        start.wait()
        subnet = auto(ipam)
        with results_lock:
            results.append(subnet)

    run_threads(10, worker)
    assert sorted(str(s) for s in results) == sorted(f"172.{i}.0.0/16" for i in range(17, 27))
