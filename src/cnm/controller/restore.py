"""Start-up: the records are the truth, the kernel is made to match them.

Records whose kernel objects vanished are dropped (a sandbox whose namespace mount is gone, and
the endpoints of missing networks or sandboxes); kernel objects no record names are removed
(namespaces and file directories here, tagged bridges and veths by their drivers); IPAM
drivers that keep no state of their own (``requires_request_replay``, the default one) are
replayed every recorded pool and address; then each driver adopts its networks and endpoints,
recreating what is missing. Global-scope records live in the cluster's store
and are restored when the host connects to it (``cluster.py``). libnetwork's sandbox_store.go does the same job.

Drivers and IPAM drivers that are not built in (remote plugins) are looked for first, which
activates their plugins again. One that cannot be found or activated is logged and skipped:
its networks stay listed, and each use of them fails with a clear error until the plugin is
back (the registry finds it then, and the controller hands it its records; ``adopt``).

Inside each restored sandbox, an ``ethN`` link that no joined endpoint names is a join that
crashed before its record was committed, and is removed: the interface names are the
controller's (``joins.py``), so this needs no driver's help. A bridge veth's peer is gone by
then with its host end, but a macvlan child lives only inside the sandbox and nothing else
would find it; left there, it would take the name the next join wants. A namespace a sandbox
adopted from another runtime is not searched: its other links are that runtime's.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from cnm.controller.endpoints import endpoint_spec
from cnm.controller.files import SandboxFiles
from cnm.controller.networks import network_spec
from cnm.controller.registry import Registry
from cnm.controller.sandboxes import HOST_NAMESPACE_KEY
from cnm.driverapi import NetworkDriver, Scope
from cnm.errors import CnmError
from cnm.ipamapi import IpamDriver
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
            if not sandbox.adopted_from:
                names = {e.ifname for e in endpoints.values() if e.sandbox_id == sandbox.id}
                remove_unjoined_interfaces(sandbox, names)
    _find_drivers(registry, networks.values())
    for network in networks.values():
        ipam = registry.ipam_or_none(network.ipam_driver)
        if ipam is not None and ipam.capabilities().requires_request_replay:
            replay_ipam(
                ipam, network, [e for e in endpoints.values() if e.network_id == network.id]
            )
    sandbox_keys = {s.id: s.key for s in sandboxes.values()}
    for driver in registry.drivers():
        if driver.capabilities().data_scope == Scope.GLOBAL:
            continue  # their records are in the cluster's store: restored on connection
        adopt(driver, list(networks.values()), list(endpoints.values()), sandbox_keys)
    return Restored(networks, endpoints, sandboxes)


def _find_drivers(registry: Registry, networks: Collection[Network]) -> None:
    """Look every recorded driver up once (activating plugins); log those not there."""
    drivers = sorted({n.driver for n in networks})
    ipams = sorted({n.ipam_driver for n in networks if n.ipv4_pools or n.ipv6_pools})
    for kind, names, find in (
        ("network driver", drivers, registry.driver),
        ("IPAM driver", ipams, registry.ipam),
    ):
        for name in names:
            try:
                find(name)
            except CnmError as err:
                users = sorted(n.name for n in networks if name in (n.driver, n.ipam_driver))
                log.error(
                    "%s %s is unavailable; networks %s stay unusable until it is back: %s",
                    kind,
                    name,
                    ", ".join(users),
                    err,
                )


def adopt(
    driver: NetworkDriver,
    networks: list[Network],
    endpoints: list[Endpoint],
    sandbox_keys: Mapping[str, str],
) -> None:
    """Hand a driver the records of its networks and their endpoints (``restore``), with
    where each joined endpoint is (``sandbox_keys``: sandbox id to namespace path)."""
    mine = {n.id: n for n in networks if n.driver == driver.name}
    driver.restore(
        [network_spec(n) for n in mine.values()],
        [
            endpoint_spec(
                e,
                joined=e.sandbox_id is not None,
                sandbox_key=sandbox_keys.get(e.sandbox_id) if e.sandbox_id else None,
            )
            for e in endpoints
            if e.network_id in mine
        ],
    )


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


def replay_ipam(ipam: IpamDriver, network: Network, endpoints: list[Endpoint]) -> None:
    """Ask ``ipam`` again for every pool and address the network's records hold."""
    for pools, v6 in ((network.ipv4_pools, False), (network.ipv6_pools, True)):
        for pool in pools:
            ipam.request_pool(
                pool.address_space, pool.subnet, pool.ip_range, network.ipam_options or {}, v6
            )
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
