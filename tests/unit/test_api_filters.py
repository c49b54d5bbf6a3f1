"""Docker's filter semantics for networks (cnm.api.filters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cnm.api.filters import (
    filter_networks,
    parse_filters,
    parse_go_duration,
    parse_until,
    prune_predicate,
    rfc3339_ns,
)
from cnm.errors import InvalidParameter
from cnm.model import Network

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def _net(name: str, **fields: object) -> Network:
    values: dict[str, object] = {
        "id": (name.encode().hex() + "0" * 64)[:64],
        "name": name,
        "driver": "bridge",
        "scope": "local",
        "created": "2025-06-01T11:00:00.000000000Z",
    }
    values.update(fields)
    return Network(**values)  # type: ignore[arg-type]


NETWORKS = [
    _net("bridge", predefined=True),
    _net("host", driver="host", predefined=True),
    _net("none", driver="null", predefined=True),
    _net("web-front", labels={"tier": "front", "env": "prod"}),
    _net("web-back", labels={"tier": "back"}),
    _net("db", driver="macvlan"),
]
IN_USE = {"web-front"}


def _names(filters: dict[str, list[str]]) -> list[str]:
    kept = filter_networks(NETWORKS, filters, lambda n: n.name in IN_USE)
    return [n.name for n in kept]


def test_parse_both_filter_encodings() -> None:
    assert parse_filters('{"name":{"web":true},"driver":{"bridge":true}}') == {
        "name": ["web"],
        "driver": ["bridge"],
    }
    assert parse_filters('{"label":["a=b","c"]}') == {"label": ["a=b", "c"]}
    assert parse_filters(None) == {}
    assert parse_filters("") == {}


@pytest.mark.parametrize("text", ["nojson", "[]", '{"name":"web"}', '{"name":[1]}'])
def test_malformed_filters_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid filters"):
        parse_filters(text)


def test_unknown_key_is_refused_like_docker() -> None:
    with pytest.raises(InvalidParameter, match=r"^invalid filter 'colour'$"):
        _names({"colour": ["red"]})


def test_name_and_id_match_as_substrings_or_regexps() -> None:
    assert _names({"name": ["web"]}) == ["web-front", "web-back"]
    assert _names({"name": ["^web-b"]}) == ["web-back"]
    assert _names({"name": ["db", "host"]}) == ["host", "db"]
    assert _names({"name": ["[invalid"]}) == []
    assert _names({"id": [NETWORKS[5].id[:6]]}) == ["db"]


def test_driver_and_scope_match_exactly() -> None:
    assert _names({"driver": ["bridg"]}) == []
    assert _names({"driver": ["null", "macvlan"]}) == ["none", "db"]
    assert _names({"scope": ["local"]}) == [n.name for n in NETWORKS]
    assert _names({"scope": ["swarm"]}) == []


def test_labels_must_all_match() -> None:
    assert _names({"label": ["tier"]}) == ["web-front", "web-back"]
    assert _names({"label": ["tier=back"]}) == ["web-back"]
    assert _names({"label": ["tier", "env=prod"]}) == ["web-front"]
    assert _names({"label": ["tier=front", "env=dev"]}) == []


def test_type_builtin_and_custom() -> None:
    assert _names({"type": ["builtin"]}) == ["bridge", "host", "none"]
    assert _names({"type": ["custom"]}) == ["web-front", "web-back", "db"]
    assert len(_names({"type": ["custom", "builtin"]})) == len(NETWORKS)
    with pytest.raises(InvalidParameter, match="invalid filter 'type=other'"):
        _names({"type": ["other"]})


def test_dangling() -> None:
    assert _names({"dangling": ["true"]}) == ["web-back", "db"]
    assert _names({"dangling": ["1"]}) == ["web-back", "db"]
    assert _names({"dangling": ["false"]}) == ["bridge", "host", "none", "web-front"]
    with pytest.raises(InvalidParameter, match="invalid value for filter 'dangling'"):
        _names({"dangling": ["maybe"]})
    with pytest.raises(InvalidParameter, match="more than one value"):
        _names({"dangling": ["true", "false"]})


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("10s", 10 * 10**9),
        ("1h30m", 5400 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("300ms", 300 * 10**6),
        ("-2m", -120 * 10**9),
        ("1us", 1000),
        ("1µs", 1000),  # Go accepts the micro sign too
        ("10", None),
        ("h", None),
        ("1d", None),
        ("", None),
    ],
)
def test_go_durations(text: str, ns: int | None) -> None:
    assert parse_go_duration(text) == ns


def test_until_forms() -> None:
    hour_ago = int((NOW - timedelta(hours=1)).timestamp()) * 10**9
    assert parse_until("1h", NOW) == hour_ago
    assert parse_until("1700000000", NOW) == 1700000000 * 10**9
    assert parse_until("1700000000.5", NOW) == 1700000000 * 10**9 + 500_000_000
    assert parse_until("2025-06-01T10:00:00Z", NOW) == int(
        datetime(2025, 6, 1, 10, tzinfo=UTC).timestamp() * 10**9
    )
    assert (
        parse_until("2025-06-01T10:00:00.25+02:00", NOW)
        == int(datetime(2025, 6, 1, 8, tzinfo=UTC).timestamp() * 10**9) + 250_000_000
    )
    assert parse_until("2025-06-01", NOW) == int(datetime(2025, 6, 1, tzinfo=UTC).timestamp()) * (
        10**9
    )
    assert parse_until("2025-06-01T10", NOW) == int(
        datetime(2025, 6, 1, 10, tzinfo=UTC).timestamp() * 10**9
    )


def test_until_without_zone_uses_the_daemons_zone() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert parse_until("2025-06-01T10:00:00", plus_two) == int(
        datetime(2025, 6, 1, 8, tzinfo=UTC).timestamp() * 10**9
    )


def test_until_garbage_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="failed to parse value as time or duration"):
        parse_until("yesterday", NOW)


def test_rfc3339_keeps_nanoseconds() -> None:
    assert rfc3339_ns("1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert rfc3339_ns("1970-01-01T01:00:00+01:00") == 0


def _pruned(filters: dict[str, list[str]]) -> list[str]:
    should_prune = prune_predicate(filters, NOW)
    return [n.name for n in NETWORKS if not n.predefined and should_prune(n)]


def test_prune_filters() -> None:
    assert _pruned({}) == ["web-front", "web-back", "db"]
    assert _pruned({"label": ["tier"]}) == ["web-front", "web-back"]
    assert _pruned({"label!": ["tier"]}) == ["db"]
    assert _pruned({"label!": ["tier=front"]}) == ["web-back", "db"]
    # label! excludes only the networks that match all of its values
    assert _pruned({"label!": ["tier", "env=prod"]}) == ["web-back", "db"]
    assert _pruned({"until": ["30m"]}) == ["web-front", "web-back", "db"]
    assert _pruned({"until": ["2h"]}) == []


def test_prune_refuses_list_filters_and_two_untils() -> None:
    with pytest.raises(InvalidParameter, match="invalid filter 'name'"):
        prune_predicate({"name": ["x"]}, NOW)
    with pytest.raises(InvalidParameter, match="more than one until filter"):
        prune_predicate({"until": ["1h", "2h"]}, NOW)
