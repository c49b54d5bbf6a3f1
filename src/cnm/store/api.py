"""The store contract: a small key-value store with revisions and watches.

Keys are '/'-separated strings ("network/<id>", "endpoint/<network-id>/<endpoint-id>", ...);
values are bytes (the controller stores JSON). Every write bumps a store-wide revision, and each
entry remembers the revision that last modified it, as etcd does, so an etcd backend can
implement this contract directly and compare-and-swap works the same on both:

* ``expect_revision=None``: unconditional write.
* ``expect_revision=0``: the key must not exist.
* ``expect_revision=N``: the key's mod revision must be N.

A mismatch raises StoreConflict and writes nothing. ``commit`` applies several puts and deletes
atomically, so a crash never leaves half of a multi-record change behind.

Scopes: the local store (SQLite) holds one host's objects; the global store (etcd) holds the
objects every host of a cluster shares. Only the global store has leases (a ``Put`` with
``lease`` set disappears when the lease expires; the local store rejects it).

Failures are CnmErrors, never the backend's own exceptions, so that a caller (a request, the
thread that tears down an exited container) gets an error it handles: StoreUnavailable when a
write cannot be done now (etcd unreachable, the local disk full: the same call works once the
cause is gone), StoreCorrupt when the stored data cannot be read (the message names the file
or record, and says what the user can do).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cnm.errors import CnmError, Conflict, NotFound, Unavailable


class StoreConflict(Conflict):
    """A compare-and-swap precondition did not hold."""


class StoreUnavailable(Unavailable):
    """No endpoint of the store answered, a write's outcome is unknown, or the store cannot
    be written now (its disk is full) (HTTP 503)."""


class StoreCorrupt(CnmError):
    """The stored data cannot be read: a damaged database file or a record that does not
    decode."""


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes
    revision: int


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes
    expect_revision: int | None = None
    lease: int | None = None  # global store only: the key is deleted when the lease expires


@dataclass(frozen=True)
class Delete:
    key: str
    expect_revision: int | None = None


@dataclass(frozen=True)
class WatchEvent:
    """A change under a watched prefix; ``value`` is None for a delete."""

    key: str
    value: bytes | None
    revision: int


WatchCallback = Callable[[WatchEvent], None]


class Store(ABC):
    """A key-value store. Implementations are safe to call from several threads."""

    scope: str  # "local" or "global"

    @abstractmethod
    def revision(self) -> int:
        """The current store revision (the revision of the last change)."""

    @abstractmethod
    def get(self, key: str) -> Entry | None: ...

    @abstractmethod
    def list(self, prefix: str) -> list[Entry]:
        """Entries whose key starts with ``prefix``, sorted by key."""

    @abstractmethod
    def commit(self, ops: Sequence[Put | Delete]) -> int:
        """Apply all ops atomically; returns the new store revision. Deleting a missing key is
        not an error unless expect_revision is given."""

    @abstractmethod
    def watch(self, prefix: str, callback: WatchCallback) -> Callable[[], None]:
        """Call ``callback`` for every later change under ``prefix``; returns an unwatch
        function. Callbacks run after the change is durable."""

    @abstractmethod
    def close(self) -> None: ...

    def put(
        self,
        key: str,
        value: bytes,
        expect_revision: int | None = None,
        lease: int | None = None,
    ) -> int:
        return self.commit([Put(key, value, expect_revision, lease)])

    def delete(self, key: str, expect_revision: int | None = None) -> int:
        return self.commit([Delete(key, expect_revision)])


class StoreCompacted(CnmError):
    """A watch's next revision is gone from the store's history (compacted), so the changes
    it missed cannot be replayed: list the prefix again and watch from that listing's
    revision."""

    def __init__(self, prefix: str, revision: int, compact_revision: int) -> None:
        super().__init__(
            f"watch on {prefix!r} cannot resume at revision {revision}: the store compacted "
            f"its history up to revision {compact_revision}"
        )
        self.prefix = prefix
        self.revision = revision
        self.compact_revision = compact_revision


class LeaseExpired(NotFound):
    """The lease expired, was revoked, or never existed."""


CompactedCallback = Callable[[StoreCompacted], None]


class GlobalStore(Store):
    """The global scope: a store the hosts of a cluster share. Beyond the contract it keeps
    history (a watch resumes from a revision, so a host that lost the store catches up
    without listing everything again) and leases (keys that vanish with their owner)."""

    @abstractmethod
    def list_with_revision(self, prefix: str) -> tuple[list[Entry], int]:
        """``list`` and the store revision it was read at, in one read."""

    @abstractmethod
    def watch_from(
        self,
        prefix: str,
        callback: WatchCallback,
        start_revision: int,
        on_compacted: CompactedCallback,
    ) -> Callable[[], None]:
        """Like ``watch``, from ``start_revision`` on; when that revision is (or becomes)
        compacted the watch ends and ``on_compacted`` is called."""

    @abstractmethod
    def grant_lease(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; keys put with it go when it expires."""

    @abstractmethod
    def keepalive(self, lease_id: int) -> int:
        """Renew a lease; returns its TTL. Raises LeaseExpired if it is gone."""

    @abstractmethod
    def revoke_lease(self, lease_id: int) -> None: ...
