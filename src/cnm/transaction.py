"""Undo steps for multi-step operations.

Every operation that makes several kernel objects and records pushes an undo step after each
step it completes; when a later step fails, the steps run in reverse, so a failed call leaves no
link, namespace, address or record behind. The controller and the runtime both use it, which is
why it lives below both of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cnm import faults

log = logging.getLogger(__name__)


class Transaction:
    """Undo steps of one operation, run in reverse when it fails."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], object]]] = []

    def on_failure(self, what: str, undo: Callable[[], object]) -> None:
        self._undo.append((what, undo))
        faults.step(what)  # a step completed: the fault-injection tests may crash here

    def rollback(self) -> None:
        for what, undo in reversed(self._undo):
            try:
                undo()
            except Exception:
                log.exception("rollback step failed: %s", what)
        self._undo.clear()


@contextmanager
def transaction() -> Iterator[Transaction]:
    """A transaction that rolls back when the block raises (anything, KeyboardInterrupt too)."""
    txn = Transaction()
    try:
        yield txn
    except BaseException:
        txn.rollback()
        raise
