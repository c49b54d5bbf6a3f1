"""The bridge driver: a Linux bridge per network, a veth pair per endpoint.

* Bridge names: the default network's is given by the daemon (cnm0); a user network's is
  `com.docker.network.bridge.name` or `br-<first 12 hex of the network id>`, as Docker does.
* Every bridge this driver makes carries the alias (IFLA_IFALIAS) `cnm:net:<id>`, and every
  veth it makes is a port of such a bridge; after a restart, `restore` deletes the tagged
  bridges and their ports that no record names, so a crash between making a link and
  recording it leaves nothing behind.
* Host-side veth names are derived from the endpoint id (`veth` + 11 hex) so the kernel never
  searches for a free name and `restore` finds them again without bookkeeping.
* The gateway address lives on the bridge; containers on internal networks get no default
  route through it (the firewall issue also drops their forwarded traffic).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnm.driverapi import (
    Capability,
    EndpointInfo,
    EndpointSpec,
    JoinInfo,
    NetworkDriver,
    NetworkSpec,
    Scope,
)
from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.osl.links import HostNetwork
from cnm.osl.namespace import NetNamespace

OPT_PREFIX = "com.docker.network.bridge."
OPT_NAME = OPT_PREFIX + "name"
OPT_MTU = "com.docker.network.driver.mtu"
BOOLEAN_OPTIONS = (
    OPT_PREFIX + "enable_icc",
    OPT_PREFIX + "enable_ip_masquerade",
    OPT_PREFIX + "default_bridge",
    OPT_PREFIX + "inhibit_ipv4",
)
ADDRESS_OPTIONS = (OPT_PREFIX + "host_binding_ipv4", "com.docker.network.host_ipv4")
IFNAME = re.compile(r"^[^/\s:]{1,15}$")
NETWORK_ALIAS = "cnm:net:"


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true", "yes", "on"):
        return True
    if lowered in ("0", "f", "false", "no", "off"):
        return False
    raise InvalidParameter(f"invalid value {value!r} for option {key}: expected a boolean")


def parse_mtu(value: str) -> int:
    try:
        mtu = int(value)
    except ValueError:
        raise InvalidParameter(f"invalid MTU {value!r}: not a number") from None
    if not 68 <= mtu <= 65535:
        raise InvalidParameter(f"invalid MTU {mtu}: must be between 68 and 65535")
    return mtu


def host_veth_name(endpoint_id: str) -> str:
    return "veth" + endpoint_id[:11]


def random_mac() -> str:
    """A locally administered unicast MAC with Docker's 02:42 prefix."""
    return "02:42:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))


@dataclass
class _BridgeNetwork:
    spec: NetworkSpec
    bridge_name: str
    bridge_index: int
    mtu: int | None


@dataclass
class _BridgeEndpoint:
    network_id: str
    mac: str
    joined: bool = False


class BridgeDriver(NetworkDriver):
    name = "bridge"

    def __init__(self, host: HostNetwork) -> None:
        self.host = host
        self.default_mtu: int | None = None
        self._networks: dict[str, _BridgeNetwork] = {}
        self._endpoints: dict[str, _BridgeEndpoint] = {}
        self._lock = threading.Lock()

    def configure(self, config: Mapping[str, Any]) -> None:
        mtu = config.get("mtu")
        self.default_mtu = parse_mtu(str(mtu)) if mtu is not None else None

    def capabilities(self) -> Capability:
        return Capability(Scope.LOCAL, Scope.LOCAL)

    def validate_network_options(self, options: Mapping[str, str]) -> None:
        for key in BOOLEAN_OPTIONS:
            if key in options:
                _parse_bool(key, options[key])
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
        if OPT_NAME in options and not IFNAME.match(options[OPT_NAME]):
            raise InvalidParameter(
                f"invalid bridge name {options[OPT_NAME]!r}: 1-15 characters, no '/', ':' or spaces"
            )

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
        index = self.host.create_bridge(name, mtu=mtu, alias=NETWORK_ALIAS + spec.network_id)
        try:
            self._configure_bridge(index, spec)
        except Exception:
            self.host.links.delete(index)
            raise
        with self._lock:
            self._networks[spec.network_id] = _BridgeNetwork(spec, name, index, mtu)

    def _configure_bridge(self, index: int, spec: NetworkSpec) -> None:
        for data in (*spec.ipv4, *spec.ipv6):
            if data.gateway is not None:
                self.host.links.add_address(index, data.gateway)
        self.host.links.set_up(index)

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            network = self._networks.pop(network_id, None)
        if network is not None:
            self.host.delete_link_later(network.bridge_index)

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        self._network(spec.network_id)
        mac = spec.mac_address or random_mac()
        with self._lock:
            self._endpoints[spec.endpoint_id] = _BridgeEndpoint(spec.network_id, mac)
        return EndpointInfo(mac_address=mac)

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            self._endpoints.pop(endpoint_id, None)

    def join(
        self, network_id: str, endpoint_id: str, sandbox: NetNamespace | None, ifname: str
    ) -> JoinInfo:
        if sandbox is None:
            raise InvalidParameter("the bridge driver needs a sandbox namespace to join")
        network = self._network(network_id)
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id[:12]} not found on bridge {network.bridge_name}")
        self.host.create_veth(
            host_veth_name(endpoint_id),
            ifname,
            sandbox,
            master=network.bridge_index,
            mtu=network.mtu,
            peer_mac=endpoint.mac,
            ipv6=network.spec.enable_ipv6,
        )
        endpoint.joined = True
        spec = network.spec
        if spec.internal:
            return JoinInfo(mtu=network.mtu)
        gateway = spec.ipv4[0].gateway.ip if spec.ipv4 and spec.ipv4[0].gateway else None
        gateway_v6 = spec.ipv6[0].gateway.ip if spec.ipv6 and spec.ipv6[0].gateway else None
        return JoinInfo(gateway=gateway, gateway_v6=gateway_v6, mtu=network.mtu)

    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is not None:
            endpoint.joined = False
        if namespace_deleted:
            return
        index = self.host.links.index_of(host_veth_name(endpoint_id))
        if index is not None:
            self.host.links.delete(index)

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
        links = list(self.host.links.summaries())
        present: dict[str, int] = {}
        ours: set[int] = set()
        for link in links:
            alias = link.alias or ""
            if not alias.startswith(NETWORK_ALIAS):
                continue
            ours.add(link.index)
            network_id = alias[len(NETWORK_ALIAS) :]
            if network_id in wanted_networks:
                present[network_id] = link.index
        for link in links:
            if link.kind == "veth" and link.master in ours and link.name not in joined_veths:
                self.host.links.delete(link.index)
        for link in links:
            if link.index in ours and link.index not in present.values():
                self.host.links.delete(link.index)
        for network_id, spec in wanted_networks.items():
            index = present.get(network_id)
            if index is not None:
                self._networks[network_id] = _BridgeNetwork(
                    spec, self._bridge_name(spec), index, self._mtu(spec)
                )
                continue
            self.create_network(spec)
            bridge = self._networks[network_id].bridge_index
            for endpoint in endpoints:
                if endpoint.network_id == network_id and endpoint.joined:
                    veth = self.host.links.index_of(host_veth_name(endpoint.endpoint_id))
                    if veth is not None:
                        self.host.links.set_master(veth, bridge)
        for spec in endpoints:
            if spec.network_id not in self._networks:
                raise CnmError(f"endpoint {spec.endpoint_id[:12]} names an unknown network")
            self._endpoints[spec.endpoint_id] = _BridgeEndpoint(
                spec.network_id, spec.mac_address or random_mac(), joined=spec.joined
            )
