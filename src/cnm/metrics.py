"""The daemon's Prometheus metrics: the counters and histograms the parts record into.

They live in one registry of cnm's own (``REGISTRY``), not the client library's global one, so
a process that embeds cnm (a test, the library) does not mix them with its own. Metric objects
are module-level, as the client library intends: recording is a lock-free increment, cheap
enough for the firewall's and the store's paths. Values that are read rather than counted (the
objects by kind, the embedded DNS resolver's counters) are collected at scrape time by the API
(``cnm.api.metrics``), which knows the controller, the runtime and the resolver.

The exposition text is the client library's (``generate_latest``): nothing here formats it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

# Operations finish in milliseconds (a connect ~5 ms) to seconds (a stop waits for SIGTERM).
OPERATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)

OPERATIONS = Counter(
    "cnm_operations",
    "Operations asked of the daemon, by operation and outcome (ok, or the error's status)",
    ["operation", "outcome"],
    registry=REGISTRY,
)
OPERATION_SECONDS = Histogram(
    "cnm_operation_seconds",
    "Time to answer an operation, by operation",
    ["operation"],
    buckets=OPERATION_BUCKETS,
    registry=REGISTRY,
)
FIREWALL_UPDATES = Counter(
    "cnm_firewall_updates",
    "nftables transactions cnm sent: change (set elements) or rewrite (both tables whole), "
    "by outcome",
    ["kind", "outcome"],
    registry=REGISTRY,
)
STORE_SECONDS = Histogram(
    "cnm_store_seconds",
    "Time of a store call, by call (get, list, commit)",
    ["call"],
    buckets=STORE_BUCKETS,
    registry=REGISTRY,
)


@contextmanager
def timed(histogram: Histogram, *labels: str) -> Iterator[None]:
    """Observe the body's duration in ``histogram`` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(*labels).observe(time.perf_counter() - started)
