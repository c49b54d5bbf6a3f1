"""What only the etcd store does, against a real etcd: the key prefix, other clients' changes,
catching up from a revision, compaction, restarts, leases, unreachable endpoints, failover and
compare-and-swap between two clients."""

from __future__ import annotations

import base64
import threading
import time
import traceback
from typing import Any

import pytest
import requests

from cnm.store.api import (
    LeaseExpired,
    Put,
    StoreCompacted,
    StoreConflict,
    StoreUnavailable,
    WatchEvent,
)
from cnm.store.etcd import EtcdStore
from tests.support.etcd import EtcdServer
from tests.support.store import EventLog

DEAD = "127.0.0.1:1"  # nothing listens there in the test's namespace


def gateway(etcd: EtcdServer, path: str, payload: dict[str, Any]) -> Any:
    """Ask etcd directly, not through the store under test."""
    reply = requests.post(f"http://{etcd.endpoint}/v3/{path}", json=payload, timeout=5)
    reply.raise_for_status()
    return reply.json()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_scope_is_global(etcd_store: EtcdStore) -> None:
    assert etcd_store.scope == "global"


def test_keys_live_under_the_prefix(etcd: EtcdServer, etcd_store: EtcdStore) -> None:
    rev = etcd_store.put("network/a", b"a")
    raw = gateway(etcd, "kv/range", {"key": b64("/cnm/network/a")})
    assert [(base64.b64decode(kv["key"]), int(kv["mod_revision"])) for kv in raw["kvs"]] == [
        (b"/cnm/network/a", rev)
    ]
    other = EtcdStore([etcd.endpoint], prefix="/other/")
    try:
        assert other.list("") == []
        assert other.get("network/a") is None
        other.put("network/a", b"other")
    finally:
        other.close()
    entry = etcd_store.get("network/a")
    assert entry is not None and entry.value == b"a"


def test_watch_sees_changes_from_another_client(etcd: EtcdServer, etcd_store: EtcdStore) -> None:
    events = EventLog()
    etcd_store.watch("endpoint/", events)
    other = EtcdStore([etcd.endpoint])
    try:
        rev = other.put("endpoint/n1/e1", b"from another host")
    finally:
        other.close()
    assert events.wait_for(1) == [WatchEvent("endpoint/n1/e1", b"from another host", rev)]


def test_watch_from_a_start_revision_catches_up(etcd_store: EtcdStore) -> None:
    seen = etcd_store.put("network/a", b"1")  # the last revision a daemon saw before it left
    b = etcd_store.put("network/b", b"2")
    gone = etcd_store.delete("network/a")
    events = EventLog()
    etcd_store.watch("network/", events, start_revision=seen + 1)
    later = etcd_store.put("network/c", b"3")
    assert events.wait_for(3) == [
        WatchEvent("network/b", b"2", b),
        WatchEvent("network/a", None, gone),
        WatchEvent("network/c", b"3", later),
    ]


def test_list_with_revision_then_watch_misses_and_repeats_nothing(etcd_store: EtcdStore) -> None:
    etcd_store.put("network/a", b"1")
    entries, listed_at = etcd_store.list_with_revision("network/")
    assert [e.key for e in entries] == ["network/a"]
    changed = etcd_store.put("network/a", b"2")  # after the listing, before the watch
    events = EventLog()
    etcd_store.watch("network/", events, start_revision=listed_at + 1)
    assert events.wait_for(1) == [WatchEvent("network/a", b"2", changed)]
    sentinel = etcd_store.put("network/sentinel", b"")
    assert events.wait_for_key("network/sentinel")[1:] == [
        WatchEvent("network/sentinel", b"", sentinel)
    ]


def test_watch_from_a_compacted_revision_reports_it(
    etcd: EtcdServer, etcd_store: EtcdStore
) -> None:
    first = etcd_store.put("k", b"1")
    etcd_store.put("k", b"2")
    kept = etcd_store.put("k", b"3")
    gateway(etcd, "kv/compaction", {"revision": str(kept), "physical": True})
    events = EventLog()
    compacted: list[StoreCompacted] = []
    reported = threading.Event()

    def on_compacted(error: StoreCompacted) -> None:
        compacted.append(error)
        reported.set()

    etcd_store.watch("k", events, start_revision=first + 1, on_compacted=on_compacted)
    assert reported.wait(10)
    assert (compacted[0].revision, compacted[0].compact_revision) == (first + 1, kept)
    assert "compacted" in str(compacted[0])
    # The watch has ended: a later change reaches another watch but not this one.
    witness = EventLog()
    etcd_store.watch("k", witness)
    after = etcd_store.put("k", b"4")
    assert witness.wait_for(1) == [WatchEvent("k", b"4", after)]
    assert events.events == []


def test_watch_resumes_after_etcd_restarts(etcd: EtcdServer, etcd_store: EtcdStore) -> None:
    events = EventLog()
    etcd_store.watch("k/", events)
    before = etcd_store.put("k/before", b"1")
    assert events.wait_for(1) == [WatchEvent("k/before", b"1", before)]
    etcd.kill()
    with pytest.raises(StoreUnavailable):
        etcd_store.put("k/while-down", b"x")
    etcd.start()
    etcd.wait_healthy()
    after = etcd_store.put("k/after", b"2")
    assert events.wait_for(2) == [
        WatchEvent("k/before", b"1", before),
        WatchEvent("k/after", b"2", after),
    ]


# --- leases ----------------------------------------------------------------------------------


def test_lease_expiry_removes_its_keys(etcd_store: EtcdStore) -> None:
    events = EventLog()
    etcd_store.watch("host/", events)
    lease = etcd_store.grant_lease(1)
    put = etcd_store.commit([Put("host/a", b"up", lease=lease), Put("host/b", b"no lease")])
    assert etcd_store.get("host/a") is not None
    expired = events.wait_for(3, timeout=10)[2]
    assert (expired.key, expired.value) == ("host/a", None)
    assert expired.revision > put
    assert etcd_store.get("host/a") is None
    assert etcd_store.get("host/b") is not None
    with pytest.raises(LeaseExpired):
        etcd_store.keepalive(lease)


def test_keepalive_keeps_keys_past_their_ttl(etcd_store: EtcdStore) -> None:
    lease = etcd_store.grant_lease(1)
    etcd_store.put("host/a", b"up", lease=lease)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert etcd_store.keepalive(lease) >= 1
        time.sleep(0.25)
    assert etcd_store.get("host/a") is not None


def test_revoke_deletes_keys_at_once_and_twice_is_fine(etcd_store: EtcdStore) -> None:
    lease = etcd_store.grant_lease(60)
    etcd_store.put("host/a", b"up", lease=lease)
    etcd_store.revoke_lease(lease)
    assert etcd_store.get("host/a") is None
    etcd_store.revoke_lease(lease)


def test_put_with_a_dead_lease_writes_nothing(etcd_store: EtcdStore) -> None:
    lease = etcd_store.grant_lease(60)
    etcd_store.revoke_lease(lease)
    base = etcd_store.revision()
    with pytest.raises(LeaseExpired, match="lease not found") as caught:
        etcd_store.commit([Put("host/plain", b"x"), Put("host/a", b"up", lease=lease)])
    assert caught.value.status == 404
    assert etcd_store.list("") == []
    assert etcd_store.revision() == base


# --- unreachable etcd and failover -----------------------------------------------------------


def test_unreachable_etcd_is_a_clear_store_error(etcd: EtcdServer) -> None:
    store = EtcdStore([DEAD, "127.0.0.1:2"])
    try:
        for attempt in (
            lambda: store.get("k"),
            lambda: store.put("k", b"v"),
            lambda: store.watch("k", EventLog()),
            lambda: store.grant_lease(5),
        ):
            with pytest.raises(StoreUnavailable) as caught:
                attempt()
            message = str(caught.value)
            assert "127.0.0.1:1: Connection refused" in message
            assert "127.0.0.1:2: Connection refused" in message
            assert caught.value.status == 503
            assert "requests" not in "".join(traceback.format_exception(caught.value))
    finally:
        store.close()


def test_failover_from_a_dead_first_endpoint(etcd: EtcdServer) -> None:
    store = EtcdStore([DEAD, etcd.endpoint])
    try:
        events = EventLog()
        store.watch("k/", events)
        rev = store.put("k/a", b"1", expect_revision=0)
        assert store.get("k/a") is not None
        lease = store.grant_lease(60)
        assert store.keepalive(lease) >= 1
        assert events.wait_for(1) == [WatchEvent("k/a", b"1", rev)]
    finally:
        store.close()


def test_compare_and_swap_from_two_clients_never_both_win(etcd: EtcdServer) -> None:
    stores = [EtcdStore([etcd.endpoint]) for _ in range(2)]
    rounds = 20
    barrier = threading.Barrier(2)
    outcomes: list[list[str]] = [[], []]

    def contend(index: int) -> None:
        store = stores[index]
        for round_number in range(rounds):
            barrier.wait()
            entry = store.get("counter")
            expected = 0 if entry is None else entry.revision
            barrier.wait()  # both have read the same revision
            try:
                store.put("counter", f"{round_number}:{index}".encode(), expected)
                outcomes[index].append("won")
            except StoreConflict:
                outcomes[index].append("lost")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(outcomes[0]) == len(outcomes[1]) == rounds
        for round_number, pair in enumerate(zip(*outcomes, strict=True)):
            assert sorted(pair) == ["lost", "won"], f"round {round_number}: {pair}"
        entry = stores[0].get("counter")
        assert entry is not None and entry.value.startswith(f"{rounds - 1}:".encode())
    finally:
        for store in stores:
            store.close()
