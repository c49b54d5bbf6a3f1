"""The aiohttp application: API version negotiation, Docker's headers, error mapping.

Every route is registered twice, unversioned and under ``/v{major.minor}/`` (see
``common.add_route``): aiohttp resolves the route before any middleware runs, so a middleware
cannot strip the prefix and re-route. ``check_version`` then refuses versions outside
[MIN_API_VERSION, API_VERSION] with Docker's messages.

Errors leave as Docker's ``{"message": "..."}`` with the status the cnm.errors class carries.
An unknown route, or a known one with the wrong method, is 404 "page not found" (Docker maps
both the same way). Engine endpoints that the docker CLI may call but cnm does not serve
(build, plugins...) answer 501 with a message; the part of cnm that comes to serve one of them
removes its prefix from ``NOT_SERVED_YET``. The container, image and exec endpoints are served
when the application is made with a runtime (the daemon always gives one).

Docker's headers (Api-Version, Server...) are added as each response is prepared, so that
streamed and hijacked responses carry them too.

A client that goes away mid-request (a body cut short, a followed log stream it cancels) is
not an error of ours: it is logged at debug level, without a traceback. A request aiohttp cannot
parse (a request line or header over its 8190-byte limit, a malformed header) never reaches a
handler: aiohttp answers it itself in plain text and logs a traceback, so ``ApiRunner`` gives
it a request handler whose ``handle_error`` answers Docker's JSON instead (400, the connection
then closes) and logs one line.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from cnm import __version__
from cnm.api import (
    API_VERSION,
    MIN_API_VERSION,
    archive,
    container_ops,
    containers,
    events,
    execs,
    images,
    links,
    metrics,
    networks,
    observe,
    stats,
    swarm,
    system,
    ui,
    volumes,
)
from cnm.api.common import (
    BACKEND,
    Backend,
    DaemonInfo,
    Handler,
    add_route,
    error_response,
)
from cnm.errors import CnmError, InvalidParameter

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.runtime.runtime import Runtime

log = logging.getLogger(__name__)

WORKER_THREADS = 8
BLOCKING_THREADS = 64  # stops, kills and exec processes, one thread each while they last
NOT_SERVED_YET = (
    "auth",
    "build",
    "distribution",
    "plugins",
    "session",
    "system",
)


def _parse_version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    response = await handler(request)
    log.debug(
        "request",
        extra={
            "method": request.method,
            "path": request.path_qs,
            "status": response.status,
            "duration_ms": round((time.monotonic() - started) * 1000, 2),
        },
    )
    return response


async def docker_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Docker-Experimental"] = "false"
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"cnm/{__version__} (linux)"


@web.middleware
async def map_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CnmError as err:
        if err.status == 304:  # Docker's "not modified" has no body
            return web.Response(status=304)
        return error_response(err.status, str(err) or type(err).__name__)
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            return error_response(404, "page not found")
        return error_response(exc.status, exc.reason)
    except ConnectionError as exc:
        # The client went away; nobody reads this answer (aiohttp drops it quietly).
        log.debug(
            "client went away",
            extra={"method": request.method, "path": request.path, "error": str(exc)},
        )
        return error_response(400, "the client closed the connection")
    except Exception as exc:
        log.exception("request failed", extra={"method": request.method, "path": request.path})
        return error_response(500, f"internal error: {exc}")


@web.middleware
async def check_version(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.match_info.get("version")
    if version is not None:
        if _parse_version(version) < _parse_version(MIN_API_VERSION):
            raise InvalidParameter(
                f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version"
            )
        if _parse_version(version) > _parse_version(API_VERSION):
            raise InvalidParameter(
                f"client version {version} is too new. Maximum supported API version is "
                f"{API_VERSION}"
            )
    return await handler(request)


class _DockerErrors(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse as Docker does."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong):
            text = f"the request line or a header is longer than {exc.args[1]} bytes"
        else:
            text = f"malformed HTTP request: {exc.message}"
        log.info("refused a malformed request", extra={"error": text})
        response = error_response(400, text)
        response.force_close()
        return response


class _DockerServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _DockerErrors(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer unparsable requests with Docker's JSON."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _DockerServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


async def not_served_yet(request: web.Request) -> web.Response:
    return error_response(
        501,
        f"cnm does not serve {request.method} {request.path}",
    )


async def no_such_plugin(request: web.Request) -> web.Response:
    """cnm has no plugins, so none exists: a 404 lets ``docker inspect NAME`` go on to its
    "No such object" instead of stopping at a 501."""
    return error_response(404, f'plugin "{request.match_info["name"]}" not found')


def make_app(
    controller: Controller, info: DaemonInfo, runtime: Runtime | None = None
) -> web.Application:
    """The API application over a started controller (and runtime); its worker threads stop on
    cleanup. Blocking calls still running (a stop, an exec's process) are not waited for."""
    app = web.Application(
        middlewares=[log_requests, metrics.record_operations, map_errors, check_version]
    )
    app.on_response_prepare.append(docker_headers)
    executor = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="cnm-api")
    blocking = ThreadPoolExecutor(max_workers=BLOCKING_THREADS, thread_name_prefix="cnm-wait")
    app[BACKEND] = Backend(controller, info, executor, blocking, runtime)

    async def stop_workers(_: web.Application) -> None:
        blocking.shutdown(wait=False, cancel_futures=True)
        executor.shutdown(wait=True)

    app.on_cleanup.append(stop_workers)
    system.add_routes(app)
    networks.add_routes(app)
    # The network side's own routes: swarm mode as a node outside a swarm, and /events.
    swarm.add_routes(app)
    events.add_routes(app)
    if runtime is not None:
        links.add_routes(app)
        containers.add_routes(app)
        execs.add_routes(app)
        images.add_routes(app)
        # The container side beyond the lifecycle (issue 11): its own routes.
        container_ops.add_routes(app)
        archive.add_routes(app)
        stats.add_routes(app)
        volumes.add_routes(app)
    observe.add_routes(app)
    metrics.add_routes(app)
    ui.add_routes(app)
    sections = "|".join(NOT_SERVED_YET)
    add_route(app, "GET", "/plugins/{name:[^/]+}/json", no_such_plugin)
    add_route(app, "*", f"/{{section:(?:{sections})}}{{rest:(?:/.*)?}}", not_served_yet)
    return app


def make_read_only_app(main: web.Application) -> web.Application:
    """The page, topology, explain, inspect and metrics routes of ``main`` for the loopback
    TCP listener (``ui.make_read_only_app``), with the same error mapping."""
    app = ui.make_read_only_app(main[BACKEND], main, [map_errors])
    app.router.add_get("/metrics", metrics.metrics)
    return app
