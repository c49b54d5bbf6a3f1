"""Cluster-wide unique numbers for global-scope drivers (an overlay's VNI), in the cluster's
store: one key per number taken (``ids/<kind>/<number>``), created with a compare-and-swap
that fails if any host took the number first, in which case the next free one is tried."""

from __future__ import annotations

from cnm.controller.scopes import Stores
from cnm.driverapi import Scope
from cnm.errors import InvalidParameter, Unavailable
from cnm.store.api import StoreConflict

MAX_ATTEMPTS = 64


class StoreIds:
    """The controller's ``IdAllocator`` (see ``cnm.driverapi``)."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    def allocate(self, kind: str, low: int, high: int) -> int:
        if not 0 <= low <= high:
            raise InvalidParameter(f"invalid {kind} range {low}-{high}")
        store = self._stores.of_scope(Scope.GLOBAL, f"a cluster-wide {kind}")
        prefix = f"ids/{kind}/"
        for _ in range(MAX_ATTEMPTS):
            taken = {int(e.key.removeprefix(prefix)) for e in store.list(prefix)}
            value = next((n for n in range(low, high + 1) if n not in taken), None)
            if value is None:
                raise Unavailable(f"no free {kind} left in {low}-{high}")
            try:
                store.put(f"{prefix}{value}", b"", expect_revision=0)
            except StoreConflict:
                continue  # another host took it between the listing and the write
            return value
        raise Unavailable(f"could not reserve a {kind}: too many hosts competing for it")

    def release(self, kind: str, value: int) -> None:
        self._stores.of_scope(Scope.GLOBAL, f"a cluster-wide {kind}").delete(f"ids/{kind}/{value}")
