"""This host in the cluster: its membership, and its view of the other hosts' global records.

Membership. The host registers ``hosts/<node id>`` (its tunnel address and name) under an etcd
lease it renews every heartbeat; its local networks' subnets go under the same lease
(``subnets/<node id>/...``, for the global IPAM's overlap checks). A daemon that stops does not
revoke the lease: its containers keep running (live restore) and a restart within the TTL goes
unnoticed by the other hosts. Past the TTL the lease expires, etcd deletes the keys, and every
other host removes that host's endpoints from its data path; when it comes back it registers
again and they are programmed again.

The view. One watch on the whole prefix, from the revision of the listing taken at connection,
delivers every change in revision order: networks made and removed on other hosts (added to and
dropped from the network table, their drivers told), endpoints of other hosts (peers: given to
the drivers with ``add_peer``/``remove_peer`` and to DNS as ``peer-join``/``peer-leave``
events, while their host is registered), and hosts coming and going. The watch resumes by
itself after the store was out of reach, from the revision after the last change it delivered,
so nothing is lost and nothing is listed again; only a compacted history makes it list
everything again and reconcile.

Losing etcd. Nothing on this host changes: the kernel keeps every container's data path as it
is, and the host reports itself degraded (``status``, shown by ``docker info``) until a
heartbeat gets through again. Then it reconciles: its own global endpoint records that name no
sandbox of this host any more (containers that stopped meanwhile) are removed with their
addresses, and a lease that expired meanwhile is replaced.

The first connection also restores this host's own global endpoints (the local restore knows
only local records): it hands them to their drivers' ``restore`` and to the endpoint table.
Until it happens, the global drivers' kernel objects are left exactly as they are.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from cnm.controller.endpoints import Endpoints, endpoint_spec
from cnm.controller.networks import Networks, network_spec
from cnm.controller.registry import Registry
from cnm.controller.sandboxes import Sandboxes
from cnm.driverapi import Peer, Scope
from cnm.errors import CnmError
from cnm.events import Event, EventBus
from cnm.ipamapi import IPNetwork
from cnm.model import Endpoint, Network
from cnm.store.api import (
    Delete,
    Entry,
    GlobalStore,
    LeaseExpired,
    Put,
    StoreCompacted,
    StoreUnavailable,
    WatchEvent,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterConfig:
    node_id: str  # stable across restarts (the daemon's engine id)
    node_name: str
    advertise_address: str  # this host's underlay address: its tunnel endpoint
    ttl: int = 20  # seconds without a heartbeat before the others drop this host
    heartbeat: int = 5


@dataclass(frozen=True)
class ClusterStatus:
    store: str  # the endpoints, for docker info
    advertise_address: str
    degraded: str | None  # why, while the cluster store is out of reach
    hosts: int  # hosts registered, this one included


@dataclass(frozen=True)
class _Host:
    node_id: str
    name: str
    address: str


def _parse_network(key: str, value: bytes | None) -> Network | None:
    """A network record another host wrote; None (logged) if it is not one: records written
    by someone else are skipped, never a crash."""
    try:
        network = Network.from_json(value or b"")
        if f"network/{network.id}" != key or not network.name:
            raise ValueError("its key and content disagree")
        return network
    except (ValueError, KeyError, TypeError) as err:
        log.warning("skipping malformed record %s: %s", key[:80], err)
        return None


def _parse_endpoint(key: str, value: bytes | None) -> Endpoint | None:
    try:
        endpoint = Endpoint.from_json(value or b"")
        if f"endpoint/{endpoint.id}" != key or not endpoint.network_id:
            raise ValueError("its key and content disagree")
        if endpoint.vtep:
            ipaddress.ip_address(endpoint.vtep)
        for text in (endpoint.ipv4_address, endpoint.ipv6_address):
            if text:
                ipaddress.ip_interface(text)
        return endpoint
    except (ValueError, KeyError, TypeError) as err:
        log.warning("skipping malformed record %s: %s", key[:80], err)
        return None


def _peer(endpoint: Endpoint) -> Peer:
    return Peer(
        endpoint_id=endpoint.id,
        host=endpoint.host,
        vtep=ipaddress.ip_address(endpoint.vtep),
        mac_address=endpoint.mac_address or "",
        address=ipaddress.IPv4Interface(endpoint.ipv4_address) if endpoint.ipv4_address else None,
        address_v6=(
            ipaddress.IPv6Interface(endpoint.ipv6_address) if endpoint.ipv6_address else None
        ),
    )


class Cluster:
    def __init__(
        self,
        store: GlobalStore,
        config: ClusterConfig,
        registry: Registry,
        networks: Networks,
        endpoints: Endpoints,
        sandboxes: Sandboxes,
        events: EventBus[Event],
        local_subnets: Callable[[], list[IPNetwork]],
        after_restore: Callable[[list[str]], None],
    ) -> None:
        self._store = store
        self.config = config
        self._registry = registry
        self._networks = networks
        self._endpoints = endpoints
        self._sandboxes = sandboxes
        self._events = events
        self._local_subnets = local_subnets
        self._after_restore = after_restore  # sandbox ids whose global endpoints came back
        self._lock = threading.RLock()  # serialises the view's changes
        self._lease: int | None = None
        self._hosts: dict[str, _Host] = {}
        self._remote: dict[str, Endpoint] = {}  # other hosts' endpoints, by id
        self._programmed: set[str] = set()  # of those, the ones the drivers were given
        self._restored = False
        self._degraded: str | None = "not connected yet"
        self._unwatch: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subnets_known: set[IPNetwork] = set()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Connect now if the store answers; otherwise go on degraded and keep trying."""
        try:
            self._connect()
        except StoreUnavailable as err:
            self._set_degraded(str(err))
        self._events.subscribe(self._on_local_event)
        self._thread = threading.Thread(target=self._run, name="cnm-cluster", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._store_timeout())
        with self._lock:
            if self._unwatch is not None:
                self._unwatch()
                self._unwatch = None

    def _store_timeout(self) -> float:
        return float(getattr(self._store, "timeout", 5.0)) + 1.0

    def status(self) -> ClusterStatus:
        with self._lock:
            hosts = len(self._hosts)
        endpoints = getattr(self._store, "endpoints", [])
        return ClusterStatus(
            store="etcd://" + ",".join(endpoints),
            advertise_address=self.config.advertise_address,
            degraded=self._degraded,
            hosts=hosts,
        )

    def _set_degraded(self, reason: str | None) -> None:
        if reason is not None and self._degraded is None:
            log.warning("cluster store out of reach: %s", reason)
        elif reason is None and self._degraded is not None:
            log.info("cluster store reachable again")
        self._degraded = reason

    def _run(self) -> None:
        while not self._stop.wait(self.config.heartbeat):
            try:
                if not self._restored:
                    self._connect()
                else:
                    self._heartbeat()
            except StoreUnavailable as err:
                self._set_degraded(str(err))
            except Exception as err:  # the heartbeat must outlive any one failure
                log.exception("cluster heartbeat")
                self._set_degraded(f"heartbeat failed: {err}")

    # ----------------------------------------------------------------- membership

    def _register(self) -> None:
        """A new lease, with this host and its local subnets under it."""
        lease = self._store.grant_lease(self.config.ttl)
        host = {"address": self.config.advertise_address, "name": self.config.node_name}
        ops: list[Put | Delete] = [
            Put(f"hosts/{self.config.node_id}", json.dumps(host).encode(), lease=lease)
        ]
        subnets = set(self._local_subnets())
        ops += [Put(self._subnet_key(net), b"", lease=lease) for net in subnets]
        self._store.commit(ops)
        self._lease = lease
        self._subnets_known = subnets

    def _subnet_key(self, subnet: IPNetwork) -> str:
        return f"subnets/{self.config.node_id}/{str(subnet).replace('/', '_')}"

    def _heartbeat(self) -> None:
        was_degraded = self._degraded is not None
        try:
            assert self._lease is not None
            self._store.keepalive(self._lease)
        except LeaseExpired:
            log.warning("this host's cluster lease expired; registering again")
            self._register()
        self._set_degraded(None)
        if was_degraded:
            self._reconcile_own()

    def _on_local_event(self, event: Event) -> None:
        """Keep this host's local subnets registered as local networks come and go."""
        network = event.network
        if network is None or network.scope == Scope.GLOBAL:
            return
        if event.kind not in ("network-create", "network-delete") or self._lease is None:
            return
        subnets = set(self._local_subnets())
        added, removed = subnets - self._subnets_known, self._subnets_known - subnets
        ops: list[Put | Delete] = [Put(self._subnet_key(n), b"", lease=self._lease) for n in added]
        ops += [Delete(self._subnet_key(n)) for n in removed]
        if not ops:
            return
        try:
            self._store.commit(ops)
            self._subnets_known = subnets
        except StoreUnavailable as err:
            self._set_degraded(str(err))

    # ----------------------------------------------------------------- the view

    def _connect(self) -> None:
        """Register, read everything once, apply it, and watch from there."""
        with self._lock:
            self._register()
            entries, revision = self._store.list_with_revision("")
            self._apply_snapshot(entries)
            if self._unwatch is not None:
                self._unwatch()
            self._unwatch = self._store.watch_from(
                "", self._on_change, revision + 1, self._on_compacted
            )
            self._set_degraded(None)
        log.info(
            "joined the cluster",
            extra={"node": self.config.node_id[:12], "hosts": len(self._hosts)},
        )

    def _on_compacted(self, compacted: StoreCompacted) -> None:
        log.warning("%s; reading the cluster's state again", compacted)
        with self._lock:
            self._unwatch = None
        self._restored = False  # the next heartbeat connects again and reconciles

    def _apply_snapshot(self, entries: list[Entry]) -> None:
        hosts: dict[str, _Host] = {}
        networks: dict[str, Network] = {}
        endpoints: dict[str, Endpoint] = {}
        for entry in entries:
            kind, _, name = entry.key.partition("/")
            if kind == "hosts" and "/" not in name:
                host = self._parse_host(name, entry.value)
                if host is not None:
                    hosts[name] = host
            elif kind == "network":
                network = _parse_network(entry.key, entry.value)
                if network is not None:
                    networks[network.id] = network
            elif kind == "endpoint":
                endpoint = _parse_endpoint(entry.key, entry.value)
                if endpoint is not None:
                    endpoints[endpoint.id] = endpoint
        self._hosts = hosts
        own = {e.id: e for e in endpoints.values() if e.host == self.config.node_id}
        with self._networks.create_delete_lock:
            if not self._restored:
                self._restore_own(networks, own)
            for network in networks.values():
                self._networks.adopt(network)
            for known in self._networks.all():
                if known.scope == Scope.GLOBAL and known.id not in networks:
                    self._networks.forget(known)
        if not self._restored:
            self._announce_own(networks, own)
        for endpoint_id in set(self._remote) - set(endpoints):
            self._drop_remote(endpoint_id)
        for endpoint in endpoints.values():
            if endpoint.host != self.config.node_id:
                self._set_remote(endpoint)
        self._sync_peers(networks)

    def _sync_peers(self, networks: dict[str, Network]) -> None:
        """After a full read: each global network's driver holds exactly its peers (entries
        of peers that went while this host was away are swept)."""
        for network in networks.values():
            peers = [
                _peer(e)
                for e in self._remote.values()
                if e.network_id == network.id and e.id in self._programmed
            ]
            try:
                with self._networks.lock(network.id):
                    self._registry.network_driver(network).sync_peers(network.id, peers)
            except (CnmError, ValueError):
                log.exception("cannot set the peers of %s", network.name)

    def _on_change(self, change: WatchEvent) -> None:
        kind, _, name = change.key.partition("/")
        with self._lock:
            if kind == "hosts" and "/" not in name:
                self._host_changed(name, change.value)
            elif kind == "network":
                self._network_changed(name, change)
            elif kind == "endpoint":
                endpoint = _parse_endpoint(change.key, change.value) if change.value else None
                if change.value is None:
                    self._drop_remote(name)
                elif endpoint is not None and endpoint.host != self.config.node_id:
                    self._set_remote(endpoint)

    def _host_changed(self, node_id: str, value: bytes | None) -> None:
        if value is None:
            if self._hosts.pop(node_id, None) is not None and node_id != self.config.node_id:
                log.info("host %s left the cluster; removing its endpoints", node_id[:12])
                for endpoint in list(self._remote.values()):
                    if endpoint.host == node_id:
                        self._unprogram(endpoint)
            return
        host = self._parse_host(node_id, value)
        if host is None:
            return
        self._hosts[node_id] = host
        for endpoint in list(self._remote.values()):
            if endpoint.host == node_id:
                self._program(endpoint)

    def _network_changed(self, network_id: str, change: WatchEvent) -> None:
        with self._networks.create_delete_lock:
            if change.value is None:
                network = self._networks.get(network_id)
                if network is not None and network.scope == Scope.GLOBAL:
                    self._networks.forget(network)
                return
            network = _parse_network(change.key, change.value)
            if network is not None and network.scope == Scope.GLOBAL:
                self._networks.adopt(network)

    # ----------------------------------------------------------------- peers

    def _set_remote(self, endpoint: Endpoint) -> None:
        previous = self._remote.get(endpoint.id)
        self._remote[endpoint.id] = endpoint
        if previous is not None and previous.id in self._programmed and previous != endpoint:
            self._unprogram(previous)
        self._program(endpoint)

    def _drop_remote(self, endpoint_id: str) -> None:
        endpoint = self._remote.pop(endpoint_id, None)
        if endpoint is not None:
            self._unprogram(endpoint)

    def _program(self, endpoint: Endpoint) -> None:
        """Give a peer to its driver and to DNS, once it is joined, its host registered and
        its network known here."""
        if endpoint.id in self._programmed or endpoint.sandbox_id is None:
            return
        if endpoint.host not in self._hosts or not endpoint.vtep or not endpoint.mac_address:
            return
        network = self._networks.get(endpoint.network_id)
        if network is None:
            return
        try:
            with self._networks.lock(network.id):
                self._registry.network_driver(network).add_peer(network.id, _peer(endpoint))
        except (CnmError, ValueError):
            log.exception("cannot reach peer %s on %s", endpoint.id[:12], network.name)
            return
        self._programmed.add(endpoint.id)
        self._events.emit(Event("peer-join", replace(network), replace(endpoint)))

    def _unprogram(self, endpoint: Endpoint) -> None:
        if endpoint.id not in self._programmed:
            return
        self._programmed.discard(endpoint.id)
        network = self._networks.get(endpoint.network_id)
        if network is None:
            return
        try:
            with self._networks.lock(network.id):
                self._registry.network_driver(network).remove_peer(network.id, _peer(endpoint))
        except (CnmError, ValueError):
            log.exception("cannot remove peer %s on %s", endpoint.id[:12], network.name)
        self._events.emit(Event("peer-leave", replace(network), replace(endpoint)))

    def peers(self) -> list[tuple[Network, Endpoint]]:
        """Other hosts' endpoints this host can reach now, with their networks."""
        with self._lock:
            found = []
            for endpoint_id in self._programmed:
                endpoint = self._remote.get(endpoint_id)
                network = self._networks.get(endpoint.network_id) if endpoint else None
                if endpoint is not None and network is not None:
                    found.append((replace(network), replace(endpoint)))
            return found

    def hosts_on(self, network_id: str) -> list[tuple[str, str]]:
        """(name, address) of the registered hosts with endpoints on the network, this one
        first when it has one (Docker's ``Peers`` of a network)."""
        with self._lock:
            nodes = {e.host for e in self._remote.values() if e.network_id == network_id}
            if self._endpoints.on_network(network_id):
                nodes.add(self.config.node_id)
            hosts = [self._hosts[n] for n in nodes if n in self._hosts]
        hosts.sort(key=lambda h: (h.node_id != self.config.node_id, h.name))
        return [(h.name, h.address) for h in hosts]

    # ----------------------------------------------------------------- this host's own

    def _restore_own(self, networks: dict[str, Network], own: dict[str, Endpoint]) -> None:
        """The first connection: the global networks and this host's endpoints on them back
        into the tables and to their drivers' ``restore`` (which makes or adopts their kernel
        objects), after dropping the endpoints whose sandbox is gone."""
        stale = [e for e in own.values() if self._orphaned(e)]
        for endpoint in stale:
            self._remove_record(networks.get(endpoint.network_id), endpoint)
            del own[endpoint.id]
        for driver in self._registry.drivers():
            if driver.capabilities().data_scope != Scope.GLOBAL:
                continue
            driver.restore(
                [network_spec(n) for n in networks.values() if n.driver == driver.name],
                [
                    endpoint_spec(e, joined=e.sandbox_id is not None, sandbox_key=self._key(e))
                    for e in own.values()
                    if e.network_id in networks and networks[e.network_id].driver == driver.name
                ],
            )
        for network in networks.values():
            self._networks.adopt(network, restored=True)
        for endpoint in own.values():
            self._endpoints.put(endpoint)

    def _announce_own(self, networks: dict[str, Network], own: dict[str, Endpoint]) -> None:
        """Tell DNS and the published ports of the restored endpoints."""
        sandboxes = {e.sandbox_id for e in own.values() if e.sandbox_id}
        for endpoint in own.values():
            network = networks.get(endpoint.network_id)
            sandbox = self._sandboxes.get(endpoint.sandbox_id or "")
            if network is not None and sandbox is not None:
                self._events.emit(
                    Event("endpoint-join", replace(network), replace(endpoint), replace(sandbox))
                )
        self._restored = True
        self._after_restore(sorted(s for s in sandboxes if s))

    def _key(self, endpoint: Endpoint) -> str | None:
        sandbox = self._sandboxes.get(endpoint.sandbox_id or "")
        return sandbox.key if sandbox is not None else None

    def _orphaned(self, endpoint: Endpoint) -> bool:
        if endpoint.sandbox_id is None:
            return False  # made through the API without a sandbox: it waits for a join
        return self._sandboxes.get(endpoint.sandbox_id) is None

    def _reconcile_own(self) -> None:
        """After an outage: remove this host's global records whose sandbox went meanwhile."""
        with self._lock:
            try:
                entries = self._store.list("endpoint/")
            except StoreUnavailable as err:
                self._set_degraded(str(err))
                return
            for entry in entries:
                endpoint = _parse_endpoint(entry.key, entry.value)
                if endpoint is None or endpoint.host != self.config.node_id:
                    continue
                if self._orphaned(endpoint):
                    self._remove_record(self._networks.get(endpoint.network_id), endpoint)

    def _remove_record(self, network: Network | None, endpoint: Endpoint) -> None:
        log.info("removing the record of endpoint %s: its sandbox is gone", endpoint.id[:12])
        try:
            if network is None:
                self._store.delete(f"endpoint/{endpoint.id}")
                return
            self._store.commit([op for _, op in self._endpoints.removal(network, endpoint)])
            self._endpoints.drop(endpoint.id)
            self._endpoints.release_addresses(network, endpoint)
        except CnmError:
            log.exception("removing the record of endpoint %s", endpoint.id[:12])

    # ----------------------------------------------------------------- parsing

    def _parse_host(self, node_id: str, value: bytes) -> _Host | None:
        try:
            data = json.loads(value)
            return _Host(node_id, str(data["name"]), str(data["address"]))
        except (ValueError, KeyError, TypeError):
            log.warning("skipping malformed host record %s", node_id[:40])
            return None
