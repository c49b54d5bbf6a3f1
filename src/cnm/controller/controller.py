"""The ``Controller``: the public face of the model, composed of its tables.

It holds what no single table can: that a network with endpoints cannot be removed, that
callers get copies and never the tables' own records, and the start-up order (restore, then the
firewall writes the restored ruleset in one transaction, then the predefined networks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from cnm.controller.endpoints import Endpoints
from cnm.controller.files import SandboxFiles
from cnm.controller.joins import Joins
from cnm.controller.networks import Networks
from cnm.controller.ports import PublishedPorts
from cnm.controller.registry import DriverFinder, Registry
from cnm.controller.restore import adopt, replay_ipam, restore
from cnm.controller.sandboxes import Sandboxes
from cnm.driverapi import NetworkDriver
from cnm.errors import Forbidden, NotFound
from cnm.events import Event, EventBus
from cnm.firewall.api import Firewall
from cnm.ipamapi import IpamDriver
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
from cnm.store.api import Store


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
    finder: ClosableFinder | None = None


class Controller:
    def __init__(self, config: ControllerConfig, store: Store, parts: Parts) -> None:
        self.config = config
        self.store = store
        self.host = parts.host
        self.firewall = parts.firewall
        self._port_mapper = parts.port_mapper
        self._finder = parts.finder
        self.events = EventBus()
        self._registry = Registry(parts.finder)
        for driver in parts.drivers:
            self._registry.add_driver(driver)
        for ipam in parts.ipams:
            self._registry.add_ipam(ipam)
        files = SandboxFiles(config.exec_root / "sandboxes", config)
        self._networks = Networks(store, self._registry, self.events)
        self._endpoints = Endpoints(store, self._registry, self._networks)
        self._sandboxes = Sandboxes(store, self.host, files, self.netns_dir, self.events)
        self._ports = PublishedPorts(store, self._registry, self._networks)
        self._joins = Joins(
            store,
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
        restored = restore(self.store, self._registry, self.netns_dir, self._sandboxes.files)
        self._networks.load(restored.networks)
        self._endpoints.load(restored.endpoints.values())
        self._sandboxes.load(restored.sandboxes.values())
        self._ports.restore({s: self._endpoints.joined_to(s) for s in restored.sandboxes})
        self._registry.on_new_driver = self._adopt_driver
        self._registry.on_new_ipam = self._adopt_ipam
        self.firewall.start()
        self._networks.ensure_predefined(
            {
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": self.config.default_host_ip,
                "com.docker.network.bridge.name": self.config.default_bridge_name,
                "com.docker.network.driver.mtu": str(self.config.default_bridge_mtu or 1500),
            }
        )

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
        self.firewall.close()
        self._port_mapper.close()
        if self._finder is not None:
            self._finder.close()
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
            if self._endpoints.on_network(network.id):
                raise Forbidden(
                    f"error while removing network: network {network.name} id "
                    f"{network.id} has active endpoints"
                )
            self._networks.delete(network)
            self._endpoints.forget_network(network.id)

    def prune_networks(self, should_prune: Callable[[Network], bool]) -> list[Network]:
        pruned = []
        for network in self.networks():
            if network.predefined or not should_prune(network):
                continue
            try:
                self.delete_network(network.id)
            except (Forbidden, NotFound):
                continue
            pruned.append(network)
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
        return replace(self._sandboxes.create(options or SandboxOptions()))

    def delete_sandbox(self, sandbox_id: str) -> None:
        self._joins.delete_sandbox(sandbox_id)

    def join(self, endpoint_id: str, sandbox_id: str) -> Endpoint:
        return replace(self._joins.join(endpoint_id, sandbox_id))

    def leave(self, endpoint_id: str) -> None:
        self._joins.leave(endpoint_id)

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

    def publish(self, sandbox_id: str, requests: list[PortRequest]) -> list[PortMapping]:
        """Publish ports for the sandbox, replacing those it had, on its gateway endpoint; they
        are bound when it has one (the mappings returned), else when one joins. An error
        leaves the sandbox's earlier ports as they were."""
        return self._joins.publish(sandbox_id, requests)
