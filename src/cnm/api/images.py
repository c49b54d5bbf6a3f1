"""The ``/images`` endpoints: import from a tarball, list, inspect, tag, remove; and
``/commit``, which makes an image of a container.

cnm never contacts a registry: a pull (``fromImage``) is refused with a message that says how
images get here. An import (``fromSrc=-``) streams the request body to the runtime on a worker
thread, a chunk at a time, never holding the tarball in memory; the answer is Docker's JSON-lines
progress stream, whose last line carries the image id. The answer starts with the first
progress line, so a failure before any (a bad reference, a body that is no tarball) still gets
its proper status code.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cnm.api.common import add_route, backend, json_response, query_bool, read_json
from cnm.api.container_json import image_inspect_json, image_summary_json
from cnm.api.filters import Filters, parse_filters, validate_keys
from cnm.api.host_config import Fields, parse_config_extras
from cnm.errors import CnmError, InvalidParameter, NotFound
from cnm.runtime.commit import apply_changes
from cnm.runtime.model import ContainerConfig, Image

if TYPE_CHECKING:
    from cnm.runtime.runtime import Runtime

LIST_FILTERS = frozenset({"reference", "dangling"})


class BodyReader:
    """The request body as a blocking binary file for a worker thread: each read waits for
    the event loop to hand over the next chunk."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self._content = request.content
        self._loop = loop

    def read(self, size: int = -1) -> bytes:
        want = size if size > 0 else 1 << 20
        future = asyncio.run_coroutine_threadsafe(self._content.read(want), self._loop)
        return future.result()

    def readable(self) -> bool:
        return True


def _reference(request: web.Request) -> str | None:
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    if not repo:
        if tag:
            raise InvalidParameter("a tag needs a repository (repo)")
        return None
    return f"{repo}:{tag}" if tag else repo


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\r\n"


async def _import(request: web.Request) -> web.StreamResponse:
    """An import, with ``changes`` (Dockerfile instructions, as ``--change`` sends them) and
    ``message`` (its comment)."""
    reference = _reference(request)
    template = Image(id="", comment=request.query.get("message", ""))
    apply_changes(template, request.query.getall("changes", []))
    b = backend(request)
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()

    def progress(text: str) -> None:
        loop.call_soon_threadsafe(lines.put_nowait, _line({"status": text}))

    job = asyncio.ensure_future(
        b.run(b.rt.import_image, BodyReader(request, loop), reference, progress, template)
    )
    job.add_done_callback(lambda _: lines.put_nowait(None))
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    line = await lines.get()
    if line is None and (failure := job.exception()) is not None:
        raise failure
    await response.prepare(request)
    while line is not None:
        await response.write(line)
        line = await lines.get()
    error = job.exception()
    if error is None:
        await response.write(_line({"status": job.result().id}))
    else:
        message = str(error) if isinstance(error, CnmError) else f"import failed: {error}"
        await response.write(_line({"errorDetail": {"message": message}, "error": message}))
    await response.write_eof()
    return response


async def create_image(request: web.Request) -> web.StreamResponse:
    """``POST /images/create``: an import from the body; a pull is refused."""
    source = request.query.get("fromSrc")
    image = request.query.get("fromImage")
    if image:
        tag = request.query.get("tag")
        name = f"{image}:{tag}" if tag and ":" not in image.rsplit("/", 1)[-1] else image
        raise NotFound(
            f"pull access denied for {name}: cnm imports images from tarballs "
            "(docker import / cnm image import); it never contacts a registry"
        )
    if source is None:
        raise InvalidParameter("fromSrc=- with a tarball as the body is required (or fromImage)")
    if source != "-":
        raise InvalidParameter(
            f"cnm imports images from the request body only (fromSrc=-), not from {source!r}"
        )
    return await _import(request)


def _tags_match(patterns: list[str], tags: list[str]) -> bool:
    """Docker's ``reference`` filter: a pattern matches a name:tag, or a name (any tag)."""
    for pattern in patterns:
        for tag in tags:
            name = tag.rsplit(":", 1)[0]
            if fnmatch.fnmatchcase(tag, pattern) or fnmatch.fnmatchcase(name, pattern):
                return True
    return False


def _list(rt: Runtime, filters: Filters) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for container in rt.containers(all=True):
        counts[container.image_id] = counts.get(container.image_id, 0) + 1
    found = []
    for image in rt.images():
        if "reference" in filters and not _tags_match(filters["reference"], image.repo_tags):
            continue
        if "dangling" in filters:
            dangling = filters["dangling"] in (["true"], ["1"])
            if dangling != (not image.repo_tags):
                continue
        found.append(image_summary_json(image, counts.get(image.id, 0)))
    return sorted(found, key=lambda i: i["Created"], reverse=True)


async def list_images(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    validate_keys(filters, LIST_FILTERS)
    b = backend(request)
    return json_response(await b.run(_list, b.rt, filters))


async def inspect_image(request: web.Request) -> web.Response:
    b = backend(request)
    image = await b.run(b.rt.image, request.match_info["name"])
    return json_response(image_inspect_json(image))


async def remove_image(request: web.Request) -> web.Response:
    b = backend(request)
    force = query_bool(request, "force")
    lines = await b.run(b.rt.remove_image, request.match_info["name"], force)
    # The runtime reports "Untagged: <tag>" / "Deleted: <id>"; Docker sends them as objects.
    report = [dict([line.split(": ", 1)]) for line in lines]
    return json_response(report)


async def tag_image(request: web.Request) -> web.Response:
    """``POST /images/{name}/tag?repo=&tag=``."""
    reference = _reference(request)
    if reference is None:
        raise InvalidParameter("repository name (repo) is required")
    b = backend(request)
    await b.run(b.rt.tag_image, request.match_info["name"], reference)
    return web.Response(status=201)


async def commit(request: web.Request) -> web.Response:
    """``POST /commit?container=...``: the body is a Config whose fields win over the
    container's (what a client leaves out, the container gives)."""
    ref = request.query.get("container", "")
    if not ref:
        raise InvalidParameter("container is required")
    sent = await read_json(request) if request.can_read_body else None
    body = Fields(sent if sent is not None else {}, "")  # the 20.10 CLI sends null
    config = ContainerConfig(image="")
    parse_config_extras(body, config)
    base = Image(
        id="",
        cmd=body.strings("Cmd"),
        entrypoint=body.strings("Entrypoint"),
        env=body.strings("Env"),
        working_dir=body.string("WorkingDir"),
        user=config.user,
        labels=body.string_map("Labels"),
        exposed_ports=sorted(body.child("ExposedPorts") or []),
        volumes=config.volumes,
        stop_signal=config.stop_signal,
        comment=request.query.get("comment", ""),
        author=request.query.get("author", ""),
    )
    b = backend(request)
    image = await b.run_blocking(
        b.rt.commit_container,
        ref,
        _reference(request),
        base,
        request.query.getall("changes", []),
        query_bool(request, "pause", default=True),
    )
    return json_response({"Id": image.id}, status=201)


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/commit", commit)
    add_route(app, "POST", "/images/{name:.+}/tag", tag_image)
    add_route(app, "POST", "/images/create", create_image)
    add_route(app, "GET", "/images/json", list_images)
    add_route(app, "GET", "/images/{name:.+}/json", inspect_image)
    add_route(app, "DELETE", "/images/{name:.+}", remove_image)
