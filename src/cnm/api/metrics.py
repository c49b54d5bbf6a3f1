"""``GET /metrics``: the daemon's metrics in Prometheus' text format (the client library's
exposition, from ``cnm.metrics.REGISTRY``), on the API socket and on the read-only loopback
listener.

Counted as they happen (``cnm.metrics``): operations by name and outcome with their latency
(the ``record_operations`` middleware names each route's operation), firewall transactions,
store call latency. Read at scrape time (collectors here): objects by kind (networks by
driver, endpoints, sandboxes, containers by state, images) and the embedded DNS resolver's
counters: queries by transport, answers by outcome, forwards, upstream tries and failures,
drops and errors. The resolver counts by outcome, not by query type (A, AAAA...): a per-type
count would cost its hot path a dictionary update per query, and the outcome is what tells a
broken setup from a busy one.

The older ``GET /cnm/metrics`` (the resolver's counters as JSON, for ``cnm dns stats``) stays.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cnm.api.common import BACKEND, Backend, Handler, add_route
from cnm.metrics import OPERATION_SECONDS, OPERATIONS, REGISTRY

if TYPE_CHECKING:
    from cnm.dns.resolver import Resolver

# (method, route as registered without the version prefix) -> operation
OPERATION_NAMES = {
    ("POST", "/networks/create"): "network_create",
    ("DELETE", "/networks/{ref}"): "network_delete",
    ("POST", "/networks/{ref}/connect"): "connect",
    ("POST", "/networks/{ref}/disconnect"): "disconnect",
    ("POST", "/networks/prune"): "network_prune",
    ("POST", "/containers/create"): "container_create",
    ("POST", "/containers/{ref}/start"): "start",
    ("POST", "/containers/{ref}/stop"): "stop",
    ("POST", "/containers/{ref}/restart"): "restart",
    ("POST", "/containers/{ref}/kill"): "kill",
    ("DELETE", "/containers/{ref}"): "container_remove",
    ("POST", "/containers/prune"): "container_prune",
    ("POST", "/containers/{ref}/exec"): "exec_create",
    ("POST", "/exec/{ref}/start"): "exec_start",
    ("POST", "/images/create"): "image_import",
    ("GET", "/cnm/explain"): "explain",
}
VERSIONED = "/v{version}"


def _operation(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    if resource is None:
        return None
    path = resource.canonical
    if path.startswith(VERSIONED):
        path = path[len(VERSIONED) :]
    return OPERATION_NAMES.get((request.method, path))


@web.middleware
async def record_operations(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time the operations of ``OPERATION_NAMES``; the outcome is ``ok`` or the
    status of the error answer."""
    operation = _operation(request)
    if operation is None:
        return await handler(request)
    started = time.perf_counter()
    outcome = "error"
    try:
        response = await handler(request)
        outcome = "ok" if response.status < 400 else str(response.status)
        return response
    finally:
        OPERATION_SECONDS.labels(operation).observe(time.perf_counter() - started)
        OPERATIONS.labels(operation, outcome).inc()


class ObjectsCollector(Collector):
    """Objects by kind, read from the controller and the runtime at each scrape."""

    def __init__(self, backend_: Backend) -> None:
        self.backend = backend_

    def collect(self) -> Iterator[Any]:
        controller = self.backend.controller
        objects = GaugeMetricFamily("cnm_objects", "Objects cnm holds, by kind", labels=["kind"])
        objects.add_metric(["network"], len(controller.networks()))
        objects.add_metric(["endpoint"], len(controller.endpoints()))
        objects.add_metric(["sandbox"], len(controller.sandboxes()))
        runtime = self.backend.runtime
        if runtime is not None:
            objects.add_metric(["image"], len(runtime.images()))
        yield objects
        by_driver = GaugeMetricFamily("cnm_networks", "Networks by driver", labels=["driver"])
        for driver, count in sorted(Counter(n.driver for n in controller.networks()).items()):
            by_driver.add_metric([driver], count)
        yield by_driver
        if runtime is not None:
            states = GaugeMetricFamily("cnm_containers", "Containers by state", labels=["state"])
            counts = Counter(c.state.status for c in runtime.containers(all=True))
            for state in ("created", "running", "exited"):
                states.add_metric([state], counts.get(state, 0))
            yield states


class DnsCollector(Collector):
    """The embedded resolver's counters (``Resolver.metrics``), renamed for Prometheus."""

    ANSWERS = ("local", "nxdomain", "refused", "servfail", "formerr", "notimp", "truncated")

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def collect(self) -> Iterator[Any]:
        metrics = self.resolver.metrics()
        queries = metrics["Queries"]
        received = CounterMetricFamily(
            "cnm_dns_queries", "DNS queries received, by transport", labels=["transport"]
        )
        for transport in ("udp", "tcp"):
            received.add_metric([transport], queries[transport])
        yield received
        answers = CounterMetricFamily(
            "cnm_dns_answers", "DNS answers sent, by outcome", labels=["outcome"]
        )
        for outcome in self.ANSWERS:
            answers.add_metric([outcome], queries[outcome])
        yield answers
        yield CounterMetricFamily(
            "cnm_dns_forwards", "DNS queries forwarded upstream", value=queries["forwarded"]
        )
        upstream = CounterMetricFamily(
            "cnm_dns_upstream", "Exchanges with upstream servers, by result", labels=["result"]
        )
        for result, count in metrics["Upstream"].items():
            upstream.add_metric([result], count)
        yield upstream
        errors = CounterMetricFamily(
            "cnm_dns_errors", "DNS queries not answered normally, by type", labels=["type"]
        )
        for kind in ("dropped", "overloaded", "errors"):
            errors.add_metric([kind], queries[kind])
        yield errors
        yield GaugeMetricFamily(
            "cnm_dns_sandboxes", "Sandboxes the resolver listens in", value=metrics["Sandboxes"]
        )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    """``/metrics``, and the objects collector for this application's backend (removed from
    the registry when the application is cleaned up)."""
    collector = ObjectsCollector(app[BACKEND])
    REGISTRY.register(collector)

    async def unregister(_: web.Application) -> None:
        REGISTRY.unregister(collector)

    app.on_cleanup.append(unregister)
    add_route(app, "GET", "/metrics", metrics)


def watch_resolver(app: web.Application, resolver: Resolver) -> None:
    collector = DnsCollector(resolver)
    REGISTRY.register(collector)

    async def unregister(_: web.Application) -> None:
        REGISTRY.unregister(collector)

    app.on_cleanup.append(unregister)
