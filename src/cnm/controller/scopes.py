"""Which store a record lives in: the local one, or the cluster's.

A network's scope is its driver's data scope. Local networks, their endpoints, every sandbox and
every published port live in the local store (SQLite); global networks and their endpoints live
in the global store (etcd), where every host of the cluster sees them. One operation may write
to both: the global writes go first, so a crash between the two leaves at worst a global record
whose local side is missing, which the next start's reconciliation removes.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnm.driverapi import Scope
from cnm.errors import Forbidden
from cnm.model import Network
from cnm.store.api import Delete, GlobalStore, Put, Store, StoreUnavailable

NO_CLUSTER = (
    "{what} needs a cluster store: start the daemon with --cluster-store "
    "etcd://HOST:2379 --cluster-advertise IP (or cluster-store and cluster-advertise in its "
    "config file)"
)

Op = Put | Delete


class Stores:
    def __init__(self, local: Store, global_store: GlobalStore | None) -> None:
        self.local = local
        self.cluster = global_store

    def of(self, network: Network) -> Store:
        return self.of_scope(network.scope, f"network {network.name}")

    def of_scope(self, scope: str, what: str) -> Store:
        if scope != Scope.GLOBAL:
            return self.local
        if self.cluster is None:
            raise Forbidden(NO_CLUSTER.format(what=what))
        return self.cluster

    def commit(self, writes: Sequence[tuple[Store, Op]], *, cluster_may_fail: bool = False) -> bool:
        """Apply writes that may go to both stores: one commit per store, the global one
        first (see the module's note). With ``cluster_may_fail`` an unreachable cluster store
        does not stop the local writes (a teardown goes on while etcd is away; the records
        it could not remove there are removed when the host reconnects); returns whether
        every write was made."""
        local = [op for store, op in writes if store is self.local]
        remote = [op for store, op in writes if store is not self.local]
        complete = True
        if remote:
            assert self.cluster is not None, "global writes without a cluster store"
            try:
                self.cluster.commit(remote)
            except StoreUnavailable:
                if not cluster_may_fail:
                    raise
                complete = False
        if local:
            self.local.commit(local)
        return complete
