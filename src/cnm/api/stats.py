"""``/containers/{id}/stats`` and ``/containers/{id}/top``: Docker's JSON of the runtime's
figures.

Stats are read once a second. A stream sends a JSON object a line, each with the reading before
it as ``precpu_stats`` (the first has zeros there), as Docker does; ``stream=false`` waits for
the second reading so that the client can compute a CPU percentage, unless ``one-shot`` asks for
the first at once (API 1.41). The memory limit of a container without one is the machine's
memory, as Docker reports it. ``networks`` has the counters of each interface of the
container's network namespace (loopback aside).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from cnm.api.common import add_route, backend, json_response, machine_memory, query_bool
from cnm.runtime.logdriver import format_time
from cnm.runtime.stats import BlkioEntry, Sample

INTERVAL_S = 1.0
ZERO_TIME = "0001-01-01T00:00:00Z"
MACHINE_MEMORY = machine_memory()


def _cpu_json(sample: Sample | None) -> dict[str, Any]:
    if sample is None or not sample.read_ns:
        return {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
    periods, throttled, throttled_ns = sample.throttling
    return {
        "cpu_usage": {
            "total_usage": sample.cpu_total,
            "percpu_usage": list(sample.cpu_percpu) or None,
            "usage_in_kernelmode": sample.cpu_system,
            "usage_in_usermode": sample.cpu_user,
        },
        "system_cpu_usage": sample.system_cpu,
        "online_cpus": sample.online_cpus,
        "throttling_data": {
            "periods": periods,
            "throttled_periods": throttled,
            "throttled_time": throttled_ns,
        },
    }


def _blkio_json(entries: list[BlkioEntry]) -> list[dict[str, Any]] | None:
    return [
        {"major": e.major, "minor": e.minor, "op": e.op, "value": e.value} for e in entries
    ] or None


def stats_json(
    container_id: str, name: str, current: Sample, previous: Sample | None, running: bool
) -> dict[str, Any]:
    if not running:
        return {
            "read": ZERO_TIME,
            "preread": ZERO_TIME,
            "pids_stats": {},
            "blkio_stats": {},
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": _cpu_json(None),
            "precpu_stats": _cpu_json(None),
            "memory_stats": {},
            "name": "/" + name,
            "id": container_id,
        }
    limit = current.memory_limit
    if MACHINE_MEMORY and (not limit or limit > MACHINE_MEMORY):
        limit = MACHINE_MEMORY
    pids: dict[str, Any] = {"current": current.pids_current}
    if current.pids_limit:
        pids["limit"] = current.pids_limit
    return {
        "read": format_time(current.read_ns),
        "preread": format_time(previous.read_ns) if previous and previous.read_ns else ZERO_TIME,
        "pids_stats": pids,
        "blkio_stats": {
            "io_service_bytes_recursive": _blkio_json(current.io_service_bytes),
            "io_serviced_recursive": _blkio_json(current.io_serviced),
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_json(current),
        "precpu_stats": _cpu_json(previous),
        "memory_stats": {
            "usage": current.memory_usage,
            "max_usage": current.memory_max_usage,
            "stats": dict(current.memory_stats),
            "failcnt": current.memory_failcnt,
            "limit": limit,
        },
        "name": "/" + name,
        "id": container_id,
        "networks": {name: dict(counters) for name, counters in current.networks.items()},
    }


async def container_stats(request: web.Request) -> web.StreamResponse:
    b = backend(request)
    container = await b.run(b.rt.container, request.match_info["ref"])
    stream = query_bool(request, "stream", default=True)
    one_shot = query_bool(request, "one-shot")
    previous: Sample | None = None
    current = await b.run(b.rt.container_stats, container.id)
    running = container.state.running
    if not stream:
        if running and not one_shot:
            await asyncio.sleep(INTERVAL_S)
            previous, current = current, await b.run(b.rt.container_stats, container.id)
        return json_response(stats_json(container.id, container.name, current, previous, running))
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(request)
    try:
        while True:
            body = stats_json(container.id, container.name, current, previous, running)
            await response.write(json.dumps(body, separators=(",", ":")).encode() + b"\n")
            if not running:
                break
            await asyncio.sleep(INTERVAL_S)
            latest = await b.run(b.rt.container, container.id)
            running = latest.state.running
            previous, current = current, await b.run(b.rt.container_stats, container.id)
    except ConnectionError:
        return response
    await response.write_eof()
    return response


async def container_top(request: web.Request) -> web.Response:
    b = backend(request)
    titles, rows = await b.run(
        b.rt.container_top, request.match_info["ref"], request.query.get("ps_args", "")
    )
    return json_response({"Titles": titles, "Processes": rows})


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/containers/{ref}/stats", container_stats)
    add_route(app, "GET", "/containers/{ref}/top", container_top)
