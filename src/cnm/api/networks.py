"""The ``/networks`` endpoints: list, inspect, create, delete, prune.

Each handler parses and validates on the event loop, then does all its controller work in one
call on a worker thread (so a response reflects one consistent view), and translates back.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cnm.api.common import add_route, backend, error_response, json_response, read_json
from cnm.api.filters import Filters, filter_networks, parse_filters, prune_predicate
from cnm.api.translate import network_to_json, parse_network_create
from cnm.errors import NotFound

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.model import Endpoint, Sandbox


def _list(controller: Controller, filters: Filters) -> list[dict[str, Any]]:
    in_use = {endpoint.network_id for endpoint in controller.endpoints()}
    networks = filter_networks(controller.networks(), filters, lambda n: n.id in in_use)
    return [network_to_json(network) for network in networks]


def _inspect(controller: Controller, ref: str, scope: str) -> dict[str, Any]:
    network = controller.network(ref)
    if scope and scope != network.scope:
        raise NotFound(f"network {ref} not found")
    attachments: list[tuple[Endpoint, Sandbox]] = []
    for endpoint in controller.endpoints(network.id):
        if endpoint.sandbox_id is None:
            continue
        try:
            attachments.append((endpoint, controller.sandbox(endpoint.sandbox_id)))
        except NotFound:
            continue  # the sandbox went away while we looked
    return network_to_json(network, attachments)


async def list_networks(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    backend_ = backend(request)
    return json_response(await backend_.run(_list, backend_.controller, filters))


async def inspect_network(request: web.Request) -> web.Response:
    backend_ = backend(request)
    ref = request.match_info["ref"]
    scope = request.query.get("scope", "")
    return json_response(await backend_.run(_inspect, backend_.controller, ref, scope))


async def create_network(request: web.Request) -> web.Response:
    network_request = parse_network_create(await read_json(request))
    backend_ = backend(request)
    network = await backend_.run(backend_.controller.create_network, network_request)
    return json_response({"Id": network.id, "Warning": ""}, status=201)


async def delete_network(request: web.Request) -> web.Response:
    backend_ = backend(request)
    await backend_.run(backend_.controller.delete_network, request.match_info["ref"])
    return web.Response(status=204)


async def prune_networks(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    should_prune = prune_predicate(filters, datetime.now().astimezone())
    backend_ = backend(request)
    pruned = await backend_.run(backend_.controller.prune_networks, should_prune)
    # Docker's report holds names, and null (not []) when nothing was deleted.
    return json_response({"NetworksDeleted": [n.name for n in pruned] or None})


async def not_served_connect(request: web.Request) -> web.Response:
    """Connecting needs containers (a later issue); an unknown network is still a 404."""
    backend_ = backend(request)
    await backend_.run(backend_.controller.network, request.match_info["ref"])
    return error_response(
        501, "cnm does not serve container connect/disconnect yet: there are no containers"
    )


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/networks", list_networks)
    add_route(app, "GET", "/networks/", list_networks)
    add_route(app, "POST", "/networks/create", create_network)
    add_route(app, "POST", "/networks/prune", prune_networks)
    add_route(app, "GET", "/networks/{ref}", inspect_network)
    add_route(app, "DELETE", "/networks/{ref}", delete_network)
    add_route(app, "POST", "/networks/{ref}/connect", not_served_connect)
    add_route(app, "POST", "/networks/{ref}/disconnect", not_served_connect)
