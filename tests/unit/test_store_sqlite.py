"""Tests for the SQLite store backend, against real database files under tmp_path."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from cnm.errors import CnmError, InvalidParameter
from cnm.store.api import Delete, Entry, Put, StoreConflict, WatchEvent
from cnm.store.sqlite import SqliteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(db_path)
    yield s
    s.close()


def revision_of(store: SqliteStore) -> int:
    return store.commit([])


# --- basic operations ------------------------------------------------------------------------


def test_scope_is_local(store: SqliteStore) -> None:
    assert store.scope == "local"


def test_new_store_is_empty_at_revision_zero(store: SqliteStore) -> None:
    assert revision_of(store) == 0
    assert store.list("") == []
    assert store.get("network/a") is None


def test_put_get(store: SqliteStore) -> None:
    rev = store.put("network/a", b'{"name": "a"}')
    assert rev == 1
    assert store.get("network/a") == Entry("network/a", b'{"name": "a"}', 1)


def test_put_overwrites_and_takes_new_revision(store: SqliteStore) -> None:
    store.put("network/a", b"1")
    rev = store.put("network/a", b"2")
    assert rev == 2
    assert store.get("network/a") == Entry("network/a", b"2", 2)


def test_get_returns_bytes(store: SqliteStore) -> None:
    store.put("k", b"\x00\xff binary")
    entry = store.get("k")
    assert entry is not None
    assert type(entry.value) is bytes
    assert entry.value == b"\x00\xff binary"


def test_list_by_prefix_sorted(store: SqliteStore) -> None:
    store.put("network/b", b"b")
    store.put("endpoint/n1/e1", b"e1")
    store.put("network/a", b"a")
    store.put("network/c", b"c")
    store.put("networks", b"not under network/")
    assert store.list("network/") == [
        Entry("network/a", b"a", 3),
        Entry("network/b", b"b", 1),
        Entry("network/c", b"c", 4),
    ]
    assert [e.key for e in store.list("")] == [
        "endpoint/n1/e1",
        "network/a",
        "network/b",
        "network/c",
        "networks",
    ]
    assert store.list("nothing/") == []


def test_delete(store: SqliteStore) -> None:
    store.put("network/a", b"a")
    store.put("network/b", b"b")
    rev = store.delete("network/a")
    assert rev == 3
    assert store.get("network/a") is None
    assert [e.key for e in store.list("network/")] == ["network/b"]


def test_delete_missing_key_is_a_noop(store: SqliteStore) -> None:
    store.put("network/a", b"a")
    assert store.delete("network/missing") == 1
    assert revision_of(store) == 1


def test_empty_commit_does_not_bump_revision(store: SqliteStore) -> None:
    store.put("k", b"v")
    assert store.commit([]) == 1
    assert store.commit([]) == 1
    assert store.put("k2", b"v") == 2


def test_same_key_twice_in_one_commit_is_rejected(store: SqliteStore) -> None:
    with pytest.raises(InvalidParameter):
        store.commit([Put("k", b"1"), Delete("k")])
    assert store.get("k") is None
    assert revision_of(store) == 0


# --- prefixes that look like LIKE patterns ---------------------------------------------------


def test_list_treats_percent_and_underscore_literally(store: SqliteStore) -> None:
    for key in ("a%b/1", "axb/1", "a%bc", "a_b/1", "aXb/1", "a_", "ab", "a%"):
        store.put(key, key.encode())
    assert [e.key for e in store.list("a%b")] == ["a%b/1", "a%bc"]
    assert [e.key for e in store.list("a_b")] == ["a_b/1"]
    assert [e.key for e in store.list("a_")] == ["a_", "a_b/1"]
    assert [e.key for e in store.list("a%")] == ["a%", "a%b/1", "a%bc"]
    assert [e.key for e in store.list("%")] == []
    assert [e.key for e in store.list("_")] == []


def test_list_prefix_edge_characters(store: SqliteStore) -> None:
    # Prefix successor must step over surrogates and past the largest code point.
    keys = ["x\ud7ff", "x\ud7ffa", "x\ue000", "x\U0010ffff", "x\U0010ffffz", "y"]
    for key in keys:
        store.put(key, b"v")
    assert [e.key for e in store.list("x\ud7ff")] == ["x\ud7ff", "x\ud7ffa"]
    assert [e.key for e in store.list("x\U0010ffff")] == ["x\U0010ffff", "x\U0010ffffz"]
    assert [e.key for e in store.list("x")] == keys[:-1]


# --- revisions -------------------------------------------------------------------------------


def test_revisions_increase_monotonically_across_deletes(store: SqliteStore) -> None:
    revs = [
        store.put("a", b"1"),
        store.put("b", b"1"),
        store.delete("a"),
        store.delete("b"),
        store.put("a", b"2"),
    ]
    assert revs == [1, 2, 3, 4, 5]
    assert store.get("a") == Entry("a", b"2", 5)


def test_multi_op_commit_bumps_revision_once(store: SqliteStore) -> None:
    store.put("old", b"x")
    rev = store.commit([Put("a", b"1"), Put("b", b"2"), Delete("old")])
    assert rev == 2
    assert store.get("a") == Entry("a", b"1", 2)
    assert store.get("b") == Entry("b", b"2", 2)
    assert store.get("old") is None


def test_revisions_survive_reopen_after_deleting_everything(db_path: Path) -> None:
    s = SqliteStore(db_path)
    s.put("a", b"1")
    s.put("b", b"1")
    s.delete("a")
    s.delete("b")
    s.close()
    s = SqliteStore(db_path)
    try:
        assert s.list("") == []
        assert revision_of(s) == 4
        assert s.put("c", b"1") == 5
    finally:
        s.close()


# --- compare-and-swap ------------------------------------------------------------------------


def test_put_expect_zero_creates_only_if_absent(store: SqliteStore) -> None:
    assert store.put("k", b"1", expect_revision=0) == 1
    with pytest.raises(StoreConflict, match="'k'"):
        store.put("k", b"2", expect_revision=0)
    assert store.get("k") == Entry("k", b"1", 1)
    assert revision_of(store) == 1


def test_put_expect_current_revision_succeeds(store: SqliteStore) -> None:
    store.put("other", b"x")
    rev = store.put("k", b"1")
    assert store.put("k", b"2", expect_revision=rev) == 3
    assert store.get("k") == Entry("k", b"2", 3)


def test_put_expect_wrong_revision_conflicts(store: SqliteStore) -> None:
    store.put("k", b"1")
    store.put("k", b"2")
    with pytest.raises(StoreConflict, match="'k'"):
        store.put("k", b"3", expect_revision=1)
    with pytest.raises(StoreConflict, match="'missing'"):
        store.put("missing", b"3", expect_revision=2)
    assert store.get("k") == Entry("k", b"2", 2)
    assert store.get("missing") is None
    assert revision_of(store) == 2


def test_delete_expect_zero(store: SqliteStore) -> None:
    store.put("k", b"1")
    with pytest.raises(StoreConflict, match="'k'"):
        store.delete("k", expect_revision=0)
    assert store.get("k") == Entry("k", b"1", 1)
    # Absent key: the precondition holds and nothing changes.
    assert store.delete("missing", expect_revision=0) == 1


def test_delete_expect_current_revision_succeeds(store: SqliteStore) -> None:
    rev = store.put("k", b"1")
    assert store.delete("k", expect_revision=rev) == 2
    assert store.get("k") is None


def test_delete_expect_wrong_revision_conflicts(store: SqliteStore) -> None:
    store.put("k", b"1")
    store.put("k", b"2")
    with pytest.raises(StoreConflict, match="'k'"):
        store.delete("k", expect_revision=1)
    with pytest.raises(StoreConflict, match="'missing'"):
        store.delete("missing", expect_revision=1)
    assert store.get("k") == Entry("k", b"2", 2)
    assert revision_of(store) == 2


def test_failed_precondition_in_multi_op_commit_writes_nothing(store: SqliteStore) -> None:
    store.put("network/n1", b"n1")
    store.put("endpoint/n1/e1", b"e1")
    events: list[WatchEvent] = []
    store.watch("", events.append)
    with pytest.raises(StoreConflict, match="'endpoint/n1/e1'"):
        store.commit(
            [
                Put("network/n1", b"n1-updated", expect_revision=1),
                Put("endpoint/n1/e2", b"e2", expect_revision=0),
                Delete("endpoint/n1/e1", expect_revision=1),  # actually at revision 2
            ]
        )
    assert store.get("network/n1") == Entry("network/n1", b"n1", 1)
    assert store.get("endpoint/n1/e2") is None
    assert store.get("endpoint/n1/e1") == Entry("endpoint/n1/e1", b"e1", 2)
    assert revision_of(store) == 2
    assert events == []


def test_store_conflict_is_an_http_conflict() -> None:
    assert StoreConflict.status == 409


# --- watches ---------------------------------------------------------------------------------


def test_watch_put_and_delete_events(store: SqliteStore) -> None:
    events: list[WatchEvent] = []
    store.watch("endpoint/", events.append)
    store.put("endpoint/n1/e1", b"e1")
    store.put("network/n1", b"n1")  # outside the prefix
    store.commit([Put("endpoint/n1/e2", b"e2"), Delete("endpoint/n1/e1")])
    store.delete("endpoint/n1/missing")  # no change, no event
    assert events == [
        WatchEvent("endpoint/n1/e1", b"e1", 1),
        WatchEvent("endpoint/n1/e2", b"e2", 3),
        WatchEvent("endpoint/n1/e1", None, 3),
    ]


def test_unwatch_stops_events(store: SqliteStore) -> None:
    kept: list[WatchEvent] = []
    dropped: list[WatchEvent] = []
    store.watch("k", kept.append)
    unwatch = store.watch("k", dropped.append)
    store.put("k", b"1")
    unwatch()
    unwatch()  # idempotent
    store.put("k", b"2")
    assert dropped == [WatchEvent("k", b"1", 1)]
    assert kept == [WatchEvent("k", b"1", 1), WatchEvent("k", b"2", 2)]


def test_failing_callback_does_not_break_commit_or_other_watchers(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(event: WatchEvent) -> None:
        raise RuntimeError("callback bug")

    events: list[WatchEvent] = []
    store.watch("", explode)
    store.watch("", events.append)
    with caplog.at_level(logging.ERROR, logger="cnm.store.sqlite"):
        assert store.put("k", b"1") == 1
    assert store.get("k") == Entry("k", b"1", 1)
    assert events == [WatchEvent("k", b"1", 1)]
    assert "callback bug" in caplog.text


def test_callback_sees_committed_data_and_may_use_the_store(store: SqliteStore) -> None:
    seen: list[Entry | None] = []

    def on_event(event: WatchEvent) -> None:
        seen.append(store.get(event.key))
        if event.key == "a":
            store.put("b", b"from-callback")

    store.watch("", on_event)
    store.put("a", b"1")
    assert seen == [Entry("a", b"1", 1), Entry("b", b"from-callback", 2)]


# --- persistence and concurrency -------------------------------------------------------------


def test_persistence_across_close_and_reopen(db_path: Path) -> None:
    s = SqliteStore(db_path)
    s.commit([Put("network/a", b"a"), Put("network/b", b"b")])
    s.delete("network/b")
    s.put("endpoint/a/1", b"e")
    s.close()
    s = SqliteStore(db_path)
    try:
        assert s.list("") == [Entry("endpoint/a/1", b"e", 3), Entry("network/a", b"a", 1)]
    finally:
        s.close()


def test_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "cnm" / "local.db"
    s = SqliteStore(path)
    try:
        s.put("k", b"v")
    finally:
        s.close()
    assert path.is_file()


def test_uses_wal_journal(db_path: Path, store: SqliteStore) -> None:
    store.put("k", b"v")
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_in_memory_store() -> None:
    s = SqliteStore(":memory:")
    try:
        assert s.put("k", b"v") == 1
        assert s.get("k") == Entry("k", b"v", 1)
    finally:
        s.close()


def test_rejects_unknown_schema_version(db_path: Path) -> None:
    SqliteStore(db_path).close()
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE meta SET schema_version = 99")
    with pytest.raises(CnmError, match="schema version 99"):
        SqliteStore(db_path)


def test_concurrent_commits_get_distinct_revisions(store: SqliteStore) -> None:
    threads_n, commits_n = 8, 50
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
    assert sorted(results.values()) == list(range(1, total + 1))
    assert revision_of(store) == total
    entries = store.list("endpoint/")
    assert len(entries) == total
    assert all(results[e.key] == e.revision and e.value == e.key.encode() for e in entries)


def test_concurrent_compare_and_swap_loses_no_update(store: SqliteStore) -> None:
    threads_n, increments = 4, 50
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


# --- crash safety ----------------------------------------------------------------------------

_CRASH_CHILD = textwrap.dedent(
    """
    import sys
    from cnm.store.api import Put
    from cnm.store.sqlite import SqliteStore

    store = SqliteStore(sys.argv[1])
    i = 0
    while True:
        store.commit([Put(f"a/{i:06d}", b"x" * 300), Put(f"b/{i:06d}", b"y" * 300)])
        print(i, flush=True)
        i += 1
    """
)


def test_commits_survive_sigkill_and_are_never_torn(db_path: Path) -> None:
    # The child commits pairs of keys in a tight loop and reports each commit; it is killed
    # mid-stream without closing the store, so recovery has to replay the WAL.
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD, str(db_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        reported = -1
        while reported < 200:
            line = child.stdout.readline()
            assert line, "child exited early"
            reported = int(line)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert Path(f"{db_path}-wal").exists()

    s = SqliteStore(db_path)
    try:
        a = [int(e.key.removeprefix("a/")) for e in s.list("a/")]
        b = [int(e.key.removeprefix("b/")) for e in s.list("b/")]
        assert a == b, "a commit was torn"
        assert a == list(range(len(a)))
        assert len(a) > reported  # every reported commit is there
        assert revision_of(s) == len(a)
        assert s.put("after", b"crash") == len(a) + 1
    finally:
        s.close()
