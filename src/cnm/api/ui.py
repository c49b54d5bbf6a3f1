"""The topology page: ``/ui/`` on the API socket, and the read-only listener on a loopback
TCP port (``cnm daemon --observe-listen 127.0.0.1:PORT``) that a browser can open.

The page is three files shipped in the package (``cnm/observe/static``): ``index.html``,
``topology.js`` (ours) and ``cytoscape.min.js``, the graph-layout library, vendored with its
licence beside it (``cytoscape.LICENSE``, MIT); nothing is fetched from anywhere else. It
follows ``/cnm/topology/events`` (server-sent events) and redraws on every snapshot; a click
on a network or a container shows its inspect data (``GET /networks/{id}``,
``GET /containers/{id}/json``), and the form at the top asks ``/cnm/explain``.

The TCP listener serves only what reads: the page, the topology and its events, explain, the
inspect routes and ``/metrics``. The Engine API, which can run commands as root, stays on the
Unix socket (its permissions are the access control); a TCP port has none, so it is bound to a
loopback address only, and only when asked for.
"""

from __future__ import annotations

import ipaddress
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Middleware

from cnm.api import containers, networks, observe
from cnm.api.common import BACKEND, Backend, add_route
from cnm.errors import InvalidParameter, NotFound

STATIC = resources.files("cnm.observe") / "static"
FILES = {
    "index.html": "text/html",
    "topology.js": "text/javascript",
    "cytoscape.min.js": "text/javascript",
    "cytoscape.LICENSE": "text/plain",
}


async def page(request: web.Request) -> web.Response:
    name = request.match_info.get("name") or "index.html"
    if name not in FILES:
        raise NotFound(f"no such file: {name}")
    body = (STATIC / name).read_bytes()
    return web.Response(body=body, content_type=FILES[name], charset="utf-8")


async def to_page(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui", to_page)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/{name}", page)


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:PORT`` or ``[::1]:PORT``: a loopback address and a port."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidParameter(f"invalid listen address {text!r}: use 127.0.0.1:PORT")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidParameter(f"invalid listen address {text!r}: {host!r} is not an IP") from None
    if not address.is_loopback:
        raise InvalidParameter(
            f"refusing to serve on {host}: the page and metrics are served on a loopback "
            "address only (127.0.0.1 or ::1); put a proxy with access control in front to "
            "share them"
        )
    return str(address), int(port)


def make_read_only_app(
    backend_: Backend, main: web.Application, middlewares: list[Middleware]
) -> web.Application:
    """The routes a browser or a Prometheus server may read, over the same backend and change
    notices as the API socket's application ``main``."""
    app = web.Application(middlewares=middlewares)
    app[BACKEND] = backend_
    app[observe.CHANGES] = main[observe.CHANGES]
    add_routes(app)
    add_route(app, "GET", "/cnm/topology", observe.topology)
    add_route(app, "GET", "/cnm/topology/events", observe.topology_events)
    add_route(app, "GET", "/cnm/explain", observe.explain_route)
    add_route(app, "GET", "/networks/{ref}", networks.inspect_network)
    if backend_.runtime is not None:
        add_route(app, "GET", "/containers/{ref}/json", containers.inspect_container)
    return app
