"""The ``/networks`` endpoints: list, inspect, create, delete, prune, connect, disconnect.

Each handler parses and validates on the event loop, then does all its controller work in one
call on a worker thread (so a response reflects one consistent view), and translates back.
``POST /networks/prune?progress=1`` (cnm's, for its CLI) streams a JSON line per deleted
network before the report (``api/progress.py``). Connect and disconnect go through the runtime, which knows the containers; served over a bare
controller (no runtime), they answer 501.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cnm.api import progress
from cnm.api.common import (
    add_route,
    backend,
    error_response,
    json_response,
    query_bool,
    read_json,
)
from cnm.api.container_json import parse_endpoint_config
from cnm.api.filters import Filters, filter_networks, parse_filters, prune_predicate
from cnm.api.translate import JsonObject, network_to_json, parse_network_create
from cnm.errors import InvalidParameter, NotFound

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.model import Endpoint, Sandbox
    from cnm.runtime.runtime import Runtime


def _list(controller: Controller, filters: Filters) -> list[dict[str, Any]]:
    in_use = {endpoint.network_id for endpoint in controller.endpoints()}
    networks = filter_networks(controller.networks(), filters, lambda n: n.id in in_use)
    return [network_to_json(network) for network in networks]


def _inspect(
    controller: Controller, runtime: Runtime | None, ref: str, scope: str
) -> dict[str, Any]:
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
    names = {}
    if runtime is not None and attachments:
        names = {c.id: c.name for c in runtime.containers(all=True)}
    peers = controller.network_hosts(network.id) if network.scope == "global" else []
    return network_to_json(network, attachments, names, peers)


async def list_networks(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    backend_ = backend(request)
    return json_response(await backend_.run(_list, backend_.controller, filters))


async def inspect_network(request: web.Request) -> web.Response:
    backend_ = backend(request)
    ref = request.match_info["ref"]
    scope = request.query.get("scope", "")
    return json_response(
        await backend_.run(_inspect, backend_.controller, backend_.runtime, ref, scope)
    )


async def create_network(request: web.Request) -> web.Response:
    network_request = parse_network_create(await read_json(request))
    backend_ = backend(request)
    network = await backend_.run(backend_.controller.create_network, network_request)
    return json_response({"Id": network.id, "Warning": ""}, status=201)


async def delete_network(request: web.Request) -> web.Response:
    backend_ = backend(request)
    await backend_.run(backend_.controller.delete_network, request.match_info["ref"])
    return web.Response(status=204)


async def prune_networks(request: web.Request) -> web.StreamResponse:
    filters = parse_filters(request.query.get("filters"))
    should_prune = prune_predicate(filters, datetime.now().astimezone())
    backend_ = backend(request)
    if query_bool(request, "progress"):
        return await progress.stream(
            request,
            lambda report: backend_.controller.prune_networks(
                should_prune, lambda n: report({"status": "Deleted", "Name": n.name, "Id": n.id})
            ),
            lambda pruned: {"NetworksDeleted": [n.name for n in pruned] or None},
            backend_.run,
        )
    pruned = await backend_.run(backend_.controller.prune_networks, should_prune)
    # Docker's report holds names, and null (not []) when nothing was deleted.
    return json_response({"NetworksDeleted": [n.name for n in pruned] or None})


def _container_ref(body: JsonObject) -> str:
    container = body.string("Container")
    if not container:
        raise InvalidParameter("Container is required: the container to connect or disconnect")
    return container


def _connect(runtime: Runtime, ref: str, container: str, body: JsonObject) -> None:
    runtime.connect(container, ref, parse_endpoint_config(body.object("EndpointConfig")))


def _disconnect(runtime: Runtime, ref: str, container: str, body: JsonObject) -> None:
    runtime.disconnect(container, ref, bool(body.boolean("Force")))


def _container_operation(
    operation: Callable[[Runtime, str, str, JsonObject], None],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A connect or disconnect handler: an unknown network is reported first, whatever the
    container, as Docker does; then the runtime does the work."""

    async def handler(request: web.Request) -> web.Response:
        backend_ = backend(request)
        network = request.match_info["ref"]
        if backend_.runtime is None:
            await backend_.run(backend_.controller.network, network)
            return error_response(
                501, "cnm serves connect/disconnect only with a container runtime"
            )
        body = JsonObject(await read_json(request), "")
        container = _container_ref(body)
        runtime = backend_.runtime

        def run() -> None:
            backend_.controller.network(network)
            operation(runtime, network, container, body)

        await backend_.run(run)
        return web.Response(status=200)

    return handler


connect = _container_operation(_connect)
disconnect = _container_operation(_disconnect)


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/networks", list_networks)
    add_route(app, "GET", "/networks/", list_networks)
    add_route(app, "POST", "/networks/create", create_network)
    add_route(app, "POST", "/networks/prune", prune_networks)
    add_route(app, "GET", "/networks/{ref}", inspect_network)
    add_route(app, "DELETE", "/networks/{ref}", delete_network)
    add_route(app, "POST", "/networks/{ref}/connect", connect)
    add_route(app, "POST", "/networks/{ref}/disconnect", disconnect)
