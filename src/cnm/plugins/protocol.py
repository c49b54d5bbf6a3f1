"""The JSON of libnetwork's remote network driver and IPAM APIs, written and read both ways.

The shapes are libnetwork's (``docs/remote.md``, ``docs/ipam.md``, ``drivers/remote/api``,
``ipams/remote/api``) as Docker 20.10 sends them, so that cnm talks to existing plugins and a
real dockerd talks to cnm's server:

* CreateNetwork ``Options``: ``com.docker.network.enable_ipv6`` (bool),
  ``com.docker.network.generic`` (the driver options, ``-o``), and
  ``com.docker.network.internal: true`` for internal networks. ``IPv4Data``/``IPv6Data``:
  ``[{"AddressSpace", "Pool": CIDR, "Gateway": address/prefix, "AuxAddresses": {name:
  address/prefix}}]`` (Go's ``IPAMData.MarshalJSON``; keys absent when empty).
* CreateEndpoint sends ``Interface`` with the addresses IPAM gave and the MAC asked for; the
  plugin answers an ``Interface`` only with what it chose itself (libnetwork refuses a value
  that replaces one it sent).
* Join answers ``InterfaceName: {SrcName, DstPrefix}`` (a link the plugin made in the host
  namespace, to be moved into the sandbox and named ``<DstPrefix><n>``), ``Gateway``,
  ``GatewayIPv6``, ``StaticRoutes: [{Destination, RouteType: 0 (via NextHop) | 1 (on-link),
  NextHop}]`` and ``DisableGatewayService``.
* Published ports (ProgramExternalConnectivity options, EndpointOperInfo values) are Go's
  ``types.PortBinding``: ``{"Proto": 6|17|132, "IP", "Port", "HostIP", "HostPort",
  "HostPortEnd"}`` under ``com.docker.network.portmap``, and ``{"Proto", "Port"}`` under
  ``com.docker.network.endpoint.exposedports``.
* A failure is a non-200 status with ``{"Err": ...}`` (``cnm.plugins.client``), or a 200 answer
  whose ``Err`` (network driver) or ``Error`` (IPAM: libnetwork's IPAM API names it so) is set.

Readers raise ``CnmError`` on a malformed plugin answer (the plugin's fault, a 500) and
``InvalidParameter`` on a malformed request to cnm's server.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnm import validate
from cnm.driverapi import (
    EndpointInfo,
    EndpointSpec,
    IpamData,
    JoinInfo,
    NetworkSpec,
    StaticRoute,
)
from cnm.errors import CnmError, InvalidParameter
from cnm.ipamapi import IPInterface, IPNetwork, PoolGrant
from cnm.model import PortMapping, PortRequest
from cnm.plugins.client import PluginRefused

NETWORK_DRIVER = "NetworkDriver"
IPAM_DRIVER = "IpamDriver"
NETWORK_ERROR_KEY = "Err"
IPAM_ERROR_KEY = "Error"

OPT_ENABLE_IPV6 = "com.docker.network.enable_ipv6"
OPT_GENERIC = "com.docker.network.generic"
OPT_INTERNAL = "com.docker.network.internal"
OPT_PORT_MAP = "com.docker.network.portmap"
OPT_EXPOSED_PORTS = "com.docker.network.endpoint.exposedports"
POOL_DATA_GATEWAY = "com.docker.network.gateway"

ROUTE_NEXT_HOP = 0
ROUTE_CONNECTED = 1
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOL_NUMBERS.items()}


class Reader:
    """One JSON object read with type checks; ``what`` names it in errors."""

    def __init__(self, data: object, what: str, error: type[CnmError]) -> None:
        if not isinstance(data, dict):
            raise error(f"{what} must be a JSON object")
        self.data: dict[str, Any] = data
        self.what = what
        self.error = error

    def _fail(self, key: str, expected: str) -> CnmError:
        return self.error(f"{self.what}: {key} must be {expected}, not {self.data[key]!r}")

    def string(self, key: str) -> str:
        value = self.data.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def boolean(self, key: str) -> bool:
        value = self.data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._fail(key, "a boolean")
        return value

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "an integer")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, "an object")
        return value

    def strings(self, key: str) -> dict[str, str]:
        value = self.mapping(key)
        if not all(isinstance(item, str) for item in value.values()):
            raise self._fail(key, "an object of strings")
        return dict(value)

    def object(self, key: str) -> Reader | None:
        value = self.data.get(key)
        return None if value is None else Reader(value, f"{self.what}.{key}", self.error)

    def objects(self, key: str) -> list[Reader]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(key, "an array")
        return [Reader(item, f"{self.what}.{key}[{i}]", self.error) for i, item in enumerate(value)]

    def interface(self, key: str) -> IPInterface | None:
        """An ``address/prefix`` value ("" or absent: None)."""
        text = self.string(key)
        if not text:
            return None
        try:
            return ipaddress.ip_interface(text)
        except ValueError:
            raise self._fail(key, "an address in CIDR notation") from None

    def network(self, key: str) -> IPNetwork | None:
        interface = self.interface(key)
        return None if interface is None else interface.network

    def address(self, key: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        text = self.string(key)
        if not text:
            return None
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise self._fail(key, "an IP address") from None

    def mac(self, key: str) -> str | None:
        text = self.string(key)
        if not text:
            return None
        try:
            return validate.mac_address(text)
        except InvalidParameter:
            raise self._fail(key, "a unicast MAC address") from None


def check_error(answer: dict[str, Any], key: str) -> None:
    """Raise the failure a 200 answer reports in its ``key`` field (Err or Error)."""
    message = answer.get(key)
    if message:
        raise PluginRefused(f"remote: {message}")


# ----------------------------------------------------------------------------- network driver


def _ipam_data_json(data: IpamData) -> dict[str, Any]:
    out: dict[str, Any] = {"AddressSpace": data.address_space, "Pool": str(data.pool)}
    if data.gateway is not None:
        out["Gateway"] = str(data.gateway)
    if data.aux_addresses:
        prefix = data.pool.prefixlen
        out["AuxAddresses"] = {name: f"{ip}/{prefix}" for name, ip in data.aux_addresses.items()}
    return out


def _parse_ipam_data(reader: Reader, version: int) -> IpamData:
    pool = reader.network("Pool")
    if pool is None or pool.version != version:
        raise reader.error(f"{reader.what}: Pool must be an IPv{version} network")
    gateway = reader.interface("Gateway")
    aux_reader = Reader(reader.strings("AuxAddresses"), f"{reader.what}.AuxAddresses", reader.error)
    aux = {}
    for name in aux_reader.data:
        address = aux_reader.interface(name)
        if address is None:
            raise reader.error(f"{aux_reader.what}: {name} has no address")
        aux[name] = address.ip
    return IpamData(
        pool=pool, gateway=gateway, aux_addresses=aux, address_space=reader.string("AddressSpace")
    )


def create_network_request(spec: NetworkSpec) -> dict[str, Any]:
    options: dict[str, Any] = {OPT_ENABLE_IPV6: spec.enable_ipv6, OPT_GENERIC: dict(spec.options)}
    if spec.internal:
        options[OPT_INTERNAL] = True
    return {
        "NetworkID": spec.network_id,
        "Options": options,
        "IPv4Data": [_ipam_data_json(d) for d in spec.ipv4],
        "IPv6Data": [_ipam_data_json(d) for d in spec.ipv6],
    }


def parse_create_network(body: object) -> NetworkSpec:
    reader = Reader(body, "CreateNetwork", InvalidParameter)
    network_id = reader.string("NetworkID")
    if not network_id:
        raise InvalidParameter("CreateNetwork: NetworkID is required")
    options = Reader(reader.mapping("Options"), "CreateNetwork.Options", InvalidParameter)
    return NetworkSpec(
        network_id=network_id,
        name=network_id[:12],
        options=options.strings(OPT_GENERIC),
        internal=options.boolean(OPT_INTERNAL),
        enable_ipv6=options.boolean(OPT_ENABLE_IPV6),
        ipv4=tuple(_parse_ipam_data(r, 4) for r in reader.objects("IPv4Data")),
        ipv6=tuple(_parse_ipam_data(r, 6) for r in reader.objects("IPv6Data")),
    )


def network_request(network_id: str, endpoint_id: str | None = None) -> dict[str, Any]:
    """The body of DeleteNetwork (no endpoint), DeleteEndpoint, EndpointOperInfo and Leave."""
    body = {"NetworkID": network_id}
    if endpoint_id is not None:
        body["EndpointID"] = endpoint_id
    return body


def parse_ids(body: object, method: str, endpoint: bool = True) -> tuple[str, str]:
    """(network id, endpoint id) of a request that names them ("" when not asked for)."""
    reader = Reader(body, method, InvalidParameter)
    network_id = reader.string("NetworkID")
    endpoint_id = reader.string("EndpointID") if endpoint else ""
    if not network_id or (endpoint and not endpoint_id):
        raise InvalidParameter(
            f"{method}: NetworkID{' and EndpointID' if endpoint else ''} required"
        )
    return network_id, endpoint_id


@dataclass(frozen=True)
class EndpointInterface:
    address: ipaddress.IPv4Interface | None = None
    address_v6: ipaddress.IPv6Interface | None = None
    mac_address: str | None = None


def _interface_json(interface: EndpointInterface) -> dict[str, str]:
    return {
        "Address": str(interface.address) if interface.address else "",
        "AddressIPv6": str(interface.address_v6) if interface.address_v6 else "",
        "MacAddress": interface.mac_address or "",
    }


def _parse_interface(reader: Reader | None) -> EndpointInterface:
    if reader is None:
        return EndpointInterface()
    address = reader.interface("Address")
    address_v6 = reader.interface("AddressIPv6")
    if address is not None and not isinstance(address, ipaddress.IPv4Interface):
        raise reader.error(f"{reader.what}: Address must be an IPv4 address/prefix")
    if address_v6 is not None and not isinstance(address_v6, ipaddress.IPv6Interface):
        raise reader.error(f"{reader.what}: AddressIPv6 must be an IPv6 address/prefix")
    return EndpointInterface(address, address_v6, reader.mac("MacAddress"))


def create_endpoint_request(spec: EndpointSpec) -> dict[str, Any]:
    interface = EndpointInterface(spec.address, spec.address_v6, spec.mac_address)
    return {
        "NetworkID": spec.network_id,
        "EndpointID": spec.endpoint_id,
        "Interface": _interface_json(interface),
        "Options": dict(spec.options),
    }


def parse_create_endpoint_answer(answer: dict[str, Any]) -> EndpointInterface:
    reader = Reader(answer, "CreateEndpoint answer", CnmError)
    return _parse_interface(reader.object("Interface"))


def parse_create_endpoint(body: object) -> EndpointSpec:
    reader = Reader(body, "CreateEndpoint", InvalidParameter)
    network_id, endpoint_id = parse_ids(body, "CreateEndpoint")
    interface = _parse_interface(reader.object("Interface"))
    return EndpointSpec(
        network_id=network_id,
        endpoint_id=endpoint_id,
        address=interface.address,
        address_v6=interface.address_v6,
        mac_address=interface.mac_address,
        options=reader.mapping("Options"),
    )


def create_endpoint_answer(asked: EndpointSpec, info: EndpointInfo) -> dict[str, Any]:
    """Only what the driver chose and Docker did not send (Docker's rule)."""
    chosen = EndpointInterface(
        info.address if asked.address is None else None,
        info.address_v6 if asked.address_v6 is None else None,
        info.mac_address if asked.mac_address is None else None,
    )
    if chosen == EndpointInterface():
        return {}
    return {"Interface": _interface_json(chosen)}


def join_request(network_id: str, endpoint_id: str, sandbox_key: str) -> dict[str, Any]:
    return {
        "NetworkID": network_id,
        "EndpointID": endpoint_id,
        "SandboxKey": sandbox_key,
        "Options": {},
    }


@dataclass(frozen=True)
class JoinAnswer:
    src_name: str | None  # None: the plugin gave no interface to move
    dst_prefix: str
    info: JoinInfo  # gateways and static routes (the interface name is the caller's)
    disable_gateway_service: bool = False


def parse_join_answer(answer: dict[str, Any]) -> JoinAnswer:
    reader = Reader(answer, "Join answer", CnmError)
    names = reader.object("InterfaceName")
    src_name = names.string("SrcName") if names is not None else ""
    dst_prefix = names.string("DstPrefix") if names is not None else ""
    if src_name and not dst_prefix:
        raise CnmError("Join answer: InterfaceName.DstPrefix is required with a SrcName")
    gateway = reader.address("Gateway")
    gateway_v6 = reader.address("GatewayIPv6")
    if gateway is not None and gateway.version != 4:
        raise CnmError(f"Join answer: Gateway {gateway} is not an IPv4 address")
    if gateway_v6 is not None and gateway_v6.version != 6:
        raise CnmError(f"Join answer: GatewayIPv6 {gateway_v6} is not an IPv6 address")
    routes = []
    for route in reader.objects("StaticRoutes"):
        destination = route.network("Destination")
        if destination is None:
            raise CnmError(f"{route.what}: Destination is required")
        kind = route.integer("RouteType")
        next_hop = route.address("NextHop")
        if kind == ROUTE_NEXT_HOP and next_hop is None:
            raise CnmError(f"{route.what}: RouteType 0 needs a NextHop")
        if kind not in (ROUTE_NEXT_HOP, ROUTE_CONNECTED):
            raise CnmError(f"{route.what}: RouteType must be 0 (next hop) or 1 (connected)")
        routes.append(StaticRoute(destination, next_hop if kind == ROUTE_NEXT_HOP else None))
    info = JoinInfo(gateway=gateway, gateway_v6=gateway_v6, static_routes=tuple(routes))
    return JoinAnswer(src_name or None, dst_prefix, info, reader.boolean("DisableGatewayService"))


def join_answer(src_name: str, dst_prefix: str, info: JoinInfo) -> dict[str, Any]:
    return {
        "InterfaceName": {"SrcName": src_name, "DstPrefix": dst_prefix},
        "Gateway": str(info.gateway) if info.gateway else "",
        "GatewayIPv6": str(info.gateway_v6) if info.gateway_v6 else "",
        "StaticRoutes": [
            {
                "Destination": str(route.destination),
                "RouteType": ROUTE_CONNECTED if route.next_hop is None else ROUTE_NEXT_HOP,
                "NextHop": str(route.next_hop) if route.next_hop else "",
            }
            for route in info.static_routes
        ],
        "DisableGatewayService": False,
    }


def parse_join(body: object) -> tuple[str, str, str]:
    """(network id, endpoint id, sandbox key) of a Join request."""
    network_id, endpoint_id = parse_ids(body, "Join")
    return network_id, endpoint_id, Reader(body, "Join", InvalidParameter).string("SandboxKey")


def capabilities_answer(scope: str, connectivity_scope: str) -> dict[str, Any]:
    return {"Scope": scope, "ConnectivityScope": connectivity_scope}


# ----------------------------------------------------------------------------- published ports


def port_options(requests: Sequence[PortRequest]) -> dict[str, Any]:
    """ProgramExternalConnectivity's Options for ``requests``, as Docker sends them."""
    exposed: dict[tuple[int, int], None] = {}
    bindings = []
    for request in requests:
        proto = PROTOCOL_NUMBERS[request.proto]
        exposed[(proto, request.container_port)] = None
        bindings.append(
            {
                "Proto": proto,
                "IP": "",
                "Port": request.container_port,
                "HostIP": request.host_ip,
                "HostPort": request.host_port,
                "HostPortEnd": request.host_port_end or request.host_port,
            }
        )
    return {
        OPT_EXPOSED_PORTS: [{"Proto": proto, "Port": port} for proto, port in exposed],
        OPT_PORT_MAP: bindings,
    }


def _bindings(value: object, what: str, error: type[CnmError]) -> list[Reader]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise error(f"{what} must be an array of port bindings")
    return [Reader(item, f"{what}[{i}]", error) for i, item in enumerate(value)]


def _proto(reader: Reader) -> str:
    number = reader.integer("Proto")
    if number not in PROTOCOL_NAMES:
        raise reader.error(f"{reader.what}: Proto {number} is not 6 (tcp), 17 (udp) or 132 (sctp)")
    return PROTOCOL_NAMES[number]


def _port(reader: Reader, key: str) -> int:
    port = reader.integer(key)
    if not 0 <= port <= 65535:
        raise reader.error(f"{reader.what}: {key} {port} is not a port number")
    return port


def parse_port_requests(options: Mapping[str, Any]) -> list[PortRequest]:
    """The port bindings Docker asks to publish (ProgramExternalConnectivity's Options)."""
    requests = []
    for reader in _bindings(options.get(OPT_PORT_MAP), OPT_PORT_MAP, InvalidParameter):
        port = _port(reader, "Port")
        if port == 0:
            raise InvalidParameter(f"{reader.what}: Port is required")
        host_port = _port(reader, "HostPort")
        host_port_end = _port(reader, "HostPortEnd")
        requests.append(
            PortRequest(
                proto=_proto(reader),
                container_port=port,
                host_ip=str(reader.address("HostIP") or ""),
                host_port=host_port,
                host_port_end=host_port_end if host_port_end > host_port else 0,
            )
        )
    return requests


def port_mapping_json(mapping: PortMapping) -> dict[str, Any]:
    return {
        "Proto": PROTOCOL_NUMBERS[mapping.proto],
        "IP": str(mapping.container_ip),
        "Port": mapping.container_port,
        "HostIP": str(mapping.host_ip),
        "HostPort": mapping.host_port,
        "HostPortEnd": mapping.host_port,
    }


def parse_port_mappings(value: object) -> list[PortMapping]:
    """Bound ports as a plugin reports them in EndpointOperInfo (``IP`` is the container's)."""
    mappings = []
    for reader in _bindings(value, f"EndpointOperInfo {OPT_PORT_MAP}", CnmError):
        container_ip = reader.address("IP")
        if container_ip is None:
            raise CnmError(f"{reader.what}: IP (the container's address) is required")
        mappings.append(
            PortMapping(
                proto=_proto(reader),
                host_ip=reader.address("HostIP") or ipaddress.IPv4Address("0.0.0.0"),
                host_port=_port(reader, "HostPort"),
                container_ip=container_ip,
                container_port=_port(reader, "Port"),
            )
        )
    return mappings


def stringify(values: Mapping[str, Any]) -> dict[str, str]:
    """Operational data as strings (EndpointOperInfo values may be any JSON)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


# ----------------------------------------------------------------------------- IPAM


def request_pool_request(
    address_space: str, pool: str | None, sub_pool: str | None, options: Mapping[str, str], v6: bool
) -> dict[str, Any]:
    return {
        "AddressSpace": address_space,
        "Pool": pool or "",
        "SubPool": sub_pool or "",
        "Options": dict(options),
        "V6": v6,
    }


@dataclass(frozen=True)
class PoolRequest:
    address_space: str
    pool: str | None
    sub_pool: str | None
    options: dict[str, str]
    v6: bool


def parse_request_pool(body: object) -> PoolRequest:
    reader = Reader(body, "RequestPool", InvalidParameter)
    address_space = reader.string("AddressSpace")
    if not address_space:
        raise InvalidParameter("RequestPool: AddressSpace is required")
    return PoolRequest(
        address_space,
        reader.string("Pool") or None,
        reader.string("SubPool") or None,
        reader.strings("Options"),
        reader.boolean("V6"),
    )


def pool_answer(grant: PoolGrant) -> dict[str, Any]:
    data = {POOL_DATA_GATEWAY: str(grant.gateway)} if grant.gateway else {}
    return {"PoolID": grant.pool_id, "Pool": str(grant.subnet), "Data": data}


def parse_pool_answer(answer: dict[str, Any]) -> PoolGrant:
    reader = Reader(answer, "RequestPool answer", CnmError)
    pool_id = reader.string("PoolID")
    subnet = reader.network("Pool")
    if not pool_id or subnet is None:
        raise CnmError("RequestPool answer: PoolID and Pool are required")
    data = Reader(reader.strings("Data"), "RequestPool answer Data", CnmError)
    gateway = data.interface(POOL_DATA_GATEWAY)
    if gateway is not None and gateway.ip not in subnet:
        raise CnmError(f"RequestPool answer: gateway {gateway} is not within pool {subnet}")
    return PoolGrant(pool_id, subnet, gateway)


def request_address_request(
    pool_id: str,
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    options: Mapping[str, str],
) -> dict[str, Any]:
    return {"PoolID": pool_id, "Address": str(address) if address else "", "Options": dict(options)}


def parse_request_address(
    body: object,
) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None, dict[str, str]]:
    reader = Reader(body, "RequestAddress", InvalidParameter)
    pool_id = reader.string("PoolID")
    if not pool_id:
        raise InvalidParameter("RequestAddress: PoolID is required")
    return pool_id, reader.address("Address"), reader.strings("Options")


def parse_address_answer(answer: dict[str, Any]) -> IPInterface:
    address = Reader(answer, "RequestAddress answer", CnmError).interface("Address")
    if address is None:
        raise CnmError("RequestAddress answer: no address returned")
    return address


def parse_release_address(
    body: object,
) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    reader = Reader(body, "ReleaseAddress", InvalidParameter)
    pool_id = reader.string("PoolID")
    address = reader.address("Address")
    if not pool_id or address is None:
        raise InvalidParameter("ReleaseAddress: PoolID and Address are required")
    return pool_id, address


def parse_pool_id(body: object, method: str) -> str:
    pool_id = Reader(body, method, InvalidParameter).string("PoolID")
    if not pool_id:
        raise InvalidParameter(f"{method}: PoolID is required")
    return pool_id
