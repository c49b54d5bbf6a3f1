"""cnm's own endpoints for seeing the network (``/cnm`` prefix: not Docker's):

* ``GET /cnm/topology`` — the topology as records (``cnm.observe.topology``), as JSON;
* ``GET /cnm/topology/events`` — server-sent events: the topology now, then again after every
  change (``event: topology``), for the web page;
* ``GET /cnm/explain?from=A&to=B[:port[/proto]][&ipv6=1]`` — whether A reaches B and why
  (``cnm.observe.explain``); 200 with ``"Reachable": false`` when it does not.

Changes are noticed two ways: the controller's events (networks, endpoints, sandboxes, from
any caller) and every successful request that is not a GET (a container start, a rename: the
runtime's own records). Both only mark the topology dirty; each event stream sends a new
snapshot at most every ``COALESCE_S`` while changes keep coming, so a burst of a hundred
connects costs a few snapshots, not a hundred.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from cnm.api.common import (
    BACKEND,
    Backend,
    Handler,
    add_route,
    backend,
    json_response,
    query_bool,
)
from cnm.errors import InvalidParameter
from cnm.observe.explain import explain
from cnm.observe.topology import build_topology

if TYPE_CHECKING:
    from cnm.events import Event

log = logging.getLogger(__name__)

COALESCE_S = 0.05
KEEPALIVE_S = 15.0


class Changes:
    """A change counter the event streams wait on; bumped from any thread."""

    def __init__(self) -> None:
        self.version = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def bump(self) -> None:
        """From the event loop."""
        self.version += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def bump_threadsafe(self, _: Event | None = None) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.bump)

    async def wait(self, seen: int, timeout: float) -> bool:
        """Until the version moves past ``seen`` (True) or ``timeout`` passes (False)."""
        if self.version != seen or self.closed:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)
        return True

    def close(self) -> None:
        self.closed = True
        self.bump()


CHANGES = web.AppKey("changes", Changes)


def _snapshot(backend_: Backend) -> dict[str, object]:
    return build_topology(backend_.controller, backend_.runtime).to_dict()


async def topology(request: web.Request) -> web.Response:
    backend_ = backend(request)
    return json_response(await backend_.run(_snapshot, backend_))


async def topology_events(request: web.Request) -> web.StreamResponse:
    changes = request.app[CHANGES]
    backend_ = backend(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    seen = -1
    while not changes.closed:
        if seen != changes.version:
            seen = changes.version
            data = json.dumps(await backend_.run(_snapshot, backend_), separators=(",", ":"))
            await response.write(f"event: topology\ndata: {data}\n\n".encode())
            await asyncio.sleep(COALESCE_S)
            continue
        if not await changes.wait(seen, KEEPALIVE_S):
            await response.write(b": keep-alive\n\n")
    return response


async def explain_route(request: web.Request) -> web.Response:
    source = request.query.get("from", "")
    target = request.query.get("to", "")
    if not source or not target:
        raise InvalidParameter("explain needs from= and to= (a container, host or an address)")
    version = 6 if query_bool(request, "ipv6") else None
    backend_ = backend(request)
    answer = await backend_.run(
        explain, backend_.controller, backend_.runtime, source, target, version
    )
    return json_response(answer.to_dict())


@web.middleware
async def notice_changes(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.method not in ("GET", "HEAD") and response.status < 400:
        request.app[CHANGES].bump()
    return response


def add_routes(app: web.Application) -> None:
    changes = Changes()
    app[CHANGES] = changes
    app.middlewares.append(notice_changes)

    async def on_startup(_: web.Application) -> None:
        changes.bind(asyncio.get_running_loop())
        app[BACKEND].controller.subscribe(changes.bump_threadsafe)

    async def on_shutdown(_: web.Application) -> None:
        changes.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    add_route(app, "GET", "/cnm/topology", topology)
    add_route(app, "GET", "/cnm/topology/events", topology_events)
    add_route(app, "GET", "/cnm/explain", explain_route)
