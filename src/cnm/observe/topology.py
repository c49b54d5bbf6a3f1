"""The topology as records: the host, its networks, the sandboxes on them with their interfaces,
addresses and published ports, as the controller and the runtime know them now.

One snapshot is read under no lock of its own: each list the controller returns is a copy, so a
change made while the snapshot is taken shows up in the next one (the web page asks again on
every change). An endpoint whose network or sandbox went away in between is left out.

The same records travel as JSON (``to_dict``/``from_dict``: cnm's own shape, not Docker's), so
``cnm topology`` on the client side renders exactly what the daemon's page shows.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnm.controller.gateway import gateway_endpoint
from cnm.errors import NotFound

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.runtime.runtime import Runtime

BRIDGE_NAME = "com.docker.network.bridge.name"
ICC = "com.docker.network.bridge.enable_icc"


@dataclass(frozen=True)
class NetworkNode:
    id: str
    name: str
    driver: str
    device: str  # the bridge (or parent; an overlay's uplink) on the host, "" for host/null
    subnets: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)  # "10.10.0.1/24" on the network's bridge
    internal: bool = False
    icc: bool = True
    ipv6: bool = False


@dataclass(frozen=True)
class Interface:
    endpoint_id: str
    network_id: str
    ifname: str  # inside the sandbox
    host_interface: str = ""  # the bridge's end of its veth (an overlay's: in its namespace)
    ipv4: str = ""  # with prefix
    ipv6: str = ""
    mac: str = ""
    aliases: list[str] = field(default_factory=list)
    gateway4: bool = False  # this interface carries the sandbox's IPv4 default route
    gateway6: bool = False


@dataclass(frozen=True)
class Port:
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


@dataclass(frozen=True)
class SandboxNode:
    id: str
    name: str  # the container's name, or the sandbox's hostname
    containers: list[str] = field(default_factory=list)  # names of the containers inside
    key: str = ""
    host_network: bool = False
    interfaces: list[Interface] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)


@dataclass(frozen=True)
class Topology:
    host: str
    networks: list[NetworkNode] = field(default_factory=list)
    sandboxes: list[SandboxNode] = field(default_factory=list)

    def network(self, network_id: str) -> NetworkNode | None:
        return next((n for n in self.networks if n.id == network_id), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        return cls(
            host=data["host"],
            networks=[NetworkNode(**n) for n in data.get("networks", [])],
            sandboxes=[
                SandboxNode(
                    **{
                        **s,
                        "interfaces": [Interface(**i) for i in s.get("interfaces", [])],
                        "ports": [Port(**p) for p in s.get("ports", [])],
                    }
                )
                for s in data.get("sandboxes", [])
            ],
        )


def _network_node(controller: Controller, network_id: str) -> NetworkNode | None:
    try:
        network = controller.network(network_id)
        info = controller.network_info(network.id)
    except NotFound:
        return None
    pools = [*network.ipv4_pools, *network.ipv6_pools]
    return NetworkNode(
        id=network.id,
        name=network.name,
        driver=network.driver,
        device=info.get(BRIDGE_NAME, network.options.get("parent", "")),
        subnets=[p.subnet for p in pools],
        gateways=[p.gateway for p in pools if p.gateway],
        internal=network.internal,
        icc=network.options.get(ICC, "true").lower() not in ("false", "0"),
        ipv6=network.enable_ipv6,
    )


def build_topology(controller: Controller, runtime: Runtime | None = None) -> Topology:
    """A snapshot of everything the controller (and the runtime, for container names) holds."""
    names: dict[str, list[str]] = {}
    if runtime is not None:
        for container in runtime.containers():
            if container.sandbox_id:
                names.setdefault(container.sandbox_id, []).append(container.name)
    all_networks = controller.networks()
    network_names = {network.id: network.name for network in all_networks}
    networks = [
        node
        for network in all_networks
        if (node := _network_node(controller, network.id)) is not None
    ]
    known = {n.id for n in networks}
    sandboxes = []
    for sandbox in controller.sandboxes():
        endpoints = [
            e for e in controller.endpoints(sandbox_id=sandbox.id) if e.network_id in known
        ]
        gateway4 = gateway_endpoint(endpoints, 4, lambda i: network_names.get(i, ""))
        gateway6 = gateway_endpoint(endpoints, 6, lambda i: network_names.get(i, ""))
        interfaces = []
        for endpoint in sorted(endpoints, key=lambda e: e.join_order):
            try:
                host_interface = controller.endpoint_info(endpoint.id).get("host_interface", "")
            except NotFound:
                continue
            interfaces.append(
                Interface(
                    endpoint_id=endpoint.id,
                    network_id=endpoint.network_id,
                    ifname=endpoint.ifname or "",
                    host_interface=host_interface,
                    ipv4=endpoint.ipv4_address or "",
                    ipv6=endpoint.ipv6_address or "",
                    mac=endpoint.mac_address or "",
                    aliases=list(endpoint.aliases),
                    gateway4=gateway4 is not None and endpoint.id == gateway4.id,
                    gateway6=gateway6 is not None and endpoint.id == gateway6.id,
                )
            )
        try:
            published = controller.published(sandbox.id)
        except NotFound:
            continue
        inside = names.get(sandbox.id, [])
        sandboxes.append(
            SandboxNode(
                id=sandbox.id,
                name=inside[0] if inside else sandbox.hostname or sandbox.id[:12],
                containers=inside,
                key=sandbox.key,
                host_network=sandbox.use_host_network,
                interfaces=interfaces,
                ports=[
                    Port(
                        m.proto, str(m.host_ip), m.host_port, str(m.container_ip), m.container_port
                    )
                    for m in published
                ],
            )
        )
    sandboxes.sort(key=lambda s: s.name)
    return Topology(host=socket.gethostname(), networks=networks, sandboxes=sandboxes)
