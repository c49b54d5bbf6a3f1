"""Tests for what only the SQLite store backend does (files, reopening, crashes, no leases),
against real database files under tmp_path. The contract both backends share is tested in
tests/store/test_contract.py."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from cnm.errors import CnmError, InvalidParameter
from cnm.store.api import Delete, Entry, Put
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


# --- what is local to SQLite -----------------------------------------------------------------


def test_scope_is_local(store: SqliteStore) -> None:
    assert store.scope == "local"


def test_new_store_is_empty_at_revision_zero(store: SqliteStore) -> None:
    assert revision_of(store) == 0
    assert store.list("") == []
    assert store.get("network/a") is None


def test_revision_is_the_last_commits(store: SqliteStore) -> None:
    store.put("a", b"1")
    store.commit([Put("b", b"1"), Delete("a")])
    assert store.revision() == revision_of(store) == 2


def test_leases_are_rejected_and_nothing_is_written(store: SqliteStore) -> None:
    with pytest.raises(InvalidParameter, match=r"no leases.*'host/a'"):
        store.commit([Put("other", b"x"), Put("host/a", b"up", lease=7)])
    with pytest.raises(InvalidParameter, match="no leases"):
        store.put("host/a", b"up", lease=7)
    assert store.list("") == []
    assert store.revision() == 0


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


# --- persistence -----------------------------------------------------------------------------


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
