"""The store contract (cnm/store/api.py), run on both backends: SQLite and a real etcd.

Every test runs twice through the ``store`` fixture. Revisions are compared with the store's
revision before the test's first write (etcd starts at 1, SQLite at 0); watch events are
awaited (etcd delivers them from a thread), and "nothing else happened" is shown by writing a
sentinel key last and checking that it is the next event.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from cnm.errors import InvalidParameter
from cnm.store.api import Delete, Entry, Put, Store, StoreConflict, StoreUnavailable, WatchEvent
from tests.support.store import EventLog

# --- basic operations ------------------------------------------------------------------------


def test_new_store_is_empty(store: Store) -> None:
    assert store.list("") == []
    assert store.get("network/a") is None


def test_put_get(store: Store) -> None:
    base = store.revision()
    rev = store.put("network/a", b'{"name": "a"}')
    assert rev == base + 1 == store.revision()
    assert store.get("network/a") == Entry("network/a", b'{"name": "a"}', rev)


def test_put_overwrites_and_takes_new_revision(store: Store) -> None:
    first = store.put("network/a", b"1")
    rev = store.put("network/a", b"2")
    assert rev == first + 1
    assert store.get("network/a") == Entry("network/a", b"2", rev)


def test_values_are_bytes_as_given(store: Store) -> None:
    store.put("binary", b"\x00\xff binary")
    store.put("empty", b"")
    binary, empty = store.get("binary"), store.get("empty")
    assert binary is not None and type(binary.value) is bytes
    assert binary.value == b"\x00\xff binary"
    assert empty is not None and empty.value == b""


def test_list_by_prefix_sorted(store: Store) -> None:
    b = store.put("network/b", b"b")
    store.put("endpoint/n1/e1", b"e1")
    a = store.put("network/a", b"a")
    c = store.put("network/c", b"c")
    store.put("networks", b"not under network/")
    assert store.list("network/") == [
        Entry("network/a", b"a", a),
        Entry("network/b", b"b", b),
        Entry("network/c", b"c", c),
    ]
    assert [e.key for e in store.list("")] == [
        "endpoint/n1/e1",
        "network/a",
        "network/b",
        "network/c",
        "networks",
    ]
    assert store.list("nothing/") == []


def test_delete(store: Store) -> None:
    store.put("network/a", b"a")
    b = store.put("network/b", b"b")
    assert store.delete("network/a") == b + 1
    assert store.get("network/a") is None
    assert [e.key for e in store.list("network/")] == ["network/b"]


def test_delete_missing_key_is_a_noop(store: Store) -> None:
    rev = store.put("network/a", b"a")
    assert store.delete("network/missing") == rev
    assert store.revision() == rev


def test_empty_commit_does_not_bump_revision(store: Store) -> None:
    rev = store.put("k", b"v")
    assert store.commit([]) == rev
    assert store.commit([]) == rev
    assert store.put("k2", b"v") == rev + 1


def test_same_key_twice_in_one_commit_is_rejected(store: Store) -> None:
    base = store.revision()
    with pytest.raises(InvalidParameter):
        store.commit([Put("k", b"1"), Delete("k")])
    assert store.get("k") is None
    assert store.revision() == base


def test_list_treats_percent_and_underscore_literally(store: Store) -> None:
    for key in ("a%b/1", "axb/1", "a%bc", "a_b/1", "aXb/1", "a_", "ab", "a%"):
        store.put(key, key.encode())
    assert [e.key for e in store.list("a%b")] == ["a%b/1", "a%bc"]
    assert [e.key for e in store.list("a_b")] == ["a_b/1"]
    assert [e.key for e in store.list("a_")] == ["a_", "a_b/1"]
    assert [e.key for e in store.list("a%")] == ["a%", "a%b/1", "a%bc"]
    assert [e.key for e in store.list("%")] == []
    assert [e.key for e in store.list("_")] == []


def test_list_prefix_edge_characters(store: Store) -> None:
    # The end of a prefix range must step over surrogates and past the largest code point.
    keys = ["x\ud7ff", "x\ud7ffa", "x\ue000", "x\U0010ffff", "x\U0010ffffz", "y"]
    for key in keys:
        store.put(key, b"v")
    assert [e.key for e in store.list("x\ud7ff")] == ["x\ud7ff", "x\ud7ffa"]
    assert [e.key for e in store.list("x\U0010ffff")] == ["x\U0010ffff", "x\U0010ffffz"]
    assert [e.key for e in store.list("x")] == keys[:-1]


# --- revisions -------------------------------------------------------------------------------


def test_revisions_increase_monotonically_across_deletes(store: Store) -> None:
    base = store.revision()
    revs = [
        store.put("a", b"1"),
        store.put("b", b"1"),
        store.delete("a"),
        store.delete("b"),
        store.put("a", b"2"),
    ]
    assert revs == [base + 1, base + 2, base + 3, base + 4, base + 5]
    assert store.get("a") == Entry("a", b"2", base + 5)


def test_multi_op_commit_bumps_revision_once(store: Store) -> None:
    old = store.put("old", b"x")
    rev = store.commit([Put("a", b"1"), Put("b", b"2"), Delete("old")])
    assert rev == old + 1
    assert store.get("a") == Entry("a", b"1", rev)
    assert store.get("b") == Entry("b", b"2", rev)
    assert store.get("old") is None


# --- compare-and-swap ------------------------------------------------------------------------


def test_put_expect_zero_creates_only_if_absent(store: Store) -> None:
    rev = store.put("k", b"1", expect_revision=0)
    with pytest.raises(StoreConflict, match=rf"'k' is at revision {rev}, expected 0"):
        store.put("k", b"2", expect_revision=0)
    assert store.get("k") == Entry("k", b"1", rev)
    assert store.revision() == rev


def test_put_expect_current_revision_succeeds(store: Store) -> None:
    store.put("other", b"x")
    rev = store.put("k", b"1")
    store.put("other", b"y")
    assert store.put("k", b"2", expect_revision=rev) == rev + 2
    assert store.get("k") == Entry("k", b"2", rev + 2)


def test_put_expect_wrong_revision_conflicts(store: Store) -> None:
    first = store.put("k", b"1")
    second = store.put("k", b"2")
    with pytest.raises(StoreConflict, match=rf"'k' is at revision {second}, expected {first}"):
        store.put("k", b"3", expect_revision=first)
    with pytest.raises(StoreConflict, match="'missing' is at revision 0"):
        store.put("missing", b"3", expect_revision=second)
    assert store.get("k") == Entry("k", b"2", second)
    assert store.get("missing") is None
    assert store.revision() == second


def test_delete_expect_zero(store: Store) -> None:
    rev = store.put("k", b"1")
    with pytest.raises(StoreConflict, match="'k'"):
        store.delete("k", expect_revision=0)
    assert store.get("k") == Entry("k", b"1", rev)
    # Absent key: the precondition holds and nothing changes.
    assert store.delete("missing", expect_revision=0) == rev


def test_delete_expect_current_revision_succeeds(store: Store) -> None:
    rev = store.put("k", b"1")
    assert store.delete("k", expect_revision=rev) == rev + 1
    assert store.get("k") is None


def test_delete_expect_wrong_revision_conflicts(store: Store) -> None:
    first = store.put("k", b"1")
    second = store.put("k", b"2")
    with pytest.raises(StoreConflict, match="'k'"):
        store.delete("k", expect_revision=first)
    with pytest.raises(StoreConflict, match="'missing'"):
        store.delete("missing", expect_revision=first)
    assert store.get("k") == Entry("k", b"2", second)
    assert store.revision() == second


def test_failed_precondition_in_multi_op_commit_writes_nothing(store: Store) -> None:
    n1 = store.put("network/n1", b"n1")
    e1 = store.put("endpoint/n1/e1", b"e1")
    events = EventLog()
    store.watch("", events)
    with pytest.raises(StoreConflict, match="'endpoint/n1/e1'"):
        store.commit(
            [
                Put("network/n1", b"n1-updated", expect_revision=n1),
                Put("endpoint/n1/e2", b"e2", expect_revision=0),
                Delete("endpoint/n1/e1", expect_revision=n1),  # actually at e1
            ]
        )
    assert store.get("network/n1") == Entry("network/n1", b"n1", n1)
    assert store.get("endpoint/n1/e2") is None
    assert store.get("endpoint/n1/e1") == Entry("endpoint/n1/e1", b"e1", e1)
    assert store.revision() == e1
    sentinel = store.put("sentinel", b"")
    assert events.wait_for_key("sentinel") == [WatchEvent("sentinel", b"", sentinel)]


def test_error_statuses() -> None:
    assert StoreConflict.status == 409
    assert StoreUnavailable.status == 503


# --- watches ---------------------------------------------------------------------------------


def test_watch_put_and_delete_events(store: Store) -> None:
    events = EventLog()
    store.watch("endpoint/", events)
    first = store.put("endpoint/n1/e1", b"e1")
    store.put("network/n1", b"n1")  # outside the prefix
    both = store.commit([Put("endpoint/n1/e2", b"e2"), Delete("endpoint/n1/e1")])
    store.delete("endpoint/n1/missing")  # no change, no event
    last = store.put("endpoint/sentinel", b"")
    assert events.wait_for_key("endpoint/sentinel") == [
        WatchEvent("endpoint/n1/e1", b"e1", first),
        WatchEvent("endpoint/n1/e2", b"e2", both),
        WatchEvent("endpoint/n1/e1", None, both),
        WatchEvent("endpoint/sentinel", b"", last),
    ]


def test_unwatch_stops_events(store: Store) -> None:
    kept, dropped = EventLog(), EventLog()
    store.watch("k", kept)
    unwatch = store.watch("k", dropped)
    first = store.put("k", b"1")
    assert dropped.wait_for(1) == [WatchEvent("k", b"1", first)]
    unwatch()
    unwatch()  # idempotent
    second = store.put("k", b"2")
    assert kept.wait_for(2) == [WatchEvent("k", b"1", first), WatchEvent("k", b"2", second)]
    assert dropped.events == [WatchEvent("k", b"1", first)]


def test_failing_callback_does_not_break_commit_or_other_watchers(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    exploded = EventLog()

    def explode(event: WatchEvent) -> None:
        exploded(event)
        raise RuntimeError("callback bug")

    def logged_failures() -> int:
        return sum(1 for r in caplog.records if r.exc_info and str(r.exc_info[1]) == "callback bug")

    events = EventLog()
    store.watch("", explode)
    store.watch("", events)
    with caplog.at_level(logging.ERROR):
        first = store.put("k", b"1")
        second = store.put("k", b"2")
        expected = [WatchEvent("k", b"1", first), WatchEvent("k", b"2", second)]
        assert events.wait_for(2) == expected
        assert exploded.wait_for(2) == expected  # the failing watcher keeps getting events
        deadline = time.monotonic() + 10
        while logged_failures() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert logged_failures() == 2
    assert store.get("k") == Entry("k", b"2", second)


def test_callback_sees_committed_data_and_may_use_the_store(store: Store) -> None:
    seen: list[Entry | None] = []
    done = threading.Event()

    def on_event(event: WatchEvent) -> None:
        seen.append(store.get(event.key))
        if event.key == "a":
            store.put("b", b"from-callback")
        else:
            done.set()

    store.watch("", on_event)
    rev = store.put("a", b"1")
    assert done.wait(10)
    assert seen == [Entry("a", b"1", rev), Entry("b", b"from-callback", rev + 1)]


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_commits_get_distinct_revisions(store: Store) -> None:
    threads_n, commits_n = 8, 25
    base = store.revision()
    results: dict[str, int] = {}
    results_lock = threading.Lock()
    barrier = threading.Barrier(threads_n)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(commits_n):
            key = f"endpoint/t{t}/{i}"
            rev = store.put(key, key.encode())
            with results_lock:
                results[key] = rev

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = threads_n * commits_n
    assert sorted(results.values()) == list(range(base + 1, base + total + 1))
    assert store.revision() == base + total
    entries = store.list("endpoint/")
    assert len(entries) == total
    assert all(results[e.key] == e.revision and e.value == e.key.encode() for e in entries)


def test_concurrent_compare_and_swap_loses_no_update(store: Store) -> None:
    threads_n, increments = 4, 25
    store.put("counter", b"0")

    def worker() -> None:
        done = 0
        while done < increments:
            entry = store.get("counter")
            assert entry is not None
            try:
                store.put("counter", str(int(entry.value) + 1).encode(), entry.revision)
            except StoreConflict:
                continue
            done += 1

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entry = store.get("counter")
    assert entry is not None
    assert int(entry.value) == threads_n * increments
