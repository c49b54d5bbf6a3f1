"""``DELETE /containers/{parent}/{alias}?link=1``: ``docker rm --link``, which removes a legacy
link and leaves both containers (see ``cnm.runtime.links``).

The link is named by its path, ``web/database`` (or ``/web/database``): the docker CLI puts it
in the URL as it is, docker-py escapes the slash, so both forms reach ``remove_link``. A name
without a parent ("Conflict, cannot remove the default link name of the container") and one
that names no link (404 "No such container: web/nope") get Docker's answers.
"""

from __future__ import annotations

from aiohttp import web

from cnm.api.common import add_route, backend, query_bool
from cnm.errors import NotFound


async def remove_link(request: web.Request) -> web.Response:
    path = request.match_info["ref"]
    if not query_bool(request, "link"):
        raise NotFound(f"No such container: {path}")
    b = backend(request)
    await b.run(b.rt.remove_link, path)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    add_route(app, "DELETE", "/containers/{ref:[^{}]+/[^{}]*}", remove_link)
