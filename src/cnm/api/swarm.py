"""Swarm mode's endpoints, answered as a Docker daemon that is not in a swarm answers them.

cnm has no swarm mode, and it is never part of a swarm, so every swarm endpoint has Docker's
answer for that state (checked against dockerd 20.10): ``POST /swarm/leave`` is 503 "This node
is not part of a swarm" (docker-py's tests call ``leave_swarm(force=True)`` after each test and
accept exactly that), and everything that needs a manager (``/swarm``, ``/swarm/update``,
``/swarm/unlock``, ``/swarm/unlockkey``, ``/nodes``, ``/services``, ``/tasks``, ``/secrets``,
``/configs``) is 503 "This node is not a swarm manager...". Only ``init`` and ``join``, which a
Docker outside a swarm would carry out, are refused, with 501 and a message that says why.
"""

from __future__ import annotations

from aiohttp import web

from cnm.api.common import add_route, error_response

NOT_IN_SWARM = "This node is not part of a swarm"
NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to '
    "connect this node to swarm and try again."
)
MANAGER_SECTIONS = ("nodes", "services", "tasks", "secrets", "configs")


async def leave(request: web.Request) -> web.Response:
    return error_response(503, NOT_IN_SWARM)


async def no_manager(request: web.Request) -> web.Response:
    return error_response(503, NOT_A_MANAGER)


async def refuse_membership(request: web.Request) -> web.Response:
    return error_response(
        501, "cnm does not support swarm mode: this node cannot init or join a swarm"
    )


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/swarm/leave", leave)
    add_route(app, "POST", "/swarm/init", refuse_membership)
    add_route(app, "POST", "/swarm/join", refuse_membership)
    add_route(app, "*", "/swarm{rest:(?:/.*)?}", no_manager)
    sections = "|".join(MANAGER_SECTIONS)
    add_route(app, "*", f"/{{section:(?:{sections})}}{{rest:(?:/.*)?}}", no_manager)
