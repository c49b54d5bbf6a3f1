"""The ``/volumes`` endpoints: create, list (filters ``dangling``, ``driver``, ``label``,
``name``), inspect, remove and prune, with Docker's JSON.

``prune`` removes unused volumes: every one up to API 1.41, and from API 1.42 only anonymous
ones unless the filter ``all=true`` is given (Docker 23's change, which the CLI's
``docker volume prune --all`` relies on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from cnm.api.common import add_route, backend, json_response, query_bool, read_json
from cnm.api.container_ops import prune_filter
from cnm.api.filters import match_labels, match_values, parse_filters, validate_keys
from cnm.api.host_config import Fields
from cnm.api.streams import api_version
from cnm.errors import InvalidParameter

if TYPE_CHECKING:
    from cnm.runtime.volumes import Volume

LIST_FILTERS = frozenset({"dangling", "driver", "label", "name"})
PRUNE_FILTERS = frozenset({"label", "label!", "all"})


def volume_json(volume: Volume) -> dict[str, Any]:
    return {
        "CreatedAt": volume.created,
        "Driver": volume.driver,
        "Labels": dict(volume.labels),
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Options": dict(volume.options) or None,
        "Scope": volume.scope,
    }


async def create_volume(request: web.Request) -> web.Response:
    body = Fields(await read_json(request), "")
    b = backend(request)
    volume = await b.run(
        b.rt.create_volume,
        body.string("Name") or None,
        body.string("Driver") or "local",
        body.string_map("DriverOpts"),
        body.string_map("Labels"),
    )
    return json_response(volume_json(volume), status=201)


async def list_volumes(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    validate_keys(filters, LIST_FILTERS)
    dangling = filters.get("dangling", [])
    if any(v not in ("true", "false", "1", "0") for v in dangling):
        raise InvalidParameter(f"invalid filter 'dangling={dangling[0]}'")
    b = backend(request)
    found = []
    for volume, users in await b.run(b.rt.volumes):
        if dangling and (users == 0) != (dangling[0] in ("true", "1")):
            continue
        if "driver" in filters and not match_values(filters["driver"], volume.driver):
            continue
        if "name" in filters and not match_values(filters["name"], volume.name):
            continue
        if "label" in filters and not match_labels(filters["label"], volume.labels):
            continue
        found.append(volume_json(volume))
    return json_response({"Volumes": found, "Warnings": None})


async def inspect_volume(request: web.Request) -> web.Response:
    b = backend(request)
    return json_response(volume_json(await b.run(b.rt.volume, request.match_info["name"])))


async def remove_volume(request: web.Request) -> web.Response:
    b = backend(request)
    await b.run(b.rt.remove_volume, request.match_info["name"], query_bool(request, "force"))
    return web.Response(status=204)


async def prune_volumes(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    everything = filters.pop("all", [""])[0] in ("true", "1") or api_version(request) < (1, 42)
    keep_labels = prune_filter(filters, PRUNE_FILTERS)

    def keep(volume: Volume) -> bool:
        return keep_labels(0.0, volume.labels) or (not everything and not volume.anonymous)

    b = backend(request)
    removed, reclaimed = await b.run(b.rt.prune_volumes, keep)
    return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed})


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/volumes/create", create_volume)
    add_route(app, "POST", "/volumes/prune", prune_volumes)
    add_route(app, "GET", "/volumes", list_volumes)
    add_route(app, "GET", "/volumes/{name}", inspect_volume)
    add_route(app, "DELETE", "/volumes/{name}", remove_volume)
