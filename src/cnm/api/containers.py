"""The ``/containers`` endpoints: lifecycle, inspect and list, logs, attach and resize.

Handlers parse on the event loop and call the runtime on the worker threads (stop, restart,
kill and forced removal, which wait for a process to end, on the blocking pool). Waiting for an
exit holds no thread: see ``exits``. ``wait`` registers its waiter, then answers its headers at
once and the body when the condition is met, as Docker does: the docker CLI sends it before
``start`` and goes on only once the headers arrived, which is what makes ``next-exit`` catch
even the fastest container. The 304 answers (start of a running container, stop of a stopped
one) come from the runtime's NotModified.

Logs and attach follow the runtime's output (``Runtime.follow_output``): ``logs`` reads the log
driver's messages (one frame each) and with ``follow`` the ones that come after, until the run
ends; ``attach`` relays reads as they come (after the log with ``logs``) until the run it
attached to ends, so a client attached before start misses nothing. The snapshot of the log and
the follower are taken together, so nothing is sent twice or lost in between.

Attach with ``stdin`` forwards the client's input to the container's stdin (OpenStdin only; the
runtime queues it until the process runs) until the detach keys. When that input ends, Docker's
rules: with StdinOnce and no terminal the container's stdin is closed and the output goes on;
else the attach ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

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
from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.runtime.logdriver import LogMessage, format_time, read_messages
from cnm.runtime.outputs import LINES, RAW

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.runtime.model import Container, ContainerNetworkState
    from cnm.runtime.runtime import Runtime

LIST_FILTERS = frozenset({"id", "label", "name", "network", "status"})
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
REMOVAL_POLL_S = (1.0, 0.02)  # looking for a removal: in general; after an exit with --rm
CLIENT_CHECK_S = 0.5  # how often a stream with nothing to send looks whether its client left


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
    b = backend(request)
    timeout = _stop_timeout(request)
    signal = request.query.get("signal") or None
    await b.run_blocking(b.rt.stop_container, _ref(request), timeout, signal)
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
    force, volumes = query_bool(request, "force"), query_bool(request, "v")
    await b.run_blocking(b.rt.remove_container, _ref(request), force, volumes)
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


def _sizes(rt: Runtime, container: Container) -> dict[str, int]:
    """Docker's ``SizeRw`` (the container's own changes) and ``SizeRootFs`` (with its image),
    which ``size=1`` asks for."""
    own = rt.container_size(container.id) if container.image_id else 0
    image = rt.image(container.image_id).size if container.image_id else 0
    return {"SizeRw": own, "SizeRootFs": own + image}


def _inspect(rt: Runtime, controller: Controller, ref: str, size: bool = False) -> dict[str, Any]:
    container = rt.container(ref)
    paths = ContainerPaths(log=str(rt.log_path(container.id)))
    if container.sandbox_id is not None:
        paths.resolv_conf = str(controller.sandbox_file(container.sandbox_id, "resolv.conf"))
        paths.hostname = str(controller.sandbox_file(container.sandbox_id, "hostname"))
        paths.hosts = str(controller.sandbox_file(container.sandbox_id, "hosts"))
    settings = network_settings_json(container, rt.network_state(container))
    shown = container_inspect_json(container, settings, paths, [], rt.legacy_links(container))
    if size:
        shown.update(_sizes(rt, container))
    return shown


async def inspect_container(request: web.Request) -> web.Response:
    b = backend(request)
    size = query_bool(request, "size")
    return json_response(await b.run(_inspect, b.rt, b.controller, _ref(request), size))


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


def _list(
    rt: Runtime, filters: Filters, all_: bool, limit: int | None, size: bool = False
) -> list[dict[str, Any]]:
    """Newest first. Stopped containers too with ``all``, a ``status`` filter or a ``limit``
    (Docker's "the n last created"), which counts the containers that pass the filters; with
    ``size`` their sizes too (``docker ps -s``)."""
    now = time.time()
    limited = limit is not None and limit > 0
    everything = all_ or limited or "status" in filters
    found = []
    for container in rt.containers(all=everything):  # newest first
        state = rt.network_state(container)
        if _selected(container, state, filters):
            settings = network_settings_json(container, state)
            found.append(container_summary_json(container, settings, now))
            if size:
                found[-1].update(_sizes(rt, container))
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
    all_, size = query_bool(request, "all"), query_bool(request, "size")
    limit = query_int(request, "limit")
    return json_response(await b.run(_list, b.rt, filters, all_, limit, size))


# ----------------------------------------------------------------------------- output


def _streams(request: web.Request) -> tuple[bool, bool]:
    return query_bool(request, "stdout"), query_bool(request, "stderr")


def _chosen(stdout: bool, stderr: bool) -> frozenset[int]:
    return frozenset([streams.STDOUT] * stdout + [streams.STDERR] * stderr)


def _time_ns(request: web.Request, name: str) -> int:
    """Docker's ``since``/``until``: UNIX seconds with an optional fraction ("0": unset)."""
    text = request.query.get(name, "") or "0"
    seconds, _, fraction = text.partition(".")
    if not (text.isascii() and seconds.isdigit()) or (fraction and not fraction.isdigit()):
        raise InvalidParameter(f"invalid value for {name}: {text!r}")
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)


def _details(message: LogMessage) -> bytes:
    """``docker logs --details``: the message's attributes before it (Docker's form)."""
    if not message.attrs:
        return b""
    pairs = (f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(message.attrs.items()))
    return (",".join(pairs) + " ").encode()


async def container_logs(request: web.Request) -> web.StreamResponse:
    """Docker's logs: the log driver's messages, one frame each, with ``since``, ``until``,
    ``tail``, ``timestamps`` and ``details``; with ``follow`` the messages that come after,
    until the container's run ends (or ``until`` passes)."""
    stdout, stderr = _streams(request)
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    since, until = _time_ns(request, "since"), _time_ns(request, "until")
    timestamps, details = query_bool(request, "timestamps"), query_bool(request, "details")
    tail_text = request.query.get("tail", "all") or "all"
    if tail_text != "all" and not (tail_text.isascii() and tail_text.lstrip("-").isdigit()):
        raise InvalidParameter(f"invalid value for tail: {tail_text!r}")
    tail = None if tail_text == "all" or int(tail_text) < 0 else int(tail_text)
    chosen = _chosen(stdout, stderr)
    b = backend(request)
    container = await b.run(b.rt.container, _ref(request))
    follower = None
    subscription = None
    if query_bool(request, "follow") and container.state.running:
        follower = streams.Follower(asyncio.get_running_loop())
        subscription, snapshot = await b.run(
            b.rt.follow_output, container.id, LINES, chosen, follower.notify, True, True
        )
        history = await b.run(read_messages, snapshot, since, until, None)
    else:
        history = await b.run(b.rt.read_logs, container.id, since, until, None)
    try:
        history = [m for m in history if m.stream in chosen]
        if tail is not None:
            history = history[-tail:] if tail else []
        multiplexed = not container.config.tty
        response = web.StreamResponse(status=200)
        response.content_type = streams.content_type(request, multiplexed)
        await response.prepare(request)
        write = streams.stream_writer(response, multiplexed)
        try:
            for message in history:
                prefix = _details(message) if details else b""
                if timestamps:
                    prefix = format_time(message.time_ns).encode() + b" " + prefix
                await write(message.stream, prefix + message.data)
            if follower is not None and not (until and time.time_ns() > until):
                await _follow_logs(request, follower, write, timestamps, until)
            await response.write_eof()
        except ConnectionError:
            pass  # the client left
        return response
    finally:
        if subscription is not None:
            subscription.close()


async def _follow_logs(
    request: web.Request,
    follower: streams.Follower,
    write: streams.Writer,
    timestamps: bool,
    until: int,
) -> None:
    while True:
        limit = (until - time.time_ns()) / 1e9 if until else None
        try:
            chunks = await follower.get(min(limit, CLIENT_CHECK_S) if limit else CLIENT_CHECK_S)
        except TimeoutError:
            if streams.client_gone(request) or (until and time.time_ns() > until):
                return
            continue
        if chunks is None:
            return
        if until:
            chunks = [c for c in chunks if c.time_ns <= until]
        try:
            await streams.write_chunks(write, chunks, timestamps)
        except ConnectionError:
            return


async def _feed_stdin(
    b: Backend,
    container: Container,
    received: asyncio.Queue[bytes | None],
    keys: bytes,
    detached: asyncio.Future[None],
) -> None:
    """The client's input to the container's stdin, then Docker's rules for its end (see the
    module docstring): close the stdin, or end the attach (``detached``). The detach keys end
    the attach too, and the container's stdin stays open."""

    async def send(data: bytes) -> None:
        await b.run(b.rt.write_stdin, container.id, data)

    if await streams.copy_input(received, keys, send):
        if not detached.done():
            detached.set_result(None)
        return
    if container.config.stdin_once and not container.config.tty:
        await b.run(b.rt.close_stdin, container.id)
    elif not detached.done():
        detached.set_result(None)


async def attach_container(request: web.Request) -> web.StreamResponse:
    """Stream the container's output as it comes (from its log first with ``logs``), and with
    ``stdin`` send the client's input to the container. With ``stream``, until the
    container's current or next run ends, or the client types the detach keys."""
    stdout, stderr = _streams(request)
    keys = streams.parse_detach_keys(request.query.get("detachKeys", ""))
    b = backend(request)
    container = await b.run(b.rt.container, _ref(request))
    if container.state.paused:
        raise Conflict("You cannot attach to a paused container, unpause it first")
    chosen = _chosen(stdout, stderr)
    logs, stream = query_bool(request, "logs"), query_bool(request, "stream")
    follower = streams.Follower(asyncio.get_running_loop())
    subscription = None
    history: list[LogMessage] = []
    if stream:
        subscription, snapshot = await b.run(
            b.rt.follow_output, container.id, RAW, chosen, follower.notify, logs
        )
        history = await b.run(read_messages, snapshot, 0, 0, None)
    elif logs:
        history = await b.run(b.rt.read_logs, container.id, 0, 0, None)
    feeding = None
    try:
        multiplexed = not container.config.tty
        response = await streams.hijack(request, multiplexed)
        write = streams.stream_writer(response, multiplexed)
        for message in history:
            if message.stream in chosen:
                await write(message.stream, message.data)
        if subscription is None:
            return response
        detached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if query_bool(request, "stdin") and container.config.open_stdin:
            received = streams.client_input(request)
            feeding = asyncio.ensure_future(_feed_stdin(b, container, received, keys, detached))
        await _relay(request, follower, write, detached)
    except ConnectionError:
        pass  # the client left
    finally:
        if subscription is not None:
            subscription.close()
        if feeding is not None and not feeding.done():
            feeding.cancel()
    return response


async def _relay(
    request: web.Request,
    follower: streams.Follower,
    write: streams.Writer,
    detached: asyncio.Future[None],
) -> None:
    """The followed output to the client until the run ends, the client detaches or goes."""
    while not detached.done():
        getting = asyncio.ensure_future(follower.get())
        either: set[asyncio.Future[Any]] = {getting, detached}
        done, _ = await asyncio.wait(
            either, timeout=CLIENT_CHECK_S, return_when=asyncio.FIRST_COMPLETED
        )
        if getting not in done:
            getting.cancel()
            if not detached.done() and streams.client_gone(request):
                return
            continue
        chunks = getting.result()
        if chunks is None:
            return
        await streams.write_chunks(write, chunks)


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
        streams.Follower.end_all()

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
