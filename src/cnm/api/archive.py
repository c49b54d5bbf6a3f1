"""``/containers/{id}/archive``: ``docker cp`` both ways.

``HEAD`` answers the path's stat in Docker's ``X-Docker-Container-Path-Stat`` header (base64 of
a JSON PathStat), ``GET`` the same header and the tar of the path as the body, streamed from the
runtime's helper a chunk at a time; ``PUT`` extracts the tar of the request body into the
directory ``path``, streamed to the helper without holding it in memory
(``noOverwriteDirNonDir``, ``copyUIDGID`` as Docker's).
"""

from __future__ import annotations

import asyncio
import base64
import json

from aiohttp import web

from cnm.api.common import add_route, backend, query_bool
from cnm.api.images import BodyReader
from cnm.errors import InvalidParameter
from cnm.runtime.archive import ArchiveStream, PathStat

STAT_HEADER = "X-Docker-Container-Path-Stat"
CHUNK = 1 << 16


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("path is required")
    return path


def stat_header(found: PathStat) -> str:
    data = {
        "name": found.name,
        "size": found.size,
        "mode": found.mode,
        "mtime": found.mtime,
        "linkTarget": found.link_target,
    }
    return base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


async def head_archive(request: web.Request) -> web.Response:
    b = backend(request)
    found = await b.run(b.rt.stat_path, request.match_info["ref"], _path(request))
    return web.Response(status=200, headers={STAT_HEADER: stat_header(found)})


async def get_archive(request: web.Request) -> web.StreamResponse:
    b = backend(request)
    archive: ArchiveStream = await b.run_blocking(
        b.rt.read_archive, request.match_info["ref"], _path(request)
    )
    try:
        response = web.StreamResponse(status=200, headers={STAT_HEADER: stat_header(archive.stat)})
        response.content_type = "application/x-tar"
        await response.prepare(request)
        try:
            while chunk := await b.run_blocking(archive.stream.read, CHUNK):
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client left
        return response
    finally:
        await b.run_blocking(archive.close)


async def put_archive(request: web.Request) -> web.Response:
    b = backend(request)
    reader = BodyReader(request, asyncio.get_running_loop())
    await b.run_blocking(
        b.rt.write_archive,
        request.match_info["ref"],
        _path(request),
        reader,
        query_bool(request, "noOverwriteDirNonDir"),
        query_bool(request, "copyUIDGID"),
    )
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    add_route(app, "HEAD", "/containers/{ref}/archive", head_archive)
    add_route(app, "GET", "/containers/{ref}/archive", get_archive)
    add_route(app, "PUT", "/containers/{ref}/archive", put_archive)
