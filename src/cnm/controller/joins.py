"""Joining endpoints to sandboxes, and leaving them: the one place sandboxes, endpoints and
networks meet.

Join, in order: the driver makes the interface inside the sandbox (the lowest free ``ethN``, or
the name a remote plugin's prefix gave it); the controller addresses it and applies the
default-route rule; published ports move to the gateway endpoint if that changed; the hosts file is rewritten; then the endpoint and the
sandbox (its join counter) are recorded in one store commit. Every step has its undo. Leave
records first, then moves the ports, has the driver remove the interface, hands the default
route over, and rewrites hosts; once the record says the endpoint left, a driver that fails to
leave (a plugin gone) is logged and the leave goes on, as Docker's does.

A sandbox's teardown removes its namespace before its endpoints' kernel objects: the kernel then
drops all its links at once (a veth delete alone waits for an RCU grace period), and the
drivers only forget what they knew. An adopted namespace (``sandboxes.py``) outlives the
sandbox, so there the drivers remove their interfaces first, and only cnm's mount goes after.

An endpoint may ask for its interface's name (CNI_IFNAME); otherwise it gets the lowest free
``ethN``. A name that another endpoint of the sandbox, or any link already in the namespace
(another runtime's, in an adopted one), holds is refused before the driver makes anything.

Locks: a sandbox's lock, then a network's lock, never the other way round. A connect or a
disconnect holds the network's lock only while its endpoint is made or forgotten there (its
name, its addresses); the join or leave itself, milliseconds of kernel work (a veth, addresses,
routes, firewall elements), runs under the sandbox's lock alone. Holding the network's lock
through it put every client connecting to one network in one line: with 16 clients a connect's
p99 was 1-2 s where one takes 8 ms (``bench/concurrency.py``). The endpoint is in the table from
its creation, so the network cannot be deleted under a join ("has active endpoints").
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import replace

from cnm import validate
from cnm.controller.endpoints import Endpoints, endpoint_name_key
from cnm.controller.gateway import (
    configure_interface,
    hand_over_default_routes,
    set_default_routes,
)
from cnm.controller.networks import Networks
from cnm.controller.ports import PublishedPorts
from cnm.controller.registry import Registry
from cnm.controller.sandboxes import Sandboxes
from cnm.controller.scopes import Op, Stores
from cnm.driverapi import Scope
from cnm.errors import CnmError, Conflict, Forbidden, NotFound
from cnm.events import Event, EventBus
from cnm.model import Endpoint, EndpointOptions, Network, PortMapping, PortRequest, Sandbox
from cnm.osl.links import sandbox_network
from cnm.store.api import Delete, Put, Store, StoreConflict
from cnm.transaction import transaction

log = logging.getLogger(__name__)


class Joins:
    def __init__(
        self,
        stores: Stores,
        registry: Registry,
        networks: Networks,
        endpoints: Endpoints,
        sandboxes: Sandboxes,
        ports: PublishedPorts,
        events: EventBus[Event],
    ) -> None:
        self._stores = stores
        self._registry = registry
        self._networks = networks
        self._endpoints = endpoints
        self._sandboxes = sandboxes
        self._ports = ports
        self._events = events

    # ----------------------------------------------------------------- join / leave

    def join(self, endpoint_id: str, sandbox_id: str) -> Endpoint:
        sandbox = self._sandboxes.find(sandbox_id)
        with self._sandboxes.lock(sandbox.id):
            endpoint = self._endpoints.find(endpoint_id)
            network = self._networks.find(endpoint.network_id)
            with self._networks.lock(network.id):
                return self._join(network, endpoint, sandbox)

    def leave(self, endpoint_id: str) -> None:
        endpoint = self._endpoints.find(endpoint_id)
        if endpoint.sandbox_id is None:
            raise Forbidden(f"endpoint {endpoint.name} is not joined to a sandbox")
        sandbox = self._sandboxes.find(endpoint.sandbox_id)
        with self._sandboxes.lock(sandbox.id):
            network = self._networks.find(endpoint.network_id)
            with self._networks.lock(network.id):
                self._leave(network, self._endpoints.find(endpoint_id), sandbox)

    def connect(self, network_ref: str, sandbox_id: str, options: EndpointOptions) -> Endpoint:
        """Create an endpoint on the network and join it to the sandbox, as one operation."""
        sandbox = self._sandboxes.find(sandbox_id)
        network = self._networks.find(network_ref)
        with self._sandboxes.lock(sandbox.id):
            if options.ifname is not None:
                validate.interface_name(options.ifname)
            with self._networks.lock(network.id):
                endpoint = self._endpoints.create(network, options, persist=False)
            try:
                return self._join(
                    network, endpoint, self._sandboxes.find(sandbox.id), options.ifname
                )
            except BaseException:
                try:
                    with self._networks.lock(network.id):
                        self._endpoints.delete(network, endpoint)
                except CnmError:
                    log.exception("rolling back endpoint %s", endpoint.name)
                raise

    def disconnect(self, network_ref: str, sandbox_id: str) -> None:
        """Leave the sandbox's endpoint on the network and delete it."""
        sandbox = self._sandboxes.find(sandbox_id)
        network = self._networks.find(network_ref)
        with self._sandboxes.lock(sandbox.id):
            endpoint = next(
                (e for e in self._endpoints.joined_to(sandbox.id) if e.network_id == network.id),
                None,
            )
            if endpoint is None:
                raise NotFound(
                    f"sandbox {sandbox.id[:12]} is not connected to network {network.name}"
                )
            # One store commit removes the record: a crash in between would otherwise leave an
            # endpoint in no sandbox, which nothing removes.
            self._leave(network, endpoint, self._sandboxes.find(sandbox.id), delete=True)
            with self._networks.lock(network.id):
                self._endpoints.forget(network, endpoint)

    def _join(
        self, network: Network, endpoint: Endpoint, sandbox: Sandbox, ifname: str | None = None
    ) -> Endpoint:
        if endpoint.sandbox_id is not None:
            raise Forbidden(f"endpoint {endpoint.name} is already joined to a sandbox")
        joined = self._endpoints.joined_to(sandbox.id)
        if any(e.network_id == network.id for e in joined):
            raise Forbidden(f"sandbox is already connected to network {network.name}")
        driver = self._registry.network_driver(network)
        self._check_exclusive(network, joined, driver.capabilities().uses_addresses)
        if network.driver == "host" and not sandbox.use_host_network:
            raise Forbidden("only a sandbox made for the host network can join the host network")
        if sandbox.use_host_network and network.driver != "host":
            raise Forbidden(f"a host-network sandbox cannot join network {network.name}")
        used = {e.ifname for e in joined}
        key = None if sandbox.use_host_network else sandbox.key
        if ifname is None:
            ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        else:
            self._check_free_name(sandbox, key, ifname, used)
        updated = replace(endpoint, sandbox_id=sandbox.id, ifname=ifname, join_order=sandbox.joins)
        if network.scope == Scope.GLOBAL:  # what the other hosts' DNS answers for it
            updated.container_id, updated.hostname = sandbox.container_id, sandbox.hostname
        with transaction() as txn:
            info = driver.join(network.id, endpoint.id, key, ifname)
            txn.on_failure("driver join", lambda: driver.leave(network.id, endpoint.id))
            if info.interface_name is not None:
                updated.ifname = info.interface_name
            if info.configure_interface and key is not None:
                name = self._networks.name_of
                moved = configure_interface(key, updated, info, joined, name)
                txn.on_failure(
                    "default route", lambda: set_default_routes(key, joined, moved, name)
                )
                updated.gateway_v4 = str(info.gateway) if info.gateway else None
                updated.gateway_v6 = str(info.gateway_v6) if info.gateway_v6 else None
            self._ports.place(sandbox.id, [*joined, updated])
            txn.on_failure("published ports", lambda: self._ports.place(sandbox.id, joined))
            new_sandbox = replace(sandbox, joins=sandbox.joins + 1)
            self._sandboxes.files.write_hosts(new_sandbox, [*joined, updated])
            txn.on_failure("hosts file", lambda: self._sandboxes.files.write_hosts(sandbox, joined))
            self._stores.commit(
                [
                    (self._stores.of(network), Put(f"endpoint/{updated.id}", updated.to_json())),
                    (self._stores.local, Put(f"sandbox/{sandbox.id}", new_sandbox.to_json())),
                ]
            )
        self._endpoints.put(updated)
        self._sandboxes.put(new_sandbox)
        self._events.emit(
            Event("endpoint-join", replace(network), replace(updated), replace(new_sandbox))
        )
        return updated

    def _check_free_name(
        self, sandbox: Sandbox, key: str | None, ifname: str, used: set[str | None]
    ) -> None:
        taken = ifname in used
        if not taken and key is not None:
            with sandbox_network(key) as sandbox_net:
                taken = sandbox_net.links.index_of(ifname) is not None
        if taken:
            raise Conflict(
                f"interface {ifname} already exists in sandbox {sandbox.id[:12]} "
                f"(container {sandbox.container_id[:12]})"
            )

    def _check_exclusive(self, network: Network, joined: list[Endpoint], uses: bool) -> None:
        """host and none networks do not mix with others in one sandbox."""
        if not joined:
            return
        exclusive = not uses
        for endpoint in joined:
            other = self._networks.get(endpoint.network_id)
            driver = self._registry.known_driver(other.driver) if other is not None else None
            if driver is not None and not driver.capabilities().uses_addresses:
                exclusive = True
        if exclusive:
            raise Forbidden(
                "container cannot be connected to multiple networks with one of the networks "
                "in private (none) or host mode"
            )

    def _leave(
        self, network: Network, endpoint: Endpoint, sandbox: Sandbox, delete: bool = False
    ) -> None:
        """Leave; with ``delete`` the endpoint's record goes too (the caller then forgets the
        endpoint)."""
        driver = self._registry.network_driver(network)
        left = replace(endpoint, sandbox_id=None, ifname=None, gateway_v4=None, gateway_v6=None)
        remaining = [e for e in self._endpoints.joined_to(sandbox.id) if e.id != endpoint.id]
        if delete:
            self._stores.commit(self._endpoints.removal(network, endpoint))
        else:
            self._stores.of(network).put(f"endpoint/{endpoint.id}", left.to_json())
        self._endpoints.put(left)
        try:
            self._ports.place(sandbox.id, remaining)
        except CnmError:
            log.exception("moving the published ports of sandbox %s", sandbox.id[:12])
        try:
            driver.leave(network.id, endpoint.id)
        except CnmError as err:
            log.warning("driver error disconnecting endpoint %s: %s", endpoint.name, err)
        if not sandbox.use_host_network:
            hand_over_default_routes(sandbox.key, endpoint, remaining, self._networks.name_of)
        self._sandboxes.files.write_hosts(sandbox, remaining)
        self._events.emit(
            Event("endpoint-leave", replace(network), replace(endpoint), replace(sandbox))
        )

    # ----------------------------------------------------------------- names and ports

    def rename(self, sandbox_id: str, name: str) -> None:
        """Give every endpoint joined to the sandbox a new name (a container's endpoints carry
        the container's name, and so do its DNS records), in one store commit."""
        sandbox = self._sandboxes.find(sandbox_id)
        with self._sandboxes.lock(sandbox.id), ExitStack() as locks:
            joined = self._endpoints.joined_to(sandbox.id)
            for network_id in sorted({e.network_id for e in joined}):
                locks.enter_context(self._networks.lock(network_id))
            for endpoint in joined:
                holder = self._endpoints.name_holder(endpoint.network_id, name)
                if holder is not None and holder != endpoint.id:
                    network = self._networks.find(endpoint.network_id)
                    raise Conflict(
                        f"endpoint with name {name} already exists in network {network.name}"
                    )
            renamed = [replace(e, name=name) for e in joined]
            writes: list[tuple[Store, Op]] = []
            for old, new in zip(joined, renamed, strict=True):
                network = self._networks.find(new.network_id)
                store = self._stores.of(network)
                writes.append((store, Put(f"endpoint/{new.id}", new.to_json())))
                if network.scope == Scope.GLOBAL:
                    writes.append((store, Delete(endpoint_name_key(network.id, old.name))))
                    writes.append(
                        (store, Put(endpoint_name_key(network.id, name), new.id.encode(), 0))
                    )
            try:
                self._stores.commit(writes)
            except StoreConflict:
                raise Conflict(f"endpoint with name {name} already exists in a network") from None
            for endpoint in renamed:
                self._endpoints.put(endpoint)
            for endpoint in renamed:
                network = self._networks.find(endpoint.network_id)
                self._events.emit(
                    Event("endpoint-rename", replace(network), replace(endpoint), replace(sandbox))
                )

    def set_link_hosts(self, sandbox_id: str, entries: list[str]) -> None:
        """Replace the sandbox's hosts lines of legacy links (``names:address``)."""
        sandbox = self._sandboxes.find(sandbox_id)
        with self._sandboxes.lock(sandbox.id):
            for entry in entries:
                validate.extra_host(entry)
            updated = replace(self._sandboxes.find(sandbox.id), link_hosts=list(entries))
            self._stores.local.put(f"sandbox/{sandbox.id}", updated.to_json())
            self._sandboxes.put(updated)
            self._sandboxes.files.write_hosts(updated, self._endpoints.joined_to(sandbox.id))

    def publish(self, sandbox_id: str, requests: list[PortRequest]) -> list[PortMapping]:
        """Publish ports for the sandbox, replacing those it had, on its gateway endpoint."""
        sandbox = self._sandboxes.find(sandbox_id)
        with self._sandboxes.lock(sandbox.id):
            return self._ports.publish(sandbox.id, requests, self._endpoints.joined_to(sandbox.id))

    # ----------------------------------------------------------------- teardown

    def delete_sandbox(self, sandbox_id: str) -> None:
        """Leave and delete every endpoint of the sandbox, then remove it, records first.

        The namespace goes before the endpoints' kernel objects, which relies on nothing else
        holding it: a caller whose processes may still be inside (a container sharing the
        sandbox) disconnects the endpoints first."""
        sandbox = self._sandboxes.find(sandbox_id)
        with self._sandboxes.lock(sandbox.id):
            joined = self._endpoints.joined_to(sandbox.id)
            local = self._stores.local
            writes: list[tuple[Store, Op]] = [(local, Delete(f"sandbox/{sandbox.id}"))]
            for endpoint in joined:
                network = self._networks.get(endpoint.network_id)
                if network is not None:
                    writes += self._endpoints.removal(network, endpoint)
                else:
                    writes.append((local, Delete(f"endpoint/{endpoint.id}")))
            if self._ports.has(sandbox.id):
                writes.append((local, Delete(f"ports/{sandbox.id}")))
            recorded = self._stores.commit(writes, cluster_may_fail=True)
            if not recorded:
                log.warning(
                    "cluster store unreachable: the records of sandbox %s's endpoints there "
                    "are removed when this host reconnects",
                    sandbox.id[:12],
                )
            self._ports.forget(sandbox.id)
            self._sandboxes.drop(sandbox.id)
            for endpoint in joined:
                self._endpoints.drop(endpoint.id)
            self._events.emit(Event("sandbox-delete", None, sandbox=replace(sandbox)))
            if sandbox.adopted_from:
                for endpoint in joined:
                    self._release(endpoint, sandbox, recorded, namespace_deleted=False)
                self._sandboxes.delete_namespace(sandbox)
            else:
                self._sandboxes.delete_namespace(sandbox)
                for endpoint in joined:
                    self._release(endpoint, sandbox, recorded)
            self._sandboxes.files.remove(sandbox.id)
        self._sandboxes.forget_lock(sandbox.id)
        self._endpoints.forget_sandbox(sandbox.id)

    def _release(
        self,
        endpoint: Endpoint,
        sandbox: Sandbox,
        recorded: bool,
        *,
        namespace_deleted: bool = True,
    ) -> None:
        """The driver's and IPAM's part of an endpoint whose namespace is gone (with
        ``namespace_deleted`` False, of one whose namespace stays: the driver removes its
        interface). Addresses of a global endpoint whose record could not be removed stay
        taken: they go with the record when the host reconnects."""
        network = self._networks.get(endpoint.network_id)
        if network is None:
            return
        with self._networks.lock(network.id):
            try:
                driver = self._registry.network_driver(network)
                driver.revoke_external_connectivity(network.id, endpoint.id)
                driver.leave(network.id, endpoint.id, namespace_deleted=namespace_deleted)
                driver.delete_endpoint(network.id, endpoint.id)
            except CnmError:
                log.exception("driver cleanup of endpoint %s", endpoint.id[:12])
            if recorded or network.scope != Scope.GLOBAL:
                try:
                    self._endpoints.release_addresses(network, endpoint)
                except CnmError:
                    log.exception("releasing the addresses of endpoint %s", endpoint.id[:12])
        self._events.emit(Event("endpoint-leave", replace(network), endpoint, replace(sandbox)))
