"""The bridge driver: a Linux bridge per network, a veth pair per endpoint.

* Bridge names: the default network's is given by the daemon (cnm0); a user network's is
  `com.docker.network.bridge.name` or `br-<first 12 hex of the network id>`, as Docker does.
* Every bridge this driver makes carries the alias (IFLA_IFALIAS) `cnm:net:<id>`, and every
  veth it makes is a port of such a bridge; after a restart, `restore` deletes the tagged
  bridges and their ports that no record names, so a crash between making a link and
  recording it leaves nothing behind.
* A container's MAC is derived from its IPv4 address (02:42 and the four bytes), as Docker
  20.10 does, unless the user gives one: an address handed out again comes with the same MAC,
  so the neighbours' cached entry for it stays right (the join also announces it).
* The gateway address lives on the bridge; containers on internal networks get no default
  route through it, and the firewall drops whatever they send beyond their bridge.
* Every network, joined endpoint and published port is reported to the firewall seam
  (``cnm.firewall.api``); host ports are bound by the port mapper. The steps it shares with the
  overlay driver (veths, firewall reports, forwarding sysctls, publishing) are in
  ``bridging.py``.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnm import validate
from cnm.driverapi import (
    Capability,
    EndpointInfo,
    EndpointSpec,
    JoinInfo,
    NetworkDriver,
    NetworkSpec,
    Scope,
    mac_from_ip,
    random_mac,
)
from cnm.drivers.bridging import (
    OPT_MTU,
    Attachment,
    BridgedEndpoint,
    TaggedLinks,
    attach,
    detach,
    endpoint_addresses,
    host_veth_name,
    join_info,
    make_bridge,
    network_rules,
    parse_bool,
    parse_mtu,
    publish_endpoint,
    report_network,
    revoke_endpoint,
)
from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.firewall.api import EndpointRules, Firewall
from cnm.model import PortMapping, PortRequest
from cnm.osl.links import HostNetwork
from cnm.portmap.mapper import PortMapper

OPT_PREFIX = "com.docker.network.bridge."
OPT_NAME = OPT_PREFIX + "name"
OPT_ICC = OPT_PREFIX + "enable_icc"
OPT_MASQUERADE = OPT_PREFIX + "enable_ip_masquerade"
BOOLEAN_OPTIONS = (
    OPT_ICC,
    OPT_MASQUERADE,
    OPT_PREFIX + "default_bridge",
    OPT_PREFIX + "inhibit_ipv4",
)
OPT_HOST_BINDING = OPT_PREFIX + "host_binding_ipv4"
OPT_HOST_IPV4 = "com.docker.network.host_ipv4"
ADDRESS_OPTIONS = (OPT_HOST_BINDING, OPT_HOST_IPV4)
NETWORK_ALIAS = "cnm:net:"


@dataclass
class _BridgeNetwork:
    spec: NetworkSpec
    bridge_name: str
    bridge_index: int
    mtu: int | None


class BridgeDriver(NetworkDriver):
    name = "bridge"

    def __init__(
        self,
        host: HostNetwork,
        firewall: Firewall,
        ports: PortMapper,
        default_host_ip: str = "0.0.0.0",
    ) -> None:
        self.host = host
        self.firewall = firewall
        self.ports = ports
        self.default_host_ip = default_host_ip
        self.default_mtu: int | None = None
        self._networks: dict[str, _BridgeNetwork] = {}
        self._endpoints: dict[str, BridgedEndpoint] = {}
        self._lock = threading.Lock()

    def configure(self, config: Mapping[str, Any]) -> None:
        mtu = config.get("mtu")
        self.default_mtu = parse_mtu(str(mtu)) if mtu is not None else None

    def capabilities(self) -> Capability:
        return Capability(Scope.LOCAL, Scope.LOCAL)

    def validate_network_options(self, options: Mapping[str, str]) -> None:
        for key in BOOLEAN_OPTIONS:
            if key in options:
                parse_bool(key, options[key])
        for key in ADDRESS_OPTIONS:
            if key in options:
                try:
                    ipaddress.ip_address(options[key])
                except ValueError:
                    raise InvalidParameter(
                        f"invalid value {options[key]!r} for option {key}: not an IP address"
                    ) from None
        if OPT_MTU in options:
            parse_mtu(options[OPT_MTU])
        if OPT_NAME in options:
            validate.interface_name(options[OPT_NAME], "bridge name")

    def _bridge_name(self, spec: NetworkSpec) -> str:
        return spec.options.get(OPT_NAME) or f"br-{spec.network_id[:12]}"

    def _mtu(self, spec: NetworkSpec) -> int | None:
        if OPT_MTU in spec.options:
            return parse_mtu(spec.options[OPT_MTU])
        return self.default_mtu

    def _network(self, network_id: str) -> _BridgeNetwork:
        try:
            return self._networks[network_id]
        except KeyError:
            raise NotFound(f"bridge network {network_id[:12]} not found") from None

    def create_network(self, spec: NetworkSpec) -> None:
        name = self._bridge_name(spec)
        with self._lock:
            if any(n.bridge_name == name for n in self._networks.values()):
                raise Conflict(f"bridge name {name} is already used by another network")
        if self.host.links.index_of(name) is not None:
            self.host.drain_deletions()  # it may be a deleted network's bridge on its way out
            if self.host.links.index_of(name) is not None:
                raise Conflict(f"a link named {name} already exists on the host")
        mtu = self._mtu(spec)
        alias = NETWORK_ALIAS + spec.network_id
        index = make_bridge(self.host, name, spec, mtu=mtu, alias=alias, mac=None)
        try:
            self._add_to_firewall(name, spec)
        except Exception:
            self.host.links.delete(index)
            raise
        with self._lock:
            self._networks[spec.network_id] = _BridgeNetwork(spec, name, index, mtu)

    def _add_to_firewall(self, name: str, spec: NetworkSpec) -> None:
        snat = spec.options.get(OPT_HOST_IPV4)
        snat_ip = ipaddress.ip_address(snat) if snat else None
        rules = network_rules(
            name,
            spec,
            icc=parse_bool(OPT_ICC, spec.options.get(OPT_ICC, "true")),
            masquerade=parse_bool(OPT_MASQUERADE, spec.options.get(OPT_MASQUERADE, "true")),
            snat_ipv4=snat_ip if isinstance(snat_ip, ipaddress.IPv4Address) else None,
        )
        report_network(self.host, self.firewall, rules, spec.enable_ipv6)

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            network = self._networks.pop(network_id, None)
        if network is not None:
            self.firewall.remove_network(network.bridge_name)
            self.host.delete_link_later(network.bridge_index)

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        self._network(spec.network_id)
        mac = spec.mac_address or (mac_from_ip(spec.address.ip) if spec.address else random_mac())
        with self._lock:
            self._endpoints[spec.endpoint_id] = BridgedEndpoint(
                spec.network_id, mac, addresses=endpoint_addresses(spec)
            )
        return EndpointInfo(mac_address=mac)

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            self._endpoints.pop(endpoint_id, None)

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None, ifname: str
    ) -> JoinInfo:
        network = self._network(network_id)
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id[:12]} not found on bridge {network.bridge_name}")
        # No sandbox: the peer is made in the host namespace, for someone else to move (a
        # dockerd using this driver through ``cnm plugin serve``).
        attachment = Attachment(
            endpoint_id,
            ifname,
            sandbox_key,
            endpoint.mac,
            endpoint.addresses,
            network.mtu,
            network.spec.enable_ipv6,
        )
        attach(self.host, self.firewall, network.bridge_name, network.bridge_index, attachment)
        endpoint.joined = True
        return join_info(network.spec, network.mtu)

    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is not None:
            endpoint.joined = False
        detach(self.host, self.firewall, endpoint_id, namespace_deleted=namespace_deleted)

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, ports: Sequence[PortRequest]
    ) -> list[PortMapping]:
        network = self._network(network_id)
        return publish_endpoint(
            self.ports,
            self.firewall,
            endpoint_id,
            self._endpoints.get(endpoint_id),
            network.bridge_name,
            ports,
            network.spec.options.get(OPT_HOST_BINDING) or self.default_host_ip,
            joined_to=network.bridge_name,
            internal_network=network.spec.name if network.spec.internal else None,
        )

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:
        revoke_endpoint(self.ports, self.firewall, self._endpoints.get(endpoint_id))

    def network_info(self, network_id: str) -> Mapping[str, str]:
        network = self._networks.get(network_id)
        return {OPT_NAME: network.bridge_name} if network else {}

    def endpoint_info(self, network_id: str, endpoint_id: str) -> Mapping[str, str]:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None or not endpoint.joined:
            return {}
        return {"host_interface": host_veth_name(endpoint_id)}

    def restore(self, networks: list[NetworkSpec], endpoints: list[EndpointSpec]) -> None:
        wanted_networks = {spec.network_id: spec for spec in networks}
        joined_veths = {host_veth_name(s.endpoint_id) for s in endpoints if s.joined}
        scan = TaggedLinks.scan(self.host, NETWORK_ALIAS)
        present = {
            network_id: index
            for index, network_id in scan.tagged.items()
            if network_id in wanted_networks
        }
        for link in scan.stray_veths(joined_veths):
            self.host.links.delete(link.index)
        for tagged in scan.tagged:
            if tagged not in present.values():
                self.host.links.delete(tagged)
        for network_id, spec in wanted_networks.items():
            index = present.get(network_id)
            if index is not None:
                self._networks[network_id] = _BridgeNetwork(
                    spec, self._bridge_name(spec), index, self._mtu(spec)
                )
                self._add_to_firewall(self._bridge_name(spec), spec)
                continue
            self.create_network(spec)
            bridge_index = self._networks[network_id].bridge_index
            for endpoint in endpoints:
                if endpoint.network_id == network_id and endpoint.joined:
                    veth = self.host.links.index_of(host_veth_name(endpoint.endpoint_id))
                    if veth is not None:
                        self.host.links.set_master(veth, bridge_index)
        for endpoint in endpoints:
            if endpoint.network_id not in self._networks:
                raise CnmError(f"endpoint {endpoint.endpoint_id[:12]} names an unknown network")
            self._endpoints[endpoint.endpoint_id] = BridgedEndpoint(
                endpoint.network_id,
                endpoint.mac_address or random_mac(),
                joined=endpoint.joined,
                addresses=endpoint_addresses(endpoint),
            )
            if endpoint.joined:
                bridge_name = self._networks[endpoint.network_id].bridge_name
                self.firewall.add_endpoint(
                    EndpointRules(
                        bridge_name,
                        host_veth_name(endpoint.endpoint_id),
                        endpoint_addresses(endpoint),
                    )
                )
