"""The composition root: the default parts of a controller, built and handed to it.

The controller imports only contracts (the driver, IPAM, store and firewall APIs); this module
is where the implementations are chosen: the host namespace's netlink handle, the nftables
firewall, the host-port mapper, the bridge, host, null, macvlan and ipvlan (a refusal)
drivers, and the default IPAM with Docker's pools. The daemon calls it, and so does in-process
use (tests, benchmarks, the library); either can build a ``Controller`` from other parts
instead.

The host namespace is the calling thread's when this runs: build the controller inside the
namespace that plays the host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from cnm.controller import Controller, ControllerConfig
from cnm.controller.controller import Parts
from cnm.drivers.bridge import BridgeDriver
from cnm.drivers.host import HostDriver
from cnm.drivers.ipvlan import IpvlanDriver
from cnm.drivers.macvlan import MacvlanDriver
from cnm.drivers.null import NullDriver
from cnm.firewall.nftables import NftablesFirewall
from cnm.ipam.cluster import ClusterIpam
from cnm.ipam.default import DefaultIpam, PoolSpec
from cnm.ipamapi import IPNetwork
from cnm.osl.links import HostNetwork
from cnm.portmap.mapper import PortMapper
from cnm.store.api import GlobalStore, Store, StoreUnavailable


def build_controller(
    config: ControllerConfig,
    store: Store,
    *,
    address_pools: Sequence[PoolSpec] | None = None,
    cluster_store: GlobalStore | None = None,
    vni_range: tuple[int, int] = (4096, 16777215),
) -> Controller:
    """A controller with the default parts; ``address_pools`` replaces Docker's default
    pools for automatic subnets. With a ``cluster_store`` (and ``config.cluster``) the host
    joins a cluster: global networks, and the global address space in that store; overlay
    VNIs are taken from ``vni_range``. Call ``start()`` on it before use."""
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
    parts = Parts(
        host=host,
        firewall=firewall,
        port_mapper=port_mapper,
        drivers=[bridge, HostDriver(), NullDriver(), MacvlanDriver(host), IpvlanDriver(host)],
        ipams=[ipam],
        cluster_store=cluster_store,
    )
    return Controller(config, store, parts)


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
