"""A store that times every call of another into ``cnm_store_seconds`` (the daemon wraps its
store in one). Calls and results pass through unchanged; ``put`` and ``delete`` are commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cnm.metrics import STORE_SECONDS, timed
from cnm.store.api import Delete, Entry, Put, Store, WatchCallback


class TimedStore(Store):
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.scope = inner.scope

    def revision(self) -> int:
        with timed(STORE_SECONDS, "revision"):
            return self.inner.revision()

    def get(self, key: str) -> Entry | None:
        with timed(STORE_SECONDS, "get"):
            return self.inner.get(key)

    def list(self, prefix: str) -> list[Entry]:
        with timed(STORE_SECONDS, "list"):
            return self.inner.list(prefix)

    def commit(self, ops: Sequence[Put | Delete]) -> int:
        with timed(STORE_SECONDS, "commit"):
            return self.inner.commit(ops)

    def watch(self, prefix: str, callback: WatchCallback) -> Callable[[], None]:
        return self.inner.watch(prefix, callback)

    def close(self) -> None:
        self.inner.close()
