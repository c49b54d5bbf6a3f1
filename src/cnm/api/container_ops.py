"""``/containers/{id}/pause|unpause|update|changes`` and ``/containers/prune``: what is done to a
container beyond starting and stopping it.

``update`` takes Docker's Resources and a restart policy; what the request gives replaces the
container's, and a running container gets the new limits at once. ``prune`` removes the stopped
containers that its filters (``until``, ``label``, ``label!``) select and reports the space of
their writable layers, as Docker does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from cnm.api.common import add_route, backend, json_response, read_json
from cnm.api.filters import Filters, match_labels, parse_filters, validate_keys
from cnm.api.host_config import Fields, parse_resources
from cnm.api.timefmt import unix_time
from cnm.errors import InvalidParameter
from cnm.runtime.model import RestartPolicy

if TYPE_CHECKING:
    from cnm.runtime.model import Container

PRUNE_FILTERS = frozenset({"until", "label", "label!"})


async def pause_container(request: web.Request) -> web.Response:
    b = backend(request)
    await b.run(b.rt.pause_container, request.match_info["ref"])
    return web.Response(status=204)


async def unpause_container(request: web.Request) -> web.Response:
    b = backend(request)
    await b.run(b.rt.unpause_container, request.match_info["ref"])
    return web.Response(status=204)


async def update_container(request: web.Request) -> web.Response:
    body = Fields(await read_json(request), "")
    resources, given = parse_resources(body)
    policy = None
    entry = body.child("RestartPolicy")
    if entry is not None and entry.string("Name"):  # the CLI sends an empty one: unchanged
        policy = RestartPolicy(entry.string("Name"), entry.integer("MaximumRetryCount") or 0)
    b = backend(request)
    warnings = await b.run(
        b.rt.update_container, request.match_info["ref"], resources, given, policy
    )
    return json_response({"Warnings": warnings})


async def container_changes(request: web.Request) -> web.Response:
    b = backend(request)
    found = await b.run(b.rt.container_changes, request.match_info["ref"])
    return json_response([{"Path": path, "Kind": kind} for path, kind in found] or None)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def until_seconds(text: str) -> float:
    """Docker's ``until`` (timetypes.GetTimestamp): a UNIX time with an optional fraction, an
    RFC 3339 time, or a Go duration before now (``24h``, ``90m``)."""
    try:
        return float(text)
    except ValueError:
        pass
    if _DURATION.fullmatch(text) or re.fullmatch(rf"(?:{_DURATION.pattern})+", text):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(text))
        return time.time() - seconds
    found = unix_time(text)
    if not found:
        raise InvalidParameter(f"invalid filter 'until={text}'")
    return float(found)


def prune_filter(
    filters: Filters, allowed: frozenset[str]
) -> Callable[[float, dict[str, str]], bool]:
    """Prune's filters as a predicate of (creation time, labels): True keeps the object."""
    validate_keys(filters, allowed)
    until = [until_seconds(v) for v in filters.get("until", [])]

    def keep(created: float, labels: dict[str, str]) -> bool:
        if until and not all(created < u for u in until):
            return True
        if "label" in filters and not match_labels(filters["label"], labels):
            return True
        return "label!" in filters and match_labels(filters["label!"], labels)

    return keep


async def prune_containers(request: web.Request) -> web.Response:
    keep = prune_filter(parse_filters(request.query.get("filters")), PRUNE_FILTERS)

    def kept(container: Container) -> bool:
        return keep(unix_time(container.created), container.config.labels)

    b = backend(request)
    removed, reclaimed = await b.run(b.rt.prune_containers, kept)
    return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": reclaimed})


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/containers/prune", prune_containers)
    add_route(app, "POST", "/containers/{ref}/pause", pause_container)
    add_route(app, "POST", "/containers/{ref}/unpause", unpause_container)
    add_route(app, "POST", "/containers/{ref}/update", update_container)
    add_route(app, "GET", "/containers/{ref}/changes", container_changes)
