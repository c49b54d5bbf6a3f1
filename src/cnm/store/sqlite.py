"""The embedded SQLite backend of the store contract: the local-scope store.

Why SQLite: local-scope state (networks, endpoints, IPAM allocations of one host) needs
atomic multi-record writes that survive a crash of the daemon, with no server to run.
SQLite from the standard library gives exactly that in a single file.

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. A committed transaction
survives a crash of the process (the WAL is in the OS page cache and is replayed on the next
open); an OS crash or power loss may lose the last few transactions, but never tears one: after
recovery every commit is either wholly present or wholly absent.

Checkpoints run on a thread of their own, on a connection of their own (``wal_autocheckpoint``
is off). SQLite's automatic checkpoint runs inside the commit that crosses 1000 WAL pages, and
it fsyncs the WAL and the database: on a busy disk that commit took hundreds of milliseconds
while holding the store's lock, and every other request that commits waited behind it (with 16
clients, most of a run's p99). A PASSIVE checkpoint each second never blocks a writer; ``close``
checkpoints what is left.

Errors: SQLite's own exceptions never leave this module. An operational error (disk full,
I/O error, a lock held past the busy timeout) is StoreUnavailable: the same call works once
the cause is gone, and nothing was written. A damaged file is StoreCorrupt naming the file, at
open (a quick_check runs then: a damaged page would otherwise be found only by the query that
reads it, halfway through start-up) or later.

Revisions mirror etcd so the etcd backend implements the same contract: a one-row meta table
holds a store-wide revision counter, each commit that changes something increments it once, and
every key written by that commit records the new revision as its mod revision. The counter is
never decremented, so revisions keep increasing across deletes and reopens.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cnm import faults
from cnm.errors import CnmError, InvalidParameter
from cnm.store.api import (
    Delete,
    Entry,
    Put,
    Store,
    StoreConflict,
    StoreCorrupt,
    StoreUnavailable,
    WatchCallback,
    WatchEvent,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
CHECKPOINT_INTERVAL_S = 1.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        revision INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        schema_version INTEGER NOT NULL,
        revision INTEGER NOT NULL
    )""",
    f"INSERT OR IGNORE INTO meta (id, schema_version, revision) VALUES (1, {SCHEMA_VERSION}, 0)",
)

_SELECT_SCHEMA_VERSION = "SELECT schema_version FROM meta WHERE id = 1"
_SELECT_REVISION = "SELECT revision FROM meta WHERE id = 1"
_UPDATE_REVISION = "UPDATE meta SET revision = ? WHERE id = 1"
_SELECT_KEY = "SELECT value, revision FROM kv WHERE key = ?"
_SELECT_KEY_REVISION = "SELECT revision FROM kv WHERE key = ?"
_UPSERT = (
    "INSERT INTO kv (key, value, revision) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision"
)
_DELETE = "DELETE FROM kv WHERE key = ?"
_LIST_FROM = "SELECT key, value, revision FROM kv WHERE key >= ? ORDER BY key"
_LIST_RANGE = "SELECT key, value, revision FROM kv WHERE key >= ? AND key < ? ORDER BY key"

_MAX_CODE_POINT = 0x10FFFF
_SURROGATE_FIRST = 0xD800
_SURROGATE_END = 0xE000


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``, or None if
    there is none (empty prefix, or a prefix of only U+10FFFF characters).

    SQLite compares TEXT with memcmp over UTF-8, which orders like code points, so
    ``prefix <= key < _prefix_end(prefix)`` selects exactly the keys starting with ``prefix``
    and can use the primary-key index; ``%`` and ``_`` have no special meaning.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= _MAX_CODE_POINT:
            # Surrogates cannot be encoded to UTF-8, so no key contains one: skip them.
            if _SURROGATE_FIRST <= code < _SURROGATE_END:
                code = _SURROGATE_END
            return "".join(chars) + chr(code)
    return None


@dataclass(frozen=True, eq=False)
class _Watcher:
    prefix: str
    callback: WatchCallback


class SqliteStore(Store):
    """A Store in one SQLite file, safe to call from several threads of one process.

    All calls share one connection behind a lock. Watch callbacks run synchronously in the
    committing thread after the transaction has committed and the lock is released, so they
    may read or write the store. Within one commit events arrive in op order; commits from
    different threads may deliver their events interleaved, so a consumer that needs order
    compares ``WatchEvent.revision``. Watches see only commits made through this instance.
    """

    scope = "local"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        self._watchers: tuple[_Watcher, ...] = ()
        with self._errors():
            # isolation_level=None: no implicit transactions; commit() issues BEGIN IMMEDIATE.
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            with self._errors():
                self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.execute("PRAGMA wal_autocheckpoint = 0")
                problems = [row[0] for row in self._conn.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {problems[0]}")
                self._init_schema()
        except BaseException:
            self._conn.close()
            raise
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.path != ":memory:":
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="cnm-store-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            while not self._closing.wait(CHECKPOINT_INTERVAL_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as err:
                    log.warning("store checkpoint failed: %s", err)
        finally:
            conn.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's exceptions as the store contract's (see the module docstring)."""
        try:
            yield
        except sqlite3.OperationalError as err:
            raise StoreUnavailable(f"the store {self.path} cannot be used now: {err}") from err
        except sqlite3.DatabaseError as err:
            raise StoreCorrupt(
                f"the store {self.path} is corrupt ({err}): restore it from a backup, or move "
                "it aside to start with no networks, containers or images"
            ) from err

    def _init_schema(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            schema_version = conn.execute(_SELECT_SCHEMA_VERSION).fetchone()[0]
            if schema_version != SCHEMA_VERSION:
                raise CnmError(
                    f"store schema version {schema_version} is not supported "
                    f"(this build uses version {SCHEMA_VERSION})"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def revision(self) -> int:
        with self._lock, self._errors():
            return int(self._conn.execute(_SELECT_REVISION).fetchone()[0])

    def get(self, key: str) -> Entry | None:
        with self._lock, self._errors():
            row = self._conn.execute(_SELECT_KEY, (key,)).fetchone()
        return None if row is None else Entry(key, row[0], row[1])

    def list(self, prefix: str) -> list[Entry]:
        end = _prefix_end(prefix)
        with self._lock, self._errors():
            if end is None:
                rows = self._conn.execute(_LIST_FROM, (prefix,)).fetchall()
            else:
                rows = self._conn.execute(_LIST_RANGE, (prefix, end)).fetchall()
        return [Entry(key, value, revision) for key, value, revision in rows]

    def commit(self, ops: Sequence[Put | Delete]) -> int:
        """Apply all ops in one transaction and return the store revision.

        Preconditions are checked against the state before the commit, and a key may appear
        only once per commit (as in an etcd transaction). A commit that changes nothing (no ops,
        or only deletes of missing keys) does not bump the revision. Leases are rejected: a
        local record that was meant to expire must not silently live forever.
        """
        keys = {op.key for op in ops}
        if len(keys) != len(ops):
            raise InvalidParameter("a store commit may not name the same key twice")
        leased = [op.key for op in ops if isinstance(op, Put) and op.lease is not None]
        if leased:
            raise InvalidParameter(
                f"the local store has no leases (key {leased[0]!r}); leases need the "
                "global store (etcd)"
            )
        faults.step("store commit")
        with self._lock, self._errors():
            revision, events = self._commit_locked(ops)
            watchers = self._watchers
        faults.step("store committed")
        if events and watchers:
            self._notify(watchers, events)
        return revision

    def _commit_locked(self, ops: Sequence[Put | Delete]) -> tuple[int, Sequence[WatchEvent]]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute(_SELECT_REVISION).fetchone()[0]
            for op in ops:
                if op.expect_revision is not None:
                    row = conn.execute(_SELECT_KEY_REVISION, (op.key,)).fetchone()
                    actual = 0 if row is None else row[0]
                    if actual != op.expect_revision:
                        raise StoreConflict(
                            f"store key {op.key!r} is at revision {actual}, "
                            f"expected {op.expect_revision}"
                        )
            revision = current + 1
            events: list[WatchEvent] = []
            for op in ops:
                if isinstance(op, Put):
                    conn.execute(_UPSERT, (op.key, op.value, revision))
                    events.append(WatchEvent(op.key, op.value, revision))
                elif conn.execute(_DELETE, (op.key,)).rowcount:
                    events.append(WatchEvent(op.key, None, revision))
            if not events:
                conn.execute("ROLLBACK")
                return current, events
            conn.execute(_UPDATE_REVISION, (revision,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with suppress(sqlite3.Error):  # SQLite may have rolled it back itself
                    conn.execute("ROLLBACK")
            raise
        return revision, events

    @staticmethod
    def _notify(watchers: tuple[_Watcher, ...], events: Sequence[WatchEvent]) -> None:
        for event in events:
            for watcher in watchers:
                if event.key.startswith(watcher.prefix):
                    try:
                        watcher.callback(event)
                    except Exception:
                        log.exception(
                            "store watch callback %r failed on %s at revision %d",
                            watcher.callback,
                            event.key,
                            event.revision,
                        )

    def watch(self, prefix: str, callback: WatchCallback) -> Callable[[], None]:
        watcher = _Watcher(prefix, callback)
        with self._lock:
            self._watchers = (*self._watchers, watcher)

        def unwatch() -> None:
            with self._lock:
                self._watchers = tuple(w for w in self._watchers if w is not watcher)

        return unwatch

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock:
            with suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
