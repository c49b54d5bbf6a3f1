"""``/containers/{id}/exec`` and ``/exec/{id}/start|resize|json``: a command in a running
container.

``start`` checks and starts the process before answering, so a refusal (a stopped container,
an exec that already ran) is a normal error response; then it hijacks the connection, forwards
the client's stdin when the exec asked for it (otherwise the process's stdin is closed at
once), and sends the process's stdout and stderr in Docker's frames until both end and the
process has exited, so that ``GET /exec/{id}/json`` afterwards already shows the exit code.
A detached start answers 200 at once; the output of a detached exec is read and dropped, so
that a chatty command never blocks on a full pipe. So is the output of an exec whose client
typed the detach keys (the exec's ``DetachKeys``, Docker's ctrl-p,ctrl-q by default): the
stream ends, the process goes on.

``User`` (a name or id of the container's, ``:group`` too) and ``Privileged`` (every
capability) are the runtime's; a command that cannot start exits 126 with the reason on its
error stream, as Docker's exec does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import IO, TYPE_CHECKING, Any

from aiohttp import web

from cnm.api import streams
from cnm.api.common import add_route, backend, json_response, query_int, read_json
from cnm.api.container_json import exec_inspect_json
from cnm.api.translate import JsonObject
from cnm.errors import InvalidParameter

if TYPE_CHECKING:
    from cnm.runtime.execs import ExecProcess


async def create_exec(request: web.Request) -> web.Response:
    body = JsonObject(await read_json(request), "")
    cmd = body.strings("Cmd")
    if not cmd:
        raise InvalidParameter("No exec command specified")
    detach_keys = body.string("DetachKeys")
    streams.parse_detach_keys(detach_keys, "escape keys")
    size = body.array("ConsoleSize") or [0, 0]
    if len(size) != 2 or not all(isinstance(n, int) for n in size):
        raise InvalidParameter(f"invalid ConsoleSize: {size!r}")
    b = backend(request)
    exec_id = await b.run(
        b.rt.exec_create,
        request.match_info["ref"],
        cmd,
        body.strings("Env"),
        bool(body.boolean("Tty")),
        body.string("WorkingDir"),
        bool(body.boolean("AttachStdin")),
        (size[0], size[1]),
        body.string("User"),
        bool(body.boolean("Privileged")),
        detach_keys,
    )
    return json_response({"Id": exec_id}, status=201)


async def _pipe_reader(pipe: IO[bytes]) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


class _Output:
    """Where an exec's output goes: the client, until it leaves or detaches."""

    def __init__(self, write: streams.Writer | None) -> None:
        self.write = write

    async def copy(self, pipe: IO[bytes] | None, stream: int) -> None:
        if pipe is None:
            return  # stderr of a TTY exec: the terminal merges it into stdout
        reader = await _pipe_reader(pipe)
        while True:
            try:
                data = await reader.read(streams.READ_CHUNK)
            except OSError:
                data = b""  # a terminal's master side reads EIO once the process is gone
            if not data:
                return
            if self.write is not None:
                try:
                    await self.write(stream, data)
                except ConnectionError:
                    self.write = None  # the client left; keep draining so the process ends


async def _copy_input(queue: asyncio.Queue[bytes | None], pipe: IO[bytes], keys: bytes) -> bool:
    """The client's input to the process until its end (False) or the detach keys (True)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.Protocol, pipe)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def send(data: bytes) -> None:
        writer.write(data)

    try:
        return await streams.copy_input(queue, keys, send)
    finally:
        transport.close()


async def _run(
    request: web.Request,
    process: ExecProcess,
    write: streams.Writer | None,
    attach_stdin: bool,
    keys: bytes = streams.DEFAULT_DETACH_KEYS,
) -> None:
    """Relay the exec until its output ends and it exited, or until the client detaches
    (then the rest of its output is drained in the background)."""
    output = _Output(write)
    copying = asyncio.ensure_future(
        asyncio.gather(
            output.copy(process.stdout, streams.STDOUT),
            output.copy(process.stderr, streams.STDERR),
        )
    )
    input_task = None
    if attach_stdin:
        input_task = asyncio.ensure_future(
            _copy_input(streams.client_input(request), process.stdin, keys)
        )
    else:
        process.stdin.close()
    waiting: set[asyncio.Future[Any]] = {copying}
    if input_task is not None:
        waiting.add(input_task)
    while waiting:
        done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if input_task in done and not input_task.cancelled() and input_task.result():
            output.write = None  # detached: the process goes on, its output is drained
            _keep(_finish(request, process, copying))
            return
        if copying in done:
            break
    await _finish(request, process, copying)
    if input_task is not None:
        input_task.cancel()


async def _finish(request: web.Request, process: ExecProcess, copying: asyncio.Future[Any]) -> None:
    await copying
    await backend(request).run_blocking(process.wait)  # the exit code is recorded by then


_DETACHED: set[asyncio.Task[None]] = set()


def _keep(coroutine: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(coroutine)
    _DETACHED.add(task)
    task.add_done_callback(_DETACHED.discard)


async def start_exec(request: web.Request) -> web.StreamResponse:
    body = JsonObject(await read_json(request) if request.can_read_body else {}, "")
    b = backend(request)
    exec_id = request.match_info["id"]
    process = await b.run(b.rt.exec_start, exec_id)
    info = await b.run(b.rt.exec_inspect, exec_id)
    keys = streams.parse_detach_keys(info.detach_keys, "escape keys")
    if body.boolean("Detach"):
        _keep(_run(request, process, None, False))
        return web.Response(status=200)
    multiplexed = not body.boolean("Tty")
    response = await streams.hijack(request, multiplexed)
    writer = streams.stream_writer(response, multiplexed)
    await _run(request, process, writer, info.open_stdin, keys)
    return response


async def resize_exec(request: web.Request) -> web.Response:
    height, width = query_int(request, "h"), query_int(request, "w")
    if height is None or width is None:
        raise InvalidParameter("resize needs the terminal's height (h) and width (w)")
    b = backend(request)
    await b.run(b.rt.exec_resize, request.match_info["id"], height, width)
    return web.Response(status=200)


async def inspect_exec(request: web.Request) -> web.Response:
    b = backend(request)
    return json_response(
        exec_inspect_json(await b.run(b.rt.exec_inspect, request.match_info["id"]))
    )


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/containers/{ref}/exec", create_exec)
    add_route(app, "POST", "/exec/{id}/start", start_exec)
    add_route(app, "POST", "/exec/{id}/resize", resize_exec)
    add_route(app, "GET", "/exec/{id}/json", inspect_exec)
