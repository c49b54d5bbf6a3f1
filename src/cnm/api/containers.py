"""The ``/containers`` endpoints: lifecycle, inspect and list, logs, attach and resize.

Handlers parse on the event loop and call the runtime on the worker threads (stop, restart,
kill and forced removal, which wait for a process to end, on the blocking pool). Waiting for an
exit holds no thread: see ``exits``. ``wait`` registers its waiter, then answers its headers at
once and the body when the condition is met, as Docker does: the docker CLI sends it before
``start`` and goes on only once the headers arrived, which is what makes ``next-exit`` catch
even the fastest container. The 304 answers (start of a running container, stop of a stopped
one) come from the runtime's NotModified.

Attach with ``stdin`` forwards the client's input to the container's stdin (OpenStdin only; the
runtime queues it until the process runs). When that input ends, Docker's rules: with StdinOnce
and no terminal the container's stdin is closed and the output goes on; else the attach ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cnm.api import links, streams
from cnm.api.common import (
    BACKEND,
    Backend,
    add_route,
    backend,
    json_response,
    query_bool,
    query_int,
    read_json,
)
from cnm.api.container_json import (
    CONTAINER_STATUSES,
    ContainerPaths,
    container_inspect_json,
    container_summary_json,
    network_settings_json,
    parse_container_create,
)
from cnm.api.exits import EXITS, Exits
from cnm.api.filters import Filters, match_labels, match_values, parse_filters, validate_keys
from cnm.errors import InvalidParameter, NotFound

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.runtime.model import Container, ContainerNetworkState
    from cnm.runtime.runtime import Runtime

LIST_FILTERS = frozenset({"id", "label", "name", "network", "status"})
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
REMOVAL_POLL_S = (1.0, 0.02)  # looking for a removal: in general; after an exit with --rm


def _ref(request: web.Request) -> str:
    return request.match_info["ref"]


# ----------------------------------------------------------------------------- lifecycle


async def create_container(request: web.Request) -> web.Response:
    name = request.query.get("name") or None
    create = parse_container_create(await read_json(request))
    b = backend(request)
    container = await b.run(
        b.rt.create_container, name, create.config, create.host_config, create.networks
    )
    return json_response({"Id": container.id, "Warnings": []}, status=201)


async def start_container(request: web.Request) -> web.Response:
    b = backend(request)
    await b.run(b.rt.start_container, _ref(request))
    return web.Response(status=204)


def _stop_timeout(request: web.Request) -> int | None:
    timeout = query_int(request, "t")
    return query_int(request, "timeout") if timeout is None else timeout


async def stop_container(request: web.Request) -> web.Response:
    signal = request.query.get("signal", "")
    if signal.upper().removeprefix("SIG") not in ("", "TERM", "15"):
        raise InvalidParameter(f"cnm stops containers with SIGTERM, not {signal}: use kill")
    b = backend(request)
    timeout = _stop_timeout(request)
    await b.run_blocking(b.rt.stop_container, _ref(request), timeout)
    return web.Response(status=204)


async def restart_container(request: web.Request) -> web.Response:
    b = backend(request)
    timeout = _stop_timeout(request)
    await b.run_blocking(b.rt.restart_container, _ref(request), timeout)
    return web.Response(status=204)


async def kill_container(request: web.Request) -> web.Response:
    b = backend(request)
    signal = request.query.get("signal") or "SIGKILL"
    await b.run_blocking(b.rt.kill_container, _ref(request), signal)
    return web.Response(status=204)


async def remove_container(request: web.Request) -> web.Response:
    if query_bool(request, "link"):
        return await links.remove_link(request)
    b = backend(request)
    await b.run_blocking(b.rt.remove_container, _ref(request), query_bool(request, "force"))
    return web.Response(status=204)


async def rename_container(request: web.Request) -> web.Response:
    new_name = request.query.get("name", "")
    if not new_name:
        raise InvalidParameter("Neither old nor new names may be empty")
    b = backend(request)
    await b.run(b.rt.rename_container, _ref(request), new_name)
    return web.Response(status=204)


async def _until_exit(b: Backend, exited: asyncio.Future[int], container: Container) -> int:
    """not-running: the exit code now if it is not running (the waiter was registered before
    this look, so an exit in between is not missed), else at its exit."""
    try:
        current = await b.run(b.rt.container, container.id)
    except NotFound:
        return container.state.exit_code
    if not current.state.running:
        exited.cancel()
        return current.state.exit_code
    return await exited


async def _until_removed(b: Backend, exited: asyncio.Future[int], container: Container) -> int:
    """removed: the last exit code once the container is gone (the runtime has no removal
    notice: look for it, often once the container has exited and ``--rm`` is due)."""
    code = container.state.exit_code
    while True:
        if exited.cancelled():  # the daemon is shutting down: nobody will see the removal
            raise asyncio.CancelledError
        try:
            current = await b.run(b.rt.container, container.id)
        except NotFound:
            return exited.result() if exited.done() else code
        if not exited.done():
            code = current.state.exit_code
        due = exited.done() and container.host_config.auto_remove
        await asyncio.wait({exited}, timeout=REMOVAL_POLL_S[due])


async def wait_container(request: web.Request) -> web.StreamResponse:
    condition = request.query.get("condition") or "not-running"
    if condition not in WAIT_CONDITIONS:
        raise InvalidParameter(f"invalid condition: {condition!r}")
    b = backend(request)
    container = await b.run(b.rt.container, _ref(request))
    exited = request.app[EXITS].next_exit(container.id)
    try:
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b"")  # the headers leave now: the waiter is registered
        if condition == "next-exit":
            code = await exited
        elif condition == "not-running":
            code = await _until_exit(b, exited, container)
        else:
            code = await _until_removed(b, exited, container)
    finally:
        exited.cancel()
    try:
        await response.write(json.dumps({"StatusCode": code}).encode() + b"\n")
        await response.write_eof()
    except ConnectionError:
        pass  # the client stopped waiting: the docker CLI's `run -d` leaves its wait behind
    return response


# ----------------------------------------------------------------------------- inspect, list


def _inspect(rt: Runtime, controller: Controller, ref: str) -> dict[str, Any]:
    container = rt.container(ref)
    paths = ContainerPaths(log=str(rt.log_paths(container.id)[0]))
    if container.sandbox_id is not None:
        paths.resolv_conf = str(controller.sandbox_file(container.sandbox_id, "resolv.conf"))
        paths.hostname = str(controller.sandbox_file(container.sandbox_id, "hostname"))
        paths.hosts = str(controller.sandbox_file(container.sandbox_id, "hosts"))
    settings = network_settings_json(container, rt.network_state(container))
    return container_inspect_json(container, settings, paths, [], rt.legacy_links(container))


async def inspect_container(request: web.Request) -> web.Response:
    b = backend(request)
    return json_response(await b.run(_inspect, b.rt, b.controller, _ref(request)))


def _selected(container: Container, state: ContainerNetworkState, filters: Filters) -> bool:
    if "id" in filters and not any(container.id.startswith(v) for v in filters["id"]):
        return False
    if "name" in filters and not match_values(filters["name"], "/" + container.name):
        return False
    if "status" in filters and container.state.status not in filters["status"]:
        return False
    if "label" in filters and not match_labels(filters["label"], container.config.labels):
        return False
    if "network" in filters:
        ids = {a.network.id if a.network else "" for a in state.networks.values()}
        if not any(v in state.networks or v in ids for v in filters["network"]):
            return False
    return True


def _list(rt: Runtime, filters: Filters, all_: bool, limit: int | None) -> list[dict[str, Any]]:
    """Newest first. Stopped containers too with ``all``, a ``status`` filter or a ``limit``
    (Docker's "the n last created"), which counts the containers that pass the filters."""
    now = time.time()
    limited = limit is not None and limit > 0
    everything = all_ or limited or "status" in filters
    found = []
    for container in rt.containers(all=everything):  # newest first
        state = rt.network_state(container)
        if _selected(container, state, filters):
            settings = network_settings_json(container, state)
            found.append(container_summary_json(container, settings, now))
            if limited and len(found) == limit:
                break
    return found


async def list_containers(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    validate_keys(filters, LIST_FILTERS)
    for status in filters.get("status", []):
        if status not in CONTAINER_STATUSES:
            raise InvalidParameter(f"invalid filter 'status={status}'")
    b = backend(request)
    all_ = query_bool(request, "all")
    return json_response(await b.run(_list, b.rt, filters, all_, query_int(request, "limit")))


# ----------------------------------------------------------------------------- output


def _streams(request: web.Request) -> tuple[bool, bool]:
    return query_bool(request, "stdout"), query_bool(request, "stderr")


async def _tails(
    b: Backend, container: Container, stdout: bool, stderr: bool, from_start: bool
) -> list[streams.LogTail]:
    out_path, err_path = await b.run(b.rt.log_paths, container.id)
    chosen = [(out_path, streams.STDOUT)] * stdout + [(err_path, streams.STDERR)] * stderr
    if from_start:
        return [streams.LogTail(path, number) for path, number in chosen]
    return [streams.LogTail.at_end(path, number) for path, number in chosen]


def _finished(
    b: Backend, exits: Exits, container: Container, tails: list[streams.LogTail]
) -> asyncio.Future[int]:
    """The end of the container's current run (of its next one if it is not running)."""
    exited = exits.next_exit(container.id, tails)
    if not container.state.running:
        return exited
    return asyncio.ensure_future(_until_exit(b, exited, container))


async def container_logs(request: web.Request) -> web.StreamResponse:
    stdout, stderr = _streams(request)
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    if query_bool(request, "timestamps"):
        raise InvalidParameter("cnm keeps container logs without timestamps")
    for name in ("since", "until"):
        if request.query.get(name, "0") not in ("", "0"):
            raise InvalidParameter(f"cnm keeps container logs without timestamps: {name}")
    tail = request.query.get("tail", "all") or "all"
    if tail != "all" and not (tail.isascii() and tail.isdigit()):
        raise InvalidParameter(f"invalid value for tail: {tail!r}")
    b = backend(request)
    container = await b.run(b.rt.container, _ref(request))
    tails = await _tails(b, container, stdout, stderr, from_start=True)
    finished: asyncio.Future[Any] | None = None
    if query_bool(request, "follow") and container.state.running:
        finished = _finished(b, request.app[EXITS], container, tails)
    multiplexed = not container.config.tty
    response = web.StreamResponse(status=200)
    response.content_type = streams.content_type(request, multiplexed)
    await response.prepare(request)
    write = streams.stream_writer(response, multiplexed)
    if tail != "all":
        for log in tails:
            await write(log.stream, streams.last_lines(log.read(), int(tail)))
    try:
        await streams.follow(tails, write, finished, request)
    finally:
        if finished is not None and not finished.done():
            finished.cancel()
    await response.write_eof()
    return response


async def _feed_stdin(
    b: Backend,
    container: Container,
    received: asyncio.Queue[bytes | None],
    detached: asyncio.Future[None],
) -> None:
    """The client's input to the container's stdin, then Docker's rules for its end (see the
    module docstring): close the stdin, or end the attach (``detached``)."""
    while (data := await received.get()) is not None:
        await b.run(b.rt.write_stdin, container.id, data)
    if container.config.stdin_once and not container.config.tty:
        await b.run(b.rt.close_stdin, container.id)
    elif not detached.done():
        detached.set_result(None)


async def attach_container(request: web.Request) -> web.StreamResponse:
    """Stream the container's output from its log files, and with ``stdin`` send the client's
    input to the container. With ``stream``, until the container's current or next run ends;
    with ``logs``, starting from the beginning of its logs."""
    stdout, stderr = _streams(request)
    b = backend(request)
    container = await b.run(b.rt.container, _ref(request))
    from_start = query_bool(request, "logs") or container.state.status == "created"
    tails = await _tails(b, container, stdout, stderr, from_start)
    finished = None
    if query_bool(request, "stream"):
        finished = _finished(b, request.app[EXITS], container, tails)
    multiplexed = not container.config.tty
    response = await streams.hijack(request, multiplexed)
    until: asyncio.Future[Any] | None = finished
    feeding = None
    if query_bool(request, "stdin") and container.config.open_stdin:
        detached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        feeding = asyncio.ensure_future(
            _feed_stdin(b, container, streams.client_input(request), detached)
        )
        if finished is not None:
            either: set[asyncio.Future[Any]] = {finished, detached}
            until = asyncio.ensure_future(asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED))
    try:
        await streams.follow(tails, streams.stream_writer(response, multiplexed), until, request)
    except ConnectionError:
        pass  # the client left
    finally:
        for future in (finished, until, feeding):
            if future is not None and not future.done():
                future.cancel()
    return response


def _size(request: web.Request) -> tuple[int, int]:
    height, width = query_int(request, "h"), query_int(request, "w")
    if height is None or width is None:
        raise InvalidParameter("resize needs the terminal's height (h) and width (w)")
    return height, width


async def resize_container(request: web.Request) -> web.Response:
    b = backend(request)
    await b.run(b.rt.resize_container, _ref(request), *_size(request))
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    exits = app[EXITS] = Exits()

    async def listen(app: web.Application) -> None:
        exits.bind(asyncio.get_running_loop())
        app[BACKEND].rt.subscribe_exit(exits.listener)

    async def stop_waiting(_: web.Application) -> None:
        exits.close()

    app.on_startup.append(listen)
    app.on_shutdown.append(stop_waiting)
    add_route(app, "POST", "/containers/create", create_container)
    add_route(app, "GET", "/containers/json", list_containers)
    add_route(app, "GET", "/containers/{ref}/json", inspect_container)
    add_route(app, "POST", "/containers/{ref}/start", start_container)
    add_route(app, "POST", "/containers/{ref}/stop", stop_container)
    add_route(app, "POST", "/containers/{ref}/restart", restart_container)
    add_route(app, "POST", "/containers/{ref}/kill", kill_container)
    add_route(app, "POST", "/containers/{ref}/wait", wait_container)
    add_route(app, "POST", "/containers/{ref}/rename", rename_container)
    add_route(app, "DELETE", "/containers/{ref}", remove_container)
    add_route(app, "GET", "/containers/{ref}/logs", container_logs)
    add_route(app, "POST", "/containers/{ref}/attach", attach_container)
    add_route(app, "POST", "/containers/{ref}/resize", resize_container)
