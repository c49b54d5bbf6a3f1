"""cnm's own endpoints for the embedded resolver (not Docker's, hence the ``/cnm`` prefix):

* ``GET /cnm/dns/lookup?container=REF&name=NAME&type=A`` — what the container would get for the
  name and why: the network and containers a record comes from, or the upstreams tried. The
  query really runs, as if the container had sent it (forwarding included).
* ``GET /cnm/metrics`` — the resolver's counters, under ``"DNS"``.

They are added by the daemon next to the Engine API routes (``add_routes``), with the resolver
the daemon started.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import dns.name
import dns.rdatatype
from aiohttp import web

from cnm.api.common import Backend, add_route, backend, json_response
from cnm.errors import Conflict, InvalidParameter, NotFound

if TYPE_CHECKING:
    from cnm.dns.resolver import Resolver

RESOLVER: web.AppKey[Resolver] = web.AppKey("resolver")


def _sandbox_of(backend_: Backend, ref: str) -> str:
    """The sandbox a container's queries come from (a sandbox ID is taken too)."""
    if backend_.runtime is not None:
        try:
            container = backend_.runtime.container(ref)
        except NotFound:
            container = None
        if container is not None:
            if not container.state.running or not container.sandbox_id:
                raise Conflict(f"Container {container.id} is not running")
            return container.sandbox_id
    try:
        return backend_.controller.sandbox(ref).id
    except NotFound:
        raise NotFound(f"No such container: {ref}") from None


async def lookup(request: web.Request) -> web.Response:
    ref = request.query.get("container", "")
    name = request.query.get("name", "")
    qtype = request.query.get("type", "A").upper()
    if not ref or not name:
        raise InvalidParameter("a container and a name are required")
    try:
        dns.rdatatype.from_text(qtype)
        dns.name.from_text(name)
    except Exception as err:
        raise InvalidParameter(f"invalid query {name!r} {qtype!r}: {err}") from None
    backend_ = backend(request)
    sandbox_id = await backend_.run(_sandbox_of, backend_, ref)
    future = request.app[RESOLVER].lookup(sandbox_id, name, qtype)
    result: dict[str, Any] = await asyncio.wrap_future(future)
    return json_response({"Container": ref, **result})


async def metrics(request: web.Request) -> web.Response:
    return json_response({"DNS": request.app[RESOLVER].metrics()})


def add_routes(app: web.Application, resolver: Resolver) -> None:
    app[RESOLVER] = resolver
    add_route(app, "GET", "/cnm/dns/lookup", lookup)
    add_route(app, "GET", "/cnm/metrics", metrics)
