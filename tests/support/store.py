"""Watch events collected for tests: SQLite calls back in the committing thread, etcd from a
watch thread, so a test waits for the events it expects instead of assuming either."""

from __future__ import annotations

import threading

from cnm.store.api import WatchEvent

WAIT = 10.0


class EventLog:
    """A watch callback that records events and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[WatchEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: WatchEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = WAIT) -> list[WatchEvent]:
        """The first ``count`` events, once they have arrived."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.events) >= count, timeout):
                raise AssertionError(f"expected {count} watch events, got {self.events}")
            return self.events[:count]

    def wait_for_key(self, key: str, timeout: float = WAIT) -> list[WatchEvent]:
        """Every event up to and including the first one for ``key``: write ``key`` last to
        prove that nothing else arrived before it."""
        with self._changed:
            if not self._changed.wait_for(lambda: any(e.key == key for e in self.events), timeout):
                raise AssertionError(f"no watch event for {key!r}; got {self.events}")
            index = next(i for i, e in enumerate(self.events) if e.key == key)
            return self.events[: index + 1]
