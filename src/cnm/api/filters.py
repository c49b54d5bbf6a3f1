"""Docker's ``filters`` query parameter and its semantics for networks, as pure functions.

The semantics are Docker's (daemon/network/filter.go, daemon/prune.go, api/types/filters):

* ``name`` and ``id`` match when a value equals the field or, read as a regular expression,
  is found in it, so ``name=web`` also lists ``my-web-1``; ``driver`` and ``scope`` match exactly.
* ``label=key`` or ``label=key=value``: every value given must match (AND); ``label!`` (prune)
  excludes a network only when all of its values match.
* Values of one key are alternatives (OR), except for labels.
* ``type`` is ``custom`` or ``builtin``; ``dangling`` is ``true``/``1`` or ``false``/``0``.
* ``until`` (prune) is a Go duration before now (``24h``, ``1h30m``), a Unix timestamp
  (``1700000000.5``) or an RFC 3339 date or date-time; without a zone, the daemon's local zone.

A filter key that the call does not know is refused with Docker's ``invalid filter 'key'``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime, timedelta

from cnm import validate
from cnm.errors import InvalidParameter
from cnm.model import Network

Filters = dict[str, list[str]]

LIST_FILTERS = frozenset({"dangling", "driver", "id", "label", "name", "scope", "type"})
PRUNE_FILTERS = frozenset({"label", "label!", "until"})


def parse_filters(text: str | None) -> Filters:
    """Decode the ``filters`` parameter: ``{"key": {"value": true}}`` as current clients send
    it, or the older ``{"key": ["value"]}``."""
    if not text:
        return {}
    raw = validate.json_document(text, "filters")
    if not isinstance(raw, dict):
        raise InvalidParameter(f"invalid filters {text!r}: expected a JSON object")
    parsed: Filters = {}
    for key, values in raw.items():
        if isinstance(values, dict) or (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            parsed[key] = list(values)
        else:
            raise InvalidParameter(
                f"invalid filters {text!r}: the values of {key!r} must be an object or a list"
            )
    return parsed


def validate_keys(filters: Filters, accepted: Collection[str]) -> None:
    for key in filters:
        if key not in accepted:
            raise InvalidParameter(f"invalid filter '{key}'")


def match_values(values: list[str], field: str) -> bool:
    """Docker's ``Args.Match``: an exact match, or a regular expression found in the field."""
    for value in values:
        if value == field:
            return True
        try:
            if re.search(value, field):
                return True
        except re.error:
            continue
    return False


def match_labels(values: list[str], labels: dict[str, str]) -> bool:
    """Docker's ``Args.MatchKVList``: every ``key`` or ``key=value`` must be among the labels."""
    if not values:
        return True
    if not labels:
        return False
    for value in values:
        key, has_value, wanted = value.partition("=")
        if key not in labels or (has_value and labels[key] != wanted):
            return False
    return True


def _dangling_only(values: list[str]) -> bool:
    if len(values) > 1:
        raise InvalidParameter('got more than one value for filter key "dangling"')
    if values[0] in ("1", "true"):
        return True
    if values[0] in ("0", "false"):
        return False
    raise InvalidParameter(
        'invalid value for filter \'dangling\', must be "true" (or "1"), or "false" (or "0")'
    )


def filter_networks(
    networks: list[Network], filters: Filters, in_use: Callable[[Network], bool]
) -> list[Network]:
    """The networks that ``GET /networks`` lists for ``filters``; ``in_use`` tells whether a
    network has endpoints (Docker: containers or services)."""
    validate_keys(filters, LIST_FILTERS)
    for kind in filters.get("type", []):
        if kind not in ("custom", "builtin"):
            raise InvalidParameter(f"invalid filter 'type={kind}'")
    dangling = _dangling_only(filters["dangling"]) if filters.get("dangling") else None
    kept = []
    for network in networks:
        if "driver" in filters and network.driver not in filters["driver"]:
            continue
        if "name" in filters and not match_values(filters["name"], network.name):
            continue
        if "id" in filters and not match_values(filters["id"], network.id):
            continue
        if "label" in filters and not match_labels(filters["label"], network.labels):
            continue
        if "scope" in filters and network.scope not in filters["scope"]:
            continue
        if "type" in filters and ("builtin" if network.predefined else "custom") not in set(
            filters["type"]
        ):
            continue
        if dangling is True and (network.predefined or in_use(network)):
            continue
        if dangling is False and not (network.predefined or in_use(network)):
            continue
        kept.append(network)
    return kept


def prune_predicate(filters: Filters, now: datetime) -> Callable[[Network], bool]:
    """Which networks ``POST /networks/prune`` may delete (the controller adds: not predefined,
    no endpoints)."""
    validate_keys(filters, PRUNE_FILTERS)
    until_ns: int | None = None
    if filters.get("until"):
        if len(filters["until"]) > 1:
            raise InvalidParameter("more than one until filter specified")
        until_ns = parse_until(filters["until"][0], now)
    labels = filters.get("label", [])
    not_labels = filters.get("label!", [])

    def should_prune(network: Network) -> bool:
        if until_ns is not None and rfc3339_ns(network.created) > until_ns:
            return False
        if not match_labels(labels, network.labels):
            return False
        return not (not_labels and match_labels(not_labels, network.labels))

    return should_prune


_RFC3339 = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?(?P<zone>Z|[+-]\d{2}:\d{2})",
    re.IGNORECASE | re.ASCII,
)


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time such as Docker's ``Created``."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidParameter(f"invalid RFC 3339 time {text!r}")
    zone = "+00:00" if match["zone"].upper() == "Z" else match["zone"]
    moment = datetime.fromisoformat(match["base"] + zone)
    return int(moment.timestamp()) * 10**9 + int((match["frac"] or "").ljust(9, "0"))


_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)", re.ASCII)


def parse_go_duration(text: str) -> int | None:
    """Nanoseconds of a Go duration (``1h30m``, ``-1.5h``, ``300ms``), or None if it is not one."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if body == "0":
        return 0
    if not body:
        return None
    total = 0
    position = 0
    for part in _DURATION_PART.finditer(body):
        if part.start() != position:
            return None
        total += int(float(part[1]) * _DURATION_UNITS_NS[part[2]])
        position = part.end()
    return sign * total if position == len(body) else None


_UNIX_TIME = re.compile(r"(?P<sec>-?\d+)(?:\.(?P<frac>\d{1,9}))?", re.ASCII)
_DATE_WITH_ZONE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})(?P<zone>Z|[+-]\d{2}:\d{2})", re.I | re.ASCII
)


def parse_until(value: str, now: datetime) -> int:
    """The ``until`` filter as nanoseconds since the epoch (Docker's ``timetypes.GetTimestamp``).
    ``now`` must be timezone-aware; zone-less times are read in ``now``'s zone."""
    duration = parse_go_duration(value) if value != "0" else None
    if duration is not None:
        cutoff = now - timedelta(microseconds=duration // 1000)
        return int(cutoff.timestamp() * 10**9)
    unix = _UNIX_TIME.fullmatch(value)
    if unix is not None:
        return int(unix["sec"]) * 10**9 + int((unix["frac"] or "").ljust(9, "0"))
    moment = _parse_time(value, now)
    if moment is None:
        raise InvalidParameter(f"failed to parse value as time or duration: {value!r}")
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def _parse_time(value: str, now: datetime) -> datetime | None:
    zoned = _DATE_WITH_ZONE.fullmatch(value)
    if zoned is not None:
        zone = "+00:00" if zoned["zone"].upper() == "Z" else zoned["zone"]
        return datetime.fromisoformat(f"{zoned['date']}T00:00:00{zone}")
    text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        moment = (
            datetime.fromisoformat(text)
            if "T" in text or "t" in text
            else datetime.combine(date.fromisoformat(text), datetime.min.time())
        )
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo or UTC)
    return moment
