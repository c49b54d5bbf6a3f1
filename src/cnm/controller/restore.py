"""Start-up: the records are the truth, the kernel is made to match them.

Records whose kernel objects vanished are dropped (a sandbox whose namespace mount is gone, and
the endpoints of missing networks or sandboxes); kernel objects no record names are removed
(namespaces and file directories here, tagged bridges and veths by their drivers); IPAM is
replayed with every recorded pool and address (it keeps no state of its own); then each driver
adopts its networks and endpoints, recreating what is missing. Global-scope records live in
the cluster's store and are restored when the host connects to it (``cluster.py``). libnetwork's sandbox_store.go
does the same job.

Inside each restored sandbox, an ``ethN`` link that no joined endpoint names is a join that
crashed before its record was committed, and is removed: the interface names are the
controller's (``joins.py``), so this needs no driver's help. A bridge veth's peer is gone by
then with its host end, but a macvlan child lives only inside the sandbox and nothing else
would find it; left there, it would take the name the next join wants.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from cnm.controller.endpoints import endpoint_spec
from cnm.controller.files import SandboxFiles
from cnm.controller.networks import network_spec
from cnm.controller.registry import Registry
from cnm.controller.sandboxes import HOST_NAMESPACE_KEY
from cnm.driverapi import Scope
from cnm.ipamapi import LOCAL_ADDRESS_SPACE
from cnm.model import Endpoint, Network, Sandbox
from cnm.osl.links import sandbox_network
from cnm.osl.namespace import delete_netns, is_netns_mount
from cnm.store.api import Delete, Store

log = logging.getLogger(__name__)

ENDPOINT_IFNAME = re.compile(r"^eth\d+$")


@dataclass
class Restored:
    networks: dict[str, Network]
    endpoints: dict[str, Endpoint]
    sandboxes: dict[str, Sandbox]


def restore(
    store: Store,
    registry: Registry,
    netns_dir: Path,
    files: SandboxFiles,
    *,
    sweep_interfaces: bool = True,
) -> Restored:
    """Load the records, drop those whose kernel objects vanished, remove orphaned kernel
    objects, replay IPAM allocations and let each driver reconcile its own objects. Without
    ``sweep_interfaces`` the sandboxes' unjoined interfaces are left for later: a host in a
    cluster knows its global endpoints only once it reaches the cluster's store."""
    networks = {n.id: n for n in map(Network.from_json, _values(store, "network/"))}
    endpoints = {e.id: e for e in map(Endpoint.from_json, _values(store, "endpoint/"))}
    sandboxes = {s.id: s for s in map(Sandbox.from_json, _values(store, "sandbox/"))}
    stale: list[Delete] = []
    for sandbox in list(sandboxes.values()):
        if not sandbox.use_host_network and not is_netns_mount(sandbox.key):
            log.warning("sandbox %s lost its namespace; dropping it", sandbox.id[:12])
            stale.append(Delete(f"sandbox/{sandbox.id}"))
            del sandboxes[sandbox.id]
    for endpoint in list(endpoints.values()):
        orphaned = endpoint.network_id not in networks or (
            endpoint.sandbox_id is not None and endpoint.sandbox_id not in sandboxes
        )
        if orphaned:
            stale.append(Delete(f"endpoint/{endpoint.id}"))
            del endpoints[endpoint.id]
    if stale:
        store.commit(stale)
    for path in netns_dir.iterdir():
        if path.name not in sandboxes and path.name != HOST_NAMESPACE_KEY:
            log.warning("removing orphaned namespace %s", path)
            delete_netns(path)
    files.remove_unknown(set(sandboxes))
    if sweep_interfaces:
        for sandbox in sandboxes.values():
            names = {e.ifname for e in endpoints.values() if e.sandbox_id == sandbox.id}
            remove_unjoined_interfaces(sandbox, names)
    for network in networks.values():
        _replay_ipam(
            registry, network, [e for e in endpoints.values() if e.network_id == network.id]
        )
    for driver in registry.drivers():
        if driver.capabilities().data_scope == Scope.GLOBAL:
            continue  # their records are in the cluster's store: restored on connection
        driver.restore(
            [network_spec(n) for n in networks.values() if n.driver == driver.name],
            [
                endpoint_spec(
                    e,
                    joined=e.sandbox_id is not None,
                    sandbox_key=sandboxes[e.sandbox_id].key if e.sandbox_id else None,
                )
                for e in endpoints.values()
                if networks[e.network_id].driver == driver.name
            ],
        )
    return Restored(networks, endpoints, sandboxes)


def remove_unjoined_interfaces(sandbox: Sandbox, joined: set[str | None]) -> None:
    """Remove the ``ethN`` links no joined endpoint names: what a join that crashed before
    its record left behind (the next join would fail on the name)."""
    if sandbox.use_host_network:
        return
    with sandbox_network(sandbox.key) as sandbox_net:
        for link in list(sandbox_net.links.summaries()):
            if ENDPOINT_IFNAME.match(link.name) and link.name not in joined:
                log.warning(
                    "removing %s from sandbox %s: no joined endpoint names it",
                    link.name,
                    sandbox.id[:12],
                )
                sandbox_net.links.delete(link.index)


def _values(store: Store, prefix: str) -> list[bytes]:
    return [entry.value for entry in store.list(prefix)]


def _replay_ipam(registry: Registry, network: Network, endpoints: list[Endpoint]) -> None:
    ipam = registry.ipam_or_none(network.ipam_driver)
    if ipam is None:
        log.error("network %s uses unknown IPAM driver %s", network.name, network.ipam_driver)
        return
    for pools, v6 in ((network.ipv4_pools, False), (network.ipv6_pools, True)):
        for pool in pools:
            ipam.request_pool(LOCAL_ADDRESS_SPACE, pool.subnet, pool.ip_range, {}, v6)
            if pool.gateway:
                ipam.request_address(pool.pool_id, ipaddress.ip_interface(pool.gateway).ip, {})
            for address in pool.aux_addresses.values():
                ipam.request_address(pool.pool_id, ipaddress.ip_address(address), {})
    for endpoint in endpoints:
        for pools, text in (
            (network.ipv4_pools, endpoint.ipv4_address),
            (network.ipv6_pools, endpoint.ipv6_address),
        ):
            if not text:
                continue
            interface = ipaddress.ip_interface(text)
            for pool in pools:
                if interface.ip in ipaddress.ip_network(pool.subnet):
                    ipam.request_address(pool.pool_id, interface.ip, {})
