"""What changed in the model, for the parts that follow it (DNS, the UI, ``docker events``).

Listeners run synchronously in the caller's thread, after the change is recorded: what they do
is done when the controller's call returns (a name resolves as soon as ``connect`` returns). A
listener that fails is logged and does not undo the change. The bus carries any record: the
controller's is ``Event``, the runtime has one of its own for containers and images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cnm.model import Endpoint, Network, Sandbox

log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True)
class Event:
    """``kind`` is one of network-create, network-delete, endpoint-join, endpoint-leave,
    endpoint-rename (the endpoint carries its new name), sandbox-create, sandbox-delete
    (``network`` is None for these two; sandbox-delete comes before the namespace is removed,
    so listeners can let go of it), and peer-join, peer-leave (an endpoint of a global network
    on another host became reachable from here, or stopped being so; ``sandbox`` is None)."""

    kind: str
    network: Network | None
    endpoint: Endpoint | None = None
    sandbox: Sandbox | None = None


class EventBus(Generic[E]):
    def __init__(self) -> None:
        self._listeners: list[Callable[[E], None]] = []

    def subscribe(self, listener: Callable[[E], None]) -> None:
        self._listeners.append(listener)

    def emit(self, event: E) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event)
