"""Progress of long work as it happens: a JSON line per step, then the final report, the way
Docker streams an image pull (``{"status": ...}`` lines). For cnm's own clients, asked for
with ``progress=1``; without it the endpoints answer Docker's single JSON document.

The work runs on a worker thread and reports each step through a callback; the lines cross
to the event loop through a queue, so a slow client slows nothing but its own stream. An error
after the stream began is sent as ``{"error": ...}`` (the status line is gone by then), as
Docker does for a failed pull.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from cnm.errors import CnmError

T = TypeVar("T")
Report = Callable[[dict[str, Any]], None]


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


async def stream(
    request: web.Request,
    work: Callable[[Report], T],
    final: Callable[[T], dict[str, Any]],
    run: Callable[..., Awaitable[T]],
) -> web.StreamResponse:
    """Run ``work(report)`` through ``run`` (a worker pool) and stream each reported step,
    then ``final(result)``."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()

    def report(data: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(lines.put_nowait, _line(data))

    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(request)
    task = asyncio.ensure_future(run(work, report))
    task.add_done_callback(lambda _: lines.put_nowait(None))
    while (line := await lines.get()) is not None:
        await response.write(line)
    while not lines.empty():  # steps reported just before the end
        if (line := lines.get_nowait()) is not None:
            await response.write(line)
    try:
        await response.write(_line(final(task.result())))
    except CnmError as err:
        await response.write(_line({"error": str(err) or type(err).__name__}))
    await response.write_eof()
    return response
