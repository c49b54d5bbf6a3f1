"""The composition root: the default parts of a controller, built and handed to it.

The controller imports only contracts (the driver, IPAM, store and firewall APIs); this module
is where the implementations are chosen: the host namespace's netlink handle, the nftables
firewall, the host-port mapper, the bridge, host, null, macvlan, ipvlan (a refusal) and overlay
drivers, the default IPAM with Docker's pools, and, given a ``PluginConfig``, the finder that
turns other driver names into remote drivers and IPAM drivers (Docker's plugin discovery). The
daemon calls it, and so does in-process use (tests, benchmarks, the library); either can build
a ``Controller`` from other parts instead. Without a ``PluginConfig`` no plugin is ever looked
for. The overlay driver is always registered; without an advertise address (no cluster store)
it refuses to make networks, saying how to give one.

The host namespace is the calling thread's when this runs: build the controller inside the
namespace that plays the host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from cnm.controller import Controller, ControllerConfig
from cnm.controller.controller import Parts
from cnm.drivers.bridge import BridgeDriver
from cnm.drivers.host import HostDriver
from cnm.drivers.ipvlan import IpvlanDriver
from cnm.drivers.macvlan import MacvlanDriver
from cnm.drivers.null import NullDriver
from cnm.drivers.overlay import OverlayDriver
from cnm.drivers.remote import RemoteDriver
from cnm.firewall.nftables import NftablesFirewall
from cnm.ipam.cluster import ClusterIpam
from cnm.ipam.default import DefaultIpam, PoolSpec
from cnm.ipam.remote import RemoteIpam
from cnm.ipamapi import IPNetwork
from cnm.osl.links import HostNetwork
from cnm.osl.vxlan import MAX_VNI
from cnm.plugins.discovery import PluginConfig, PluginManager
from cnm.plugins.protocol import IPAM_DRIVER, NETWORK_DRIVER
from cnm.portmap.mapper import PortMapper
from cnm.store.api import GlobalStore, Store, StoreUnavailable


class PluginFinder:
    """Driver names the controller does not know, looked for among Docker's plugins."""

    def __init__(self, plugins: PluginManager, host: HostNetwork) -> None:
        self._plugins = plugins
        self._host = host

    def find_driver(self, name: str) -> RemoteDriver | None:
        plugin = self._plugins.get(name, NETWORK_DRIVER)
        return None if plugin is None else RemoteDriver.activate(name, plugin.client, self._host)

    def find_ipam(self, name: str) -> RemoteIpam | None:
        plugin = self._plugins.get(name, IPAM_DRIVER)
        return None if plugin is None else RemoteIpam.activate(name, plugin.client)

    def close(self) -> None:
        self._plugins.close()


def build_controller(
    config: ControllerConfig,
    store: Store,
    *,
    address_pools: Sequence[PoolSpec] | None = None,
    plugins: PluginConfig | None = None,
    cluster_store: GlobalStore | None = None,
    max_vni: int = MAX_VNI,
) -> Controller:
    """A controller with the default parts; ``address_pools`` replaces Docker's default
    pools for automatic subnets; ``plugins`` says where remote drivers are looked for. With a
    ``cluster_store`` (and ``config.cluster``) the host joins a cluster: global networks, the
    global address space in that store, and overlay networks whose tunnel endpoint is the
    cluster's advertise address, with VNIs up to ``max_vni``. Call ``start()`` on it before
    use."""
    host = HostNetwork()
    firewall = NftablesFirewall()
    port_mapper = PortMapper(host)
    cluster_ipam = None
    if cluster_store is not None:
        cluster_ipam = ClusterIpam(
            cluster_store,
            reserved_networks=lambda: reserved_networks(host, config.host_resolv_conf),
        )

    def local_reserved() -> list[IPNetwork]:
        reserved = reserved_networks(host, config.host_resolv_conf)
        if cluster_ipam is not None:
            with suppress(StoreUnavailable):  # out of reach: the controller's check remains
                reserved += cluster_ipam.pools()
        return reserved

    ipam = DefaultIpam(address_pools, local_reserved, global_space=cluster_ipam)
    bridge = BridgeDriver(host, firewall, port_mapper, config.default_host_ip)
    advertise = None
    if cluster_store is not None and config.cluster is not None:
        advertise = ipaddress.ip_address(config.cluster.advertise_address)
    overlay = OverlayDriver(
        host,
        firewall,
        port_mapper,
        namespace_dir=config.exec_root / "overlay-netns",
        advertise_address=advertise,
        max_vni=max_vni,
        default_host_ip=config.default_host_ip,
    )
    parts = Parts(
        host=host,
        firewall=firewall,
        port_mapper=port_mapper,
        drivers=[
            bridge,
            HostDriver(),
            NullDriver(),
            MacvlanDriver(host),
            IpvlanDriver(host),
            overlay,
        ],
        ipams=[ipam],
        cluster_store=cluster_store,
        finder=PluginFinder(PluginManager(plugins), host) if plugins is not None else None,
    )
    return Controller(config, store, parts)


@dataclass
class ServedDrivers:
    """cnm's bridge driver and default IPAM with what they stand on, for ``cnm plugin serve``
    (no controller: there, dockerd plays the controller)."""

    host: HostNetwork
    firewall: NftablesFirewall
    port_mapper: PortMapper
    bridge: BridgeDriver
    ipam: DefaultIpam

    def close(self) -> None:
        self.firewall.close()
        self.port_mapper.close()
        self.host.close()


def build_served_drivers(
    *,
    default_host_ip: str = "0.0.0.0",
    address_pools: Sequence[PoolSpec] | None = None,
    resolv_conf: Path = Path("/etc/resolv.conf"),
) -> ServedDrivers:
    """The bridge driver and default IPAM in the calling thread's namespace; start the
    firewall (``firewall.start()``) once the driver has restored its networks."""
    host = HostNetwork()
    firewall = NftablesFirewall()
    port_mapper = PortMapper(host)
    bridge = BridgeDriver(host, firewall, port_mapper, default_host_ip)
    bridge.configure({})
    ipam = DefaultIpam(address_pools, lambda: reserved_networks(host, resolv_conf))
    return ServedDrivers(host, firewall, port_mapper, bridge, ipam)


def reserved_networks(host: HostNetwork, resolv_conf: Path) -> list[IPNetwork]:
    """What automatic subnets must not overlap: the host's on-link networks and its
    nameservers (a container could no longer reach them)."""
    reserved = list(host.on_link_networks())
    try:
        text = resolv_conf.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0] == "nameserver":
            try:
                reserved.append(ipaddress.ip_network(fields[1].split("%")[0]))
            except ValueError:
                continue
    return reserved
