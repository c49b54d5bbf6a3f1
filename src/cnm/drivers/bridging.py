"""What the drivers built on a Linux bridge share: the bridge driver and the overlay driver.

Both put a network's gateway on a bridge in the host namespace, attach each endpoint by a veth
whose inner end is born in the sandbox, report the bridge and its endpoints to the firewall
seam (isolation, masquerade, anti-spoofing) and publish ports through the port mapper. The
code for those steps lives here once; each driver keeps its own state, names and lifecycle
(the bridge driver's bridge lives as long as its network, the overlay driver's only while the
host has a joined endpoint).

* Host-side veth names are derived from the endpoint id (``veth`` + 11 hex), so the kernel
  never searches for a free name and ``restore`` finds them without bookkeeping.
* Bridges are tagged with IFLA_IFALIAS ``<prefix><network id>``; each driver has its own
  prefix and, after a restart, deletes the tagged links no record names (a crash between
  making a link and recording it leaves nothing behind).
* A non-internal network turns on forwarding in the host namespace (IPv6 forwarding only for
  an IPv6 network: it stops the host accepting router advertisements) and route_localnet on
  its bridge, which the firewall's loopback publishing needs (and guards).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cnm import validate
from cnm.driverapi import EndpointSpec, JoinInfo, NetworkSpec
from cnm.errors import InvalidParameter, NotFound
from cnm.firewall.api import EndpointRules, Firewall, NetworkRules
from cnm.model import PortMapping, PortRequest
from cnm.osl.links import HostNetwork, LinkSummary, NamespaceNetwork, write_sysctl
from cnm.osl.namespace import NetNamespace
from cnm.portmap.mapper import PortMapper

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

OPT_MTU = "com.docker.network.driver.mtu"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"  # network_info's key for the bridge


def parse_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true", "yes", "on"):
        return True
    if lowered in ("0", "f", "false", "no", "off"):
        return False
    raise InvalidParameter(f"invalid value {value!r} for option {key}: expected a boolean")


def parse_mtu(value: str) -> int:
    return validate.mtu(value)


def host_veth_name(endpoint_id: str) -> str:
    return "veth" + endpoint_id[:11]


def endpoint_addresses(spec: EndpointSpec) -> tuple[IPAddress, ...]:
    return tuple(a.ip for a in (spec.address, spec.address_v6) if a is not None)


def join_info(spec: NetworkSpec, mtu: int | None) -> JoinInfo:
    """The gateways of a network on a bridge (none for an internal network)."""
    if spec.internal:
        return JoinInfo(mtu=mtu)
    gateway = spec.ipv4[0].gateway.ip if spec.ipv4 and spec.ipv4[0].gateway else None
    gateway_v6 = spec.ipv6[0].gateway.ip if spec.ipv6 and spec.ipv6[0].gateway else None
    return JoinInfo(gateway=gateway, gateway_v6=gateway_v6, mtu=mtu)


def make_bridge(
    host: NamespaceNetwork,
    name: str,
    spec: NetworkSpec,
    *,
    mtu: int | None,
    alias: str,
    mac: str | None,
) -> int:
    """A bridge tagged ``alias`` carrying the network's gateway addresses, up; on failure
    nothing is left."""
    index = host.create_bridge(name, mtu=mtu, alias=alias, mac=mac)
    try:
        for data in (*spec.ipv4, *spec.ipv6):
            if data.gateway is not None:
                host.links.add_address(index, data.gateway)
        host.links.set_up(index)
    except Exception:
        host.links.delete(index)
        raise
    return index


def report_network(host: HostNetwork, firewall: Firewall, rules: NetworkRules, ipv6: bool) -> None:
    """Tell the firewall of a network's bridge, after enabling the forwarding it needs."""
    if not rules.internal:
        with host.inside():
            write_sysctl("net.ipv4.ip_forward", "1")
            write_sysctl(f"net.ipv4.conf.{rules.bridge}.route_localnet", "1")
            if ipv6:
                write_sysctl("net.ipv6.conf.all.forwarding", "1")
    firewall.add_network(rules)


def network_rules(
    bridge: str,
    spec: NetworkSpec,
    *,
    icc: bool = True,
    masquerade: bool = True,
    snat_ipv4: ipaddress.IPv4Address | None = None,
) -> NetworkRules:
    return NetworkRules(
        bridge=bridge,
        subnets=tuple(data.pool for data in (*spec.ipv4, *spec.ipv6)),
        internal=spec.internal,
        icc=icc,
        masquerade=masquerade,
        snat_ipv4=snat_ipv4,
    )


@dataclass(frozen=True)
class Attachment:
    """What joins one endpoint to a bridge."""

    endpoint_id: str
    ifname: str  # inside the sandbox
    sandbox_key: str | None  # None: the peer stays in the host namespace, for another to move
    mac: str
    addresses: tuple[IPAddress, ...]
    mtu: int | None
    ipv6: bool


def attach(
    host: NamespaceNetwork,
    firewall: Firewall,
    bridge: str | None,
    bridge_index: int,
    what: Attachment,
) -> int:
    """Make the endpoint's veth (the peer born in the sandbox as ``ifname``, the near end a
    port of the bridge at ``bridge_index`` in ``host``) and report it to the firewall as an
    endpoint of the network it knows as ``bridge`` (with None, not at all: a network with no
    way out of its namespace); on failure nothing is left."""
    veth = host_veth_name(what.endpoint_id)
    sandbox = NetNamespace(what.sandbox_key) if what.sandbox_key is not None else None
    try:
        index = host.create_veth(
            veth,
            what.ifname,
            sandbox or host.namespace,
            master=bridge_index,
            mtu=what.mtu,
            peer_mac=what.mac,
            ipv6=what.ipv6,
        )
    finally:
        if sandbox is not None:
            sandbox.close()
    try:
        if bridge is not None:
            firewall.add_endpoint(EndpointRules(bridge, veth, what.addresses))
    except Exception:
        host.links.delete(index)
        raise
    return index


def detach(
    host: NamespaceNetwork, firewall: Firewall, endpoint_id: str, *, namespace_deleted: bool
) -> None:
    """Undo ``attach``. With the sandbox's namespace deleted the veth went with it."""
    firewall.remove_endpoint(host_veth_name(endpoint_id))
    if namespace_deleted:
        return
    index = host.links.index_of(host_veth_name(endpoint_id))
    if index is not None:
        host.links.delete(index)


def publish(
    ports: PortMapper,
    firewall: Firewall,
    bridge: str,
    addresses: Sequence[IPAddress],
    requests: Sequence[PortRequest],
    default_host_ip: str,
) -> list[PortMapping]:
    """Bind the host ports of ``requests`` and have the firewall lead them to the endpoint at
    ``addresses`` on ``bridge``; all or nothing."""
    ipv4 = next((a for a in addresses if a.version == 4), None)
    ipv6 = next((a for a in addresses if a.version == 6), None)
    mappings = ports.map(
        requests,
        ipv4=ipv4 if isinstance(ipv4, ipaddress.IPv4Address) else None,
        ipv6=ipv6 if isinstance(ipv6, ipaddress.IPv6Address) else None,
        default_host_ip=default_host_ip,
    )
    try:
        firewall.add_ports(bridge, mappings)
    except Exception:
        ports.unmap(mappings)
        raise
    return mappings


def unpublish(ports: PortMapper, firewall: Firewall, mappings: Sequence[PortMapping]) -> None:
    firewall.remove_ports(mappings)
    ports.unmap(mappings)


@dataclass
class BridgedEndpoint:
    """A driver's record of one endpoint on its bridge: what its join and its published ports
    need."""

    network_id: str
    mac: str
    addresses: tuple[IPAddress, ...] = ()
    joined: bool = False
    published: list[PortMapping] | None = None


def publish_endpoint(
    ports: PortMapper,
    firewall: Firewall,
    endpoint_id: str,
    endpoint: BridgedEndpoint | None,
    bridge: str,
    requests: Sequence[PortRequest],
    default_host_ip: str,
    *,
    joined_to: str,
    internal_network: str | None,
) -> list[PortMapping]:
    """Publish ``requests`` for a joined endpoint in place of what it published before (none
    on an internal network, named by ``internal_network``); ``joined_to`` names the network in
    the error for an endpoint that is not joined."""
    if endpoint is None or not endpoint.joined:
        raise NotFound(f"endpoint {endpoint_id[:12]} is not joined to {joined_to}")
    if internal_network is not None:
        raise InvalidParameter(f"ports cannot be published on internal network {internal_network}")
    revoke_endpoint(ports, firewall, endpoint)
    if not requests:
        return []
    endpoint.published = publish(
        ports, firewall, bridge, endpoint.addresses, requests, default_host_ip
    )
    return list(endpoint.published)


def revoke_endpoint(
    ports: PortMapper, firewall: Firewall, endpoint: BridgedEndpoint | None
) -> None:
    """Take back what the endpoint published, if anything."""
    if endpoint is None or not endpoint.published:
        return
    mappings, endpoint.published = endpoint.published, None
    unpublish(ports, firewall, mappings)


@dataclass
class TaggedLinks:
    """The links of the host namespace as ``restore`` sees them, for one tag prefix."""

    links: list[LinkSummary]
    tagged: dict[int, str]  # link index -> the network id of its tag

    @classmethod
    def scan(cls, host: HostNetwork, prefix: str) -> TaggedLinks:
        links = list(host.links.summaries())
        tagged = {
            link.index: (link.alias or "")[len(prefix) :]
            for link in links
            if (link.alias or "").startswith(prefix)
        }
        return cls(links, tagged)

    def stray_veths(self, joined: set[str]) -> list[LinkSummary]:
        """Veths on tagged bridges that no joined endpoint names."""
        return [
            link
            for link in self.links
            if link.kind == "veth" and link.master in self.tagged and link.name not in joined
        ]
