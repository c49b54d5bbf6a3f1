"""``/containers/{id}/exec`` and ``/exec/{id}/start|resize|json``: a command in a running
container.

``start`` checks and starts the process before answering, so a refusal (a stopped container,
an exec that already ran) is a normal error response; then it hijacks the connection, forwards
the client's stdin when the exec asked for it (otherwise the process's stdin is closed at
once), and sends the process's stdout and stderr in Docker's frames until both end and the
process has exited, so that ``GET /exec/{id}/json`` afterwards already shows the exit code.
A detached start answers 200 at once; the output of a detached exec is read and dropped, so
that a chatty command never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
from typing import IO, TYPE_CHECKING

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
    if body.string("User") or body.boolean("Privileged"):
        raise InvalidParameter("cnm runs exec commands as the container's user, unprivileged")
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
    )
    return json_response({"Id": exec_id}, status=201)


async def _pipe_reader(pipe: IO[bytes]) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


async def _copy_output(pipe: IO[bytes] | None, write: streams.Writer | None, stream: int) -> None:
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
        if write is not None:
            try:
                await write(stream, data)
            except ConnectionError:
                write = None  # the client left; keep draining so the process can finish


async def _copy_input(queue: asyncio.Queue[bytes | None], pipe: IO[bytes]) -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.Protocol, pipe)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    try:
        while (data := await queue.get()) is not None:
            writer.write(data)
    finally:
        transport.close()


async def _run(
    request: web.Request,
    process: ExecProcess,
    write: streams.Writer | None,
    attach_stdin: bool,
) -> None:
    input_task = None
    if attach_stdin:
        input_task = asyncio.ensure_future(
            _copy_input(streams.client_input(request), process.stdin)
        )
    else:
        process.stdin.close()
    await asyncio.gather(
        _copy_output(process.stdout, write, streams.STDOUT),
        _copy_output(process.stderr, write, streams.STDERR),
    )
    await backend(request).run_blocking(process.wait)  # the exit code is recorded by then
    if input_task is not None:
        input_task.cancel()


_DETACHED: set[asyncio.Task[None]] = set()


async def start_exec(request: web.Request) -> web.StreamResponse:
    body = JsonObject(await read_json(request) if request.can_read_body else {}, "")
    b = backend(request)
    exec_id = request.match_info["id"]
    process = await b.run(b.rt.exec_start, exec_id)
    attach_stdin = (await b.run(b.rt.exec_inspect, exec_id)).open_stdin
    if body.boolean("Detach"):
        task = asyncio.ensure_future(_run(request, process, None, False))
        _DETACHED.add(task)
        task.add_done_callback(_DETACHED.discard)
        return web.Response(status=200)
    multiplexed = not body.boolean("Tty")
    response = await streams.hijack(request, multiplexed)
    writer = streams.stream_writer(response, multiplexed)
    await _run(request, process, writer, attach_stdin)
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
