"""Published ports: asked for by a sandbox, bound on its gateway endpoint.

A sandbox's ports live on the endpoint the default-route rule picks (``gateway.py``), which
makes them reachable the way Docker's are, and move when that endpoint changes; the driver of
that endpoint's network binds them (``program_external_connectivity``). What was asked, where
it lives and what was bound are recorded under ``ports/<sandbox id>``, and a move or a restart
asks for the host ports first bound again, so they stay the same while they are free.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field, replace

from cnm.controller.gateway import ports_endpoint
from cnm.controller.networks import Networks
from cnm.controller.registry import Registry
from cnm.driverapi import NetworkDriver
from cnm.errors import CnmError
from cnm.model import Endpoint, PortMapping, PortRequest
from cnm.store.api import Delete, Store

log = logging.getLogger(__name__)


@dataclass
class _Published:
    """A sandbox's published ports: as asked (then as first bound, so a move or a restart keeps
    the host ports), where they live now (network id, endpoint id) and as bound there."""

    requests: list[PortRequest]
    owner: tuple[str, str] | None = None
    mappings: list[PortMapping] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "requests": [asdict(r) for r in self.requests],
                "owner": list(self.owner) if self.owner else None,
                "mappings": [m.to_dict() for m in self.mappings],
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> _Published:
        data = json.loads(raw)
        owner = data["owner"]
        return cls(
            [PortRequest(**r) for r in data["requests"]],
            (str(owner[0]), str(owner[1])) if owner else None,
            [PortMapping.from_dict(m) for m in data["mappings"]],
        )


class PublishedPorts:
    def __init__(self, store: Store, registry: Registry, networks: Networks) -> None:
        self._store = store
        self._registry = registry
        self._networks = networks
        self._table: dict[str, _Published] = {}  # by sandbox id
        self._lock = threading.Lock()  # guards the table; a sandbox's lock guards its entry

    def published(self, sandbox_id: str) -> list[PortMapping]:
        """The sandbox's ports as bound now."""
        with self._lock:
            entry = self._table.get(sandbox_id)
        return list(entry.mappings) if entry else []

    def has(self, sandbox_id: str) -> bool:
        with self._lock:
            return sandbox_id in self._table

    def forget(self, sandbox_id: str) -> None:
        with self._lock:
            self._table.pop(sandbox_id, None)

    def _set(self, sandbox_id: str, entry: _Published) -> None:
        with self._lock:
            self._table[sandbox_id] = entry

    def _get(self, sandbox_id: str) -> _Published | None:
        with self._lock:
            return self._table.get(sandbox_id)

    def publish(
        self, sandbox_id: str, requests: list[PortRequest], joined: list[Endpoint]
    ) -> list[PortMapping]:
        """Replace the sandbox's ports (the caller holds the sandbox's lock). They are bound
        now when it has a gateway endpoint among ``joined``, else when one joins (a sandbox on
        internal networks only publishes nothing until then, as in Docker). An error leaves the
        sandbox's earlier ports as they were."""
        previous = self._get(sandbox_id)
        owner = previous.owner if previous else None
        self._set(sandbox_id, _Published(list(requests), owner))
        try:
            self.place(sandbox_id, joined, force=True)
        except BaseException:
            if previous is None:
                self.forget(sandbox_id)
            else:
                self._set(sandbox_id, replace(previous, owner=None, mappings=[]))
                self.place(sandbox_id, joined)
            raise
        return self.published(sandbox_id)

    def place(self, sandbox_id: str, endpoints: list[Endpoint], force: bool = False) -> None:
        """Put the sandbox's published ports on the gateway endpoint among ``endpoints``,
        moving them from where they were (with ``force`` even if that is the same endpoint)."""
        entry = self._get(sandbox_id)
        if entry is None:
            return
        winner = ports_endpoint(endpoints, self._networks.name_of)
        owner = (winner.network_id, winner.id) if winner is not None else None
        if owner == entry.owner and not force:
            return
        if entry.owner is not None:
            self.revoke(*entry.owner)
            entry = replace(entry, owner=None, mappings=[])
            self._set(sandbox_id, entry)
        mappings: list[PortMapping] = []
        if owner is not None:
            driver = self._driver_of(owner[0])
            if driver is not None:
                mappings = driver.program_external_connectivity(*owner, entry.requests)
        requests = [m.as_request() for m in mappings] or entry.requests
        placed = _Published(requests, owner, mappings)
        try:
            self._store.put(f"ports/{sandbox_id}", placed.to_json())
        except BaseException:
            if owner is not None:
                self.revoke(*owner)
            raise
        self._set(sandbox_id, placed)

    def revoke(self, network_id: str, endpoint_id: str) -> None:
        driver = self._driver_of(network_id)
        if driver is not None:
            driver.revoke_external_connectivity(network_id, endpoint_id)

    def _driver_of(self, network_id: str) -> NetworkDriver | None:
        network = self._networks.get(network_id)
        return self._registry.network_driver(network) if network is not None else None

    def restore(self, joined_of: dict[str, list[Endpoint]]) -> None:
        """Bind each restored sandbox's ports again, on the endpoint that had them; records of
        sandboxes that are gone are dropped. ``joined_of`` maps every restored sandbox to its
        joined endpoints."""
        stale: list[Delete] = []
        for entry in self._store.list("ports/"):
            sandbox_id = entry.key.removeprefix("ports/")
            if sandbox_id not in joined_of:
                stale.append(Delete(entry.key))
                continue
            published = _Published.from_json(entry.value)
            self._set(sandbox_id, replace(published, owner=None, mappings=[]))
            try:
                self.place(sandbox_id, joined_of[sandbox_id])
            except CnmError as err:
                log.error("cannot publish the ports of sandbox %s again: %s", sandbox_id[:12], err)
        if stale:
            self._store.commit(stale)
