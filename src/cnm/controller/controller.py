"""The ``Controller``: the public face of the model, composed of its tables.

It holds what no single table can: that a network with endpoints cannot be removed, that
callers get copies and never the tables' own records, and the start-up order (restore, then the
firewall writes the restored ruleset in one transaction, then the predefined networks).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from cnm.controller.cluster import Cluster, ClusterConfig, ClusterStatus
from cnm.controller.endpoints import Endpoints, endpoint_name_prefix
from cnm.controller.files import SandboxFiles
from cnm.controller.gateway import order_key
from cnm.controller.ids import StoreIds
from cnm.controller.joins import Joins
from cnm.controller.networks import Networks
from cnm.controller.ports import PublishedPorts
from cnm.controller.registry import DriverFinder, Registry
from cnm.controller.restore import adopt, remove_unjoined_interfaces, replay_ipam, restore
from cnm.controller.sandboxes import Sandboxes
from cnm.controller.scopes import Stores
from cnm.driverapi import NetworkDriver, Scope
from cnm.errors import Forbidden, InvalidParameter, NotFound
from cnm.events import Event, EventBus
from cnm.firewall.api import Firewall
from cnm.ipamapi import IpamDriver, IPNetwork
from cnm.model import (
    Endpoint,
    EndpointOptions,
    Network,
    NetworkRequest,
    PortMapping,
    PortRequest,
    Sandbox,
    SandboxOptions,
)
from cnm.osl.links import HostNetwork
from cnm.store.api import GlobalStore, Store
from cnm.validate import HOST_GATEWAY


@dataclass
class ControllerConfig:
    """The daemon-wide network settings (``cnm.wiring`` also gives the default host address
    to the bridge driver it builds)."""

    exec_root: Path = Path("/run/cnm")
    default_bridge_name: str = "cnm0"
    default_bridge_mtu: int | None = None
    host_resolv_conf: Path = Path("/etc/resolv.conf")
    default_host_ip: str = "0.0.0.0"  # published ports' host address when none is given
    dns: list[str] = field(default_factory=list)  # the daemon's --dns: resolvers for sandboxes
    cluster: ClusterConfig | None = None  # with a cluster store: this host's membership
    # What --add-host NAME:host-gateway names; None: the default bridge's IPv4 gateway (Docker's
    # --host-gateway-ip default).
    host_gateway_ip: str | None = None


class Closable(Protocol):
    def close(self) -> None: ...


class ClosableFinder(DriverFinder, Closable, Protocol):
    """A driver finder the controller closes with itself (it holds plugin connections)."""


@dataclass
class Parts:
    """What the controller is given rather than builds: the host namespace's netlink handle,
    the firewall, the host-port mapper, the drivers, and a finder of drivers by name beyond
    those (remote plugins). The controller starts the firewall after restoring and closes all
    of them with itself."""

    host: HostNetwork
    firewall: Firewall
    port_mapper: Closable  # the host ports its drivers hold
    drivers: Sequence[NetworkDriver]
    ipams: Sequence[IpamDriver]
    cluster_store: GlobalStore | None = None  # the global scope (etcd), if the host has one
    finder: ClosableFinder | None = None


class Controller:
    def __init__(self, config: ControllerConfig, store: Store, parts: Parts) -> None:
        self.config = config
        self.store = store
        self.host = parts.host
        self.firewall = parts.firewall
        self._port_mapper = parts.port_mapper
        self._finder = parts.finder
        self.events: EventBus[Event] = EventBus()
        self._registry = Registry(parts.finder)
        for driver in parts.drivers:
            self._registry.add_driver(driver)
        for ipam in parts.ipams:
            self._registry.add_ipam(ipam)
        files = SandboxFiles(config.exec_root / "sandboxes", config)
        self._stores = Stores(store, parts.cluster_store)
        node = config.cluster
        self._networks = Networks(self._stores, self._registry, StoreIds(self._stores), self.events)
        self._endpoints = Endpoints(
            self._stores,
            self._registry,
            self._networks,
            node.node_id if node else "",
            node.advertise_address if node else "",
        )
        self._sandboxes = Sandboxes(store, self.host, files, self.netns_dir, self.events)
        self._ports = PublishedPorts(store, self._registry, self._networks)
        self._cluster: Cluster | None = None
        if parts.cluster_store is not None and node is not None:
            self._cluster = Cluster(
                parts.cluster_store,
                node,
                self._registry,
                self._networks,
                self._endpoints,
                self._sandboxes,
                self.events,
                self._local_subnets,
                self._after_cluster_restore,
            )
        self._joins = Joins(
            self._stores,
            self._registry,
            self._networks,
            self._endpoints,
            self._sandboxes,
            self._ports,
            self.events,
        )

    # ----------------------------------------------------------------- set-up

    @property
    def netns_dir(self) -> Path:
        return self.config.exec_root / "netns"

    @property
    def sandbox_dir(self) -> Path:
        return self.config.exec_root / "sandboxes"

    def register_driver(
        self, driver: NetworkDriver, config: dict[str, object] | None = None
    ) -> None:
        self._registry.add_driver(driver, config)

    def register_ipam(self, ipam: IpamDriver) -> None:
        self._registry.add_ipam(ipam)

    def driver_names(self) -> list[str]:
        return self._registry.driver_names()

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self.events.subscribe(listener)

    def start(self) -> None:
        """Restore from the store and reconcile the kernel, write the firewall's ruleset, and
        make the predefined networks."""
        self.netns_dir.mkdir(parents=True, exist_ok=True)
        self.sandbox_dir.mkdir(parents=True, exist_ok=True)
        restored = restore(
            self.store,
            self._registry,
            self.netns_dir,
            self._sandboxes.files,
            sweep_interfaces=self._cluster is None,
        )
        self._networks.load(restored.networks)
        self._endpoints.load(restored.endpoints.values())
        self._sandboxes.load(restored.sandboxes.values())
        self._ports.restore({s: self._endpoints.joined_to(s) for s in restored.sandboxes})
        self._registry.on_new_driver = self._adopt_driver
        self._registry.on_new_ipam = self._adopt_ipam
        self.firewall.start()
        self._ensure_predefined()
        if self._cluster is not None:
            self._cluster.start()

    def _ensure_predefined(self) -> None:
        self._networks.ensure_predefined(
            {
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": self.config.default_host_ip,
                "com.docker.network.bridge.name": self.config.default_bridge_name,
                "com.docker.network.driver.mtu": str(self.config.default_bridge_mtu or 1500),
            }
        )

    def _local_subnets(self) -> list[IPNetwork]:
        return [
            ipaddress.ip_network(pool.subnet)
            for network in self._networks.all()
            if network.scope != Scope.GLOBAL
            for pool in (*network.ipv4_pools, *network.ipv6_pools)
        ]

    def _after_cluster_restore(self, sandbox_ids: list[str]) -> None:
        """Once the global endpoints are back from the cluster's store: sweep every
        sandbox's unjoined interfaces (which needed them), and place the published ports of
        sandboxes with a global endpoint again (one of those may be their gateway)."""
        for sandbox in self._sandboxes.all():
            with self._sandboxes.lock(sandbox.id):
                joined = self._endpoints.joined_to(sandbox.id)
                remove_unjoined_interfaces(sandbox, {e.ifname for e in joined})
                if sandbox.id in sandbox_ids:
                    self._ports.place(sandbox.id, joined)

    def _adopt_driver(self, driver: NetworkDriver) -> None:
        """A driver found after start (a plugin back, or named for the first time) gets the
        records of its networks, as the drivers present at start got them."""
        keys = {s.id: s.key for s in self._sandboxes.all()}
        adopt(driver, self._networks.all(), self._endpoints.all(), keys)

    def _adopt_ipam(self, ipam: IpamDriver) -> None:
        if not ipam.capabilities().requires_request_replay:
            return
        for network in self._networks.all():
            if network.ipam_driver == ipam.name:
                replay_ipam(ipam, network, self._endpoints.on_network(network.id))

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
        self.firewall.close()
        self._port_mapper.close()
        if self._finder is not None:
            self._finder.close()
        for driver in self._registry.drivers():
            driver.close()
        self.host.close()

    # ----------------------------------------------------------------- lookups (copies)

    def networks(self) -> list[Network]:
        return [replace(n) for n in self._networks.all()]

    def network(self, ref: str) -> Network:
        return replace(self._networks.find(ref))

    def network_info(self, network_id: str) -> dict[str, str]:
        network = self._networks.find(network_id)
        return dict(self._registry.network_driver(network).network_info(network.id))

    def endpoint_info(self, endpoint_id: str) -> dict[str, str]:
        """The driver's operational data of an endpoint (the bridge's host-side veth name)."""
        endpoint = self._endpoints.find(endpoint_id)
        network = self._networks.find(endpoint.network_id)
        return dict(self._registry.driver(network.driver).endpoint_info(network.id, endpoint.id))

    def endpoints(
        self, network_id: str | None = None, sandbox_id: str | None = None
    ) -> list[Endpoint]:
        """Endpoints, optionally only those of one network and/or joined to one sandbox."""
        found: Iterable[Endpoint]
        if sandbox_id is not None:
            found = self._endpoints.joined_to(sandbox_id)
        elif network_id is not None:
            found = self._endpoints.on_network(network_id)
        else:
            found = self._endpoints.all()
        return [replace(e) for e in found if network_id is None or e.network_id == network_id]

    def endpoint(self, endpoint_id: str) -> Endpoint:
        return replace(self._endpoints.find(endpoint_id))

    def sandboxes(self) -> list[Sandbox]:
        return [replace(s) for s in self._sandboxes.all()]

    def sandbox(self, sandbox_id: str) -> Sandbox:
        return replace(self._sandboxes.find(sandbox_id))

    def sandbox_file(self, sandbox_id: str, name: str) -> Path:
        """Path of a sandbox's generated ``hosts``, ``resolv.conf`` or ``hostname`` file."""
        return self._sandboxes.files.path(sandbox_id, name)

    def cluster_status(self) -> ClusterStatus | None:
        """The cluster store, this host's address in it and whether it is reachable; None
        without a cluster store."""
        return self._cluster.status() if self._cluster is not None else None

    def peers(self) -> list[tuple[Network, Endpoint]]:
        """Endpoints on other hosts this host reaches now, with their networks."""
        return self._cluster.peers() if self._cluster is not None else []

    def network_hosts(self, network_id: str) -> list[tuple[str, str]]:
        """(name, address) of the hosts with endpoints on a global network."""
        return self._cluster.hosts_on(network_id) if self._cluster is not None else []

    def published(self, sandbox_id: str) -> list[PortMapping]:
        """The sandbox's ports as bound now."""
        return self._ports.published(sandbox_id)

    # ----------------------------------------------------------------- networks

    def create_network(self, request: NetworkRequest) -> Network:
        return replace(self._networks.create(request))

    def delete_network(self, ref: str) -> None:
        network = self._networks.find(ref)
        if network.predefined:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        with self._networks.create_delete_lock, self._networks.lock(network.id):
            if self._networks.get(network.id) is None:
                raise NotFound(f"network {ref} not found")
            if self._endpoints.on_network(network.id) or self._has_remote_endpoints(network):
                raise Forbidden(
                    f"error while removing network: network {network.name} id "
                    f"{network.id} has active endpoints"
                )
            self._networks.delete(network)
            self._endpoints.forget_network(network.id)

    def _has_remote_endpoints(self, network: Network) -> bool:
        if network.scope != Scope.GLOBAL:
            return False
        return bool(self._stores.of(network).list(endpoint_name_prefix(network.id)))

    def prune_networks(
        self,
        should_prune: Callable[[Network], bool],
        on_deleted: Callable[[Network], None] | None = None,
    ) -> list[Network]:
        """Delete every unused, non-predefined network ``should_prune`` accepts;
        ``on_deleted`` hears of each as it goes (progress for a long prune)."""
        pruned = []
        for network in self.networks():
            if network.predefined or not should_prune(network):
                continue
            try:
                self.delete_network(network.id)
            except (Forbidden, NotFound):
                continue
            pruned.append(network)
            if on_deleted is not None:
                on_deleted(network)
        return pruned

    # ----------------------------------------------------------------- endpoints

    def create_endpoint(self, network_ref: str, options: EndpointOptions | None = None) -> Endpoint:
        network = self._networks.find(network_ref)
        with self._networks.lock(network.id):
            return replace(self._endpoints.create(network, options or EndpointOptions()))

    def delete_endpoint(self, endpoint_id: str) -> None:
        endpoint = self._endpoints.find(endpoint_id)
        if endpoint.sandbox_id is not None:
            raise Forbidden(
                f"endpoint {endpoint.name} is joined to sandbox {endpoint.sandbox_id[:12]}; "
                "leave first"
            )
        network = self._networks.find(endpoint.network_id)
        with self._networks.lock(network.id):
            self._endpoints.delete(network, endpoint)

    # ----------------------------------------------------------------- sandboxes and joins

    def create_sandbox(self, options: SandboxOptions | None = None) -> Sandbox:
        options = options or SandboxOptions()
        extra_hosts = [self._host_gateway(entry) for entry in options.extra_hosts]
        return replace(self._sandboxes.create(replace(options, extra_hosts=extra_hosts)))

    def host_gateway_ip(self) -> str:
        """The address ``host-gateway`` stands for in --add-host: the daemon's
        --host-gateway-ip, else the default bridge's gateway."""
        if self.config.host_gateway_ip:
            return self.config.host_gateway_ip
        bridge = self._networks.find("bridge")
        gateways = [p.gateway for p in (*bridge.ipv4_pools, *bridge.ipv6_pools) if p.gateway]
        if not gateways:
            raise InvalidParameter("unable to derive the IP value for host-gateway")
        return gateways[0].split("/")[0]

    def _host_gateway(self, entry: str) -> str:
        name, _, address = entry.partition(":")
        return f"{name}:{self.host_gateway_ip()}" if address == HOST_GATEWAY else entry

    def delete_sandbox(self, sandbox_id: str) -> None:
        self._joins.delete_sandbox(sandbox_id)

    def join(self, endpoint_id: str, sandbox_id: str) -> Endpoint:
        return replace(self._joins.join(endpoint_id, sandbox_id))

    def leave(self, endpoint_id: str) -> None:
        self._joins.leave(endpoint_id)

    def join_order(
        self, requests: Sequence[tuple[str, EndpointOptions]]
    ) -> list[tuple[str, EndpointOptions]]:
        """``requests`` (network, endpoint options) in the order libnetwork keeps a sandbox's
        endpoints (``gateway.order_key``), the order a starting container joins them in: the
        first gets eth0. Whether a network will offer both gateways is read from its record."""

        def key(request: tuple[str, EndpointOptions]) -> tuple[bool, bool, int, str]:
            network = self._networks.find(request[0])
            offers = (
                not network.internal
                and self._registry.network_driver(network).capabilities().uses_addresses
            )
            dual = offers and bool(network.ipv4_pools and network.enable_ipv6)
            return order_key(network.internal, dual, request[1].gateway_priority, network.name)

        return sorted(requests, key=key)

    def connect(
        self, network_ref: str, sandbox_id: str, options: EndpointOptions | None = None
    ) -> Endpoint:
        """Create an endpoint on the network and join it to the sandbox, as one operation."""
        return replace(self._joins.connect(network_ref, sandbox_id, options or EndpointOptions()))

    def disconnect(self, network_ref: str, sandbox_id: str) -> None:
        """Leave the sandbox's endpoint on the network and delete it."""
        self._joins.disconnect(network_ref, sandbox_id)

    def rename_endpoints(self, sandbox_id: str, name: str) -> None:
        self._joins.rename(sandbox_id, name)

    def set_link_hosts(self, sandbox_id: str, entries: list[str]) -> None:
        """Replace the hosts lines a sandbox has for legacy links (``names:address``, written
        after its extra hosts), at once in its hosts file."""
        self._joins.set_link_hosts(sandbox_id, entries)

    def publish(self, sandbox_id: str, requests: list[PortRequest]) -> list[PortMapping]:
        """Publish ports for the sandbox, replacing those it had, on its gateway endpoint; they
        are bound when it has one (the mappings returned), else when one joins. An error
        leaves the sandbox's earlier ports as they were."""
        return self._joins.publish(sandbox_id, requests)
