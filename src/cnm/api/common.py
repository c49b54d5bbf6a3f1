"""What the handler modules share: the backend (controller, runtime, worker threads), route
registration under both path forms, reading a JSON body within the size limit, and Docker's
query parameter forms.

Calls that return promptly run on the worker threads (``run``). Calls that block until a
process ends (stop, kill, forced removal, restart, an exec's process) run on a separate, larger
pool (``run_blocking``), so that slow stops can never starve the short calls. Waiting for a
container's exit holds no thread at all (``exits``).

Request bodies are JSON of at most MAX_BODY_BYTES (1 MiB; a network create request is a few
hundred bytes). A larger body is drained up to DRAIN_LIMIT_BYTES so that the client reads the
413 answer instead of a broken pipe; beyond that the connection is closed.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from cnm import validate
from cnm.errors import CnmError, InvalidParameter

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.runtime.runtime import Runtime

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 1 << 20
DRAIN_LIMIT_BYTES = 64 << 20
VERSION_PREFIX = r"/v{version:[0-9]+\.[0-9]+}"


class RequestTooLarge(CnmError):
    status = 413


@dataclass
class DaemonInfo:
    """What ``/info`` reports about the daemon itself."""

    engine_id: str
    data_root: str
    exec_root: str
    default_address_pools: list[tuple[str, int]] = field(default_factory=list)
    debug: bool = False


@dataclass
class Backend:
    """The controller, the runtime (None in an API over a bare controller: then the container
    endpoints are not served) and the threads their calls run on."""

    controller: Controller
    info: DaemonInfo
    executor: ThreadPoolExecutor
    blocking_executor: ThreadPoolExecutor
    runtime: Runtime | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.blocking_executor, functools.partial(fn, *args))

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None, "container routes are served only with a runtime"
        return self.runtime


BACKEND = web.AppKey("backend", Backend)


def backend(request: web.Request) -> Backend:
    return request.app[BACKEND]


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: absent is the default; "", 0, no, false, none are
    false; anything else is true."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in ("", "0", "no", "false", "none")


def query_int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name, "")
    if not value:
        return None
    return validate.decimal(value, f"value for {name}")


def json_response(data: object, status: int = 200) -> web.Response:
    """JSON as Docker sends it. The Content-Type must be exactly ``application/json``: the docker
    CLI decodes an error body only then (a ``; charset=utf-8`` suffix makes it print raw JSON)."""
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


async def read_json(request: web.Request) -> object:
    """The request body as JSON: Content-Type (if any) application/json, at most
    MAX_BODY_BYTES, well-formed."""
    if "Content-Type" in request.headers and request.content_type != "application/json":
        raise InvalidParameter(
            f"unsupported Content-Type header ({request.headers['Content-Type']}): "
            "must be 'application/json'"
        )
    length = request.content_length
    if length is not None and length > DRAIN_LIMIT_BYTES:
        raise RequestTooLarge(
            f"request body too large: {length} bytes, the limit is {MAX_BODY_BYTES} bytes"
        )
    body = bytearray()
    received = 0
    while chunk := await request.content.read(1 << 16):
        received += len(chunk)
        if received > DRAIN_LIMIT_BYTES:
            break
        if received <= MAX_BODY_BYTES:
            body += chunk
    if received > MAX_BODY_BYTES:
        raise RequestTooLarge(f"request body too large: the limit is {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise InvalidParameter("invalid JSON: the request body is empty")
    return validate.json_document(bytes(body), "JSON")


def add_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register ``path`` unversioned and under the ``/v1.xx`` prefix."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, VERSION_PREFIX + path, handler)


def machine_memory() -> int:
    """The machine's memory in bytes (MemTotal of /proc/meminfo); 0 if unreadable."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
