"""Latency of a single-key commit to a file-backed SqliteStore.

Writes 2,000 endpoint-sized JSON records (~500 bytes, a new key each time, as a container
attach does) and prints the p50/p99 commit latency in microseconds. Asserts nothing.

    .venv/bin/python bench/store_commit.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from cnm.store.sqlite import SqliteStore

COMMITS = 2000
WARMUP = 200


def endpoint_record(i: int) -> bytes:
    record = {
        "id": f"{i:064x}",
        "name": f"container-{i}",
        "network": "3f1c9b0e7a6d4c2b8e5f0a1d9c7b6e4f3a2d1c0b9e8f7a6d5c4b3a2f1e0d9c8b",
        "ipv4": f"172.18.{i // 250}.{i % 250 + 2}/16",
        "mac": f"02:42:ac:12:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}",
        "sandbox": f"/var/run/cnm/netns/{i:012x}",
        "options": {"com.docker.network.endpoint.exposedports": [], "portmap": []},
        "labels": {"com.example.owner": "bench", "com.example.tier": "frontend"},
    }
    value = json.dumps(record).encode()
    return value + b" " * max(0, 500 - len(value))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "store.db")
        try:
            for i in range(WARMUP):
                store.put(f"warmup/{i}", endpoint_record(i))
            values = [endpoint_record(i) for i in range(COMMITS)]
            latencies_us: list[float] = []
            for i, value in enumerate(values):
                start = time.perf_counter_ns()
                store.put(f"endpoint/net/{i:08d}", value)
                latencies_us.append((time.perf_counter_ns() - start) / 1000)
        finally:
            store.close()
    cuts = statistics.quantiles(latencies_us, n=100)
    print(
        f"single-key commit, {len(values[0])}-byte value, {COMMITS} commits: "
        f"p50 {cuts[49]:.1f} us, p99 {cuts[98]:.1f} us, max {max(latencies_us):.1f} us"
    )


if __name__ == "__main__":
    main()
