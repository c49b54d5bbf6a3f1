"""A remote network driver: a plugin speaking libnetwork's remote driver protocol, behind the
driver contract like any built-in driver.

Each contract call is one ``NetworkDriver.*`` call to the plugin (``cnm.plugins``); the
plugin owns its kernel objects, and this proxy does the part libnetwork does for it:

* ``create_endpoint`` sends the addresses IPAM gave and the MAC asked for. The plugin may
  answer a MAC or an address of its own only where none was sent (libnetwork's rule: a value
  that would replace one it sent fails the call, which is rolled back).
* ``join`` asks the plugin for its interface (``InterfaceName.SrcName``, a link it made in the
  host namespace), moves it into the sandbox named ``<DstPrefix><n>`` (``ethN`` as the
  controller chose it when the prefix is ``eth``; else the lowest free index) with the
  endpoint's MAC, and returns the plugin's gateways and static routes for the controller to
  program. ``leave`` gives the link back to the host namespace under its old name before
  telling the plugin, as libnetwork does, unless the sandbox is being deleted.
* Optional methods (EndpointOperInfo, ProgramExternalConnectivity,
  RevokeExternalConnectivity) answering 404 are skipped; but ports asked of a plugin that
  cannot publish them are refused rather than dropped.
* A failure after the plugin may have done its part undoes that part (DeleteNetwork,
  DeleteEndpoint, Leave) before raising, so the driver leaves nothing behind, as the contract
  asks: after a timeout, a lost connection or a malformed answer (the plugin may have acted),
  and after an answer cnm cannot accept. A plain refusal (an error status, ``Err``) is not
  undone: the plugin says it did nothing. Undo calls that fail are logged.

Not done, and why: cnm has no ``docker_gwbridge`` (libnetwork adds one to a sandbox whose
remote endpoint brings no gateway): such an endpoint gives no default route, which is what
``DisableGatewayService`` asks for anyway. Global-scope plugins are refused: their networks
live in a cluster store, which the controller does not keep for plugins' networks. DiscoverNew/DiscoverDelete are never sent: cnm has no node
discovery. State kept here (endpoint MACs, where a link went) is memory only and comes back
through ``restore`` from the controller's records.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping, Sequence
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
from cnm.errors import CnmError, Forbidden, InvalidParameter
from cnm.model import PortMapping, PortRequest
from cnm.osl.links import HostNetwork, sandbox_network
from cnm.osl.namespace import NetNamespace
from cnm.plugins import protocol
from cnm.plugins.client import MethodNotImplemented, PluginClient, PluginRefused

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "eth"


@dataclass
class _Endpoint:
    network_id: str
    mac: str | None
    addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    sandbox_key: str | None = None  # where the plugin's link went, and its names
    src_name: str | None = None
    ifname: str | None = None


class RemoteDriver(NetworkDriver):
    """The proxy of one plugin; ``activate`` makes it (GetCapabilities)."""

    def __init__(self, name: str, client: PluginClient, host: HostNetwork, caps: Capability):
        self.name = name
        self.client = client
        self.host = host
        self._caps = caps
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()

    @classmethod
    def activate(cls, name: str, client: PluginClient, host: HostNetwork) -> RemoteDriver:
        answer = client.call("NetworkDriver.GetCapabilities")
        protocol.check_error(answer, protocol.NETWORK_ERROR_KEY)
        reader = protocol.Reader(answer, "GetCapabilities answer", CnmError)
        scopes = {"local": Scope.LOCAL, "global": Scope.GLOBAL}
        scope = scopes.get(reader.string("Scope"))
        if scope is None:
            raise CnmError(
                f"plugin {name}: invalid capability: expecting 'local' or 'global', got "
                f"{reader.string('Scope')!r}"
            )
        if scope is Scope.GLOBAL:
            raise CnmError(
                f"plugin {name} is a global-scope network driver: cnm runs local-scope "
                "network plugins only"
            )
        connectivity = reader.string("ConnectivityScope")
        if connectivity and connectivity not in scopes:
            raise CnmError(
                f"plugin {name}: invalid capability: expecting 'local' or 'global', got "
                f"{connectivity!r}"
            )
        return cls(name, client, host, Capability(scope, scopes.get(connectivity, scope)))

    def _call(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.client.call(f"NetworkDriver.{method}", body)
        protocol.check_error(answer, protocol.NETWORK_ERROR_KEY)
        return answer

    def _try(self, method: str, body: Mapping[str, Any]) -> None:
        """A call made to undo something: its failure is logged, not raised."""
        try:
            self._call(method, body)
        except CnmError as err:
            log.error("plugin %s: %s failed while rolling back: %s", self.name, method, err)

    def _call_or_undo(
        self, method: str, body: Mapping[str, Any], undo: str, undo_body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``method``; when it fails without the plugin saying it did nothing, ``undo``."""
        try:
            return self._call(method, body)
        except (PluginRefused, MethodNotImplemented):
            raise
        except CnmError:
            self._try(undo, undo_body)
            raise

    # ----------------------------------------------------------------- contract

    def configure(self, config: Mapping[str, Any]) -> None:
        if config:
            raise InvalidParameter(
                f"the {self.name} plugin takes no driver configuration from cnm: "
                "a remote driver is configured by its own means"
            )

    def capabilities(self) -> Capability:
        return self._caps

    def create_network(self, spec: NetworkSpec) -> None:
        self._call_or_undo(
            "CreateNetwork",
            protocol.create_network_request(spec),
            "DeleteNetwork",
            protocol.network_request(spec.network_id),
        )

    def delete_network(self, network_id: str) -> None:
        self._call("DeleteNetwork", protocol.network_request(network_id))

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        delete = protocol.network_request(spec.network_id, spec.endpoint_id)
        answer = self._call_or_undo(
            "CreateEndpoint", protocol.create_endpoint_request(spec), "DeleteEndpoint", delete
        )
        try:
            chosen = protocol.parse_create_endpoint_answer(answer)
            for sent, got, what in (
                (spec.mac_address, chosen.mac_address, "MAC address"),
                (spec.address, chosen.address, "address"),
                (spec.address_v6, chosen.address_v6, "IPv6 address"),
            ):
                if sent is not None and got is not None:
                    raise Forbidden(
                        f"driver modified interface {what}: endpoint interface {what} "
                        f"present ({sent}). Cannot be modified with {got}."
                    )
        except CnmError:
            self._try("DeleteEndpoint", delete)
            raise
        address = spec.address or chosen.address
        address_v6 = spec.address_v6 or chosen.address_v6
        mac = spec.mac_address or chosen.mac_address
        with self._lock:
            self._endpoints[spec.endpoint_id] = _Endpoint(
                spec.network_id, mac, tuple(a.ip for a in (address, address_v6) if a is not None)
            )
        return EndpointInfo(
            mac_address=chosen.mac_address, address=chosen.address, address_v6=chosen.address_v6
        )

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            self._endpoints.pop(endpoint_id, None)
        self._call("DeleteEndpoint", protocol.network_request(network_id, endpoint_id))

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None, ifname: str
    ) -> JoinInfo:
        if sandbox_key is None:
            raise InvalidParameter(f"the {self.name} plugin needs a sandbox namespace to join")
        leave = protocol.network_request(network_id, endpoint_id)
        answer = self._call_or_undo(
            "Join", protocol.join_request(network_id, endpoint_id, sandbox_key), "Leave", leave
        )
        try:
            joined = protocol.parse_join_answer(answer)
            if joined.src_name is None:
                return JoinInfo(configure_interface=False)
            endpoint = self._endpoints.get(endpoint_id)
            name = self._move_in(joined, sandbox_key, ifname, endpoint)
        except CnmError:
            self._try("Leave", leave)
            raise
        if endpoint is not None:
            endpoint.sandbox_key, endpoint.src_name, endpoint.ifname = (
                sandbox_key,
                joined.src_name,
                name,
            )
        return JoinInfo(
            gateway=joined.info.gateway,
            gateway_v6=joined.info.gateway_v6,
            static_routes=joined.info.static_routes,
            interface_name=name if name != ifname else None,
        )

    def _move_in(
        self, joined: protocol.JoinAnswer, sandbox_key: str, ifname: str, endpoint: _Endpoint | None
    ) -> str:
        assert joined.src_name is not None
        name = ifname
        if joined.dst_prefix != DEFAULT_PREFIX:
            with sandbox_network(sandbox_key) as sandbox_net:
                name = sandbox_net.free_name(joined.dst_prefix)
        if len(name) > 15:
            raise CnmError(f"interface name {name} (DstPrefix {joined.dst_prefix!r}) is too long")
        sandbox = NetNamespace(sandbox_key)
        try:
            self.host.move_into(joined.src_name, sandbox, name, endpoint.mac if endpoint else None)
        finally:
            sandbox.close()
        return name

    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is not None and endpoint.sandbox_key is not None:
            key, src_name, ifname = endpoint.sandbox_key, endpoint.src_name, endpoint.ifname
            endpoint.sandbox_key = endpoint.src_name = endpoint.ifname = None
            if not namespace_deleted and src_name and ifname:
                try:
                    with sandbox_network(key) as sandbox_net:
                        sandbox_net.move_out(ifname, self.host.namespace, src_name)
                except (CnmError, OSError) as err:
                    log.error("giving link %s back to plugin %s: %s", ifname, self.name, err)
        self._call("Leave", protocol.network_request(network_id, endpoint_id))

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, ports: Sequence[PortRequest]
    ) -> list[PortMapping]:
        body = {
            "NetworkID": network_id,
            "EndpointID": endpoint_id,
            "Options": protocol.port_options(ports),
        }
        try:
            self._call("ProgramExternalConnectivity", body)
        except MethodNotImplemented:
            if ports:
                raise InvalidParameter(
                    f"the {self.name} plugin cannot publish ports: it does not implement "
                    "ProgramExternalConnectivity"
                ) from None
            return []
        if not ports:
            return []
        try:
            return self._bound_ports(network_id, endpoint_id, ports)
        except CnmError:
            self.revoke_external_connectivity(network_id, endpoint_id)
            raise

    def _bound_ports(
        self, network_id: str, endpoint_id: str, ports: Sequence[PortRequest]
    ) -> list[PortMapping]:
        """The ports as the plugin bound them (EndpointOperInfo's port map), else as asked."""
        info = self._operational_info(network_id, endpoint_id)
        if protocol.OPT_PORT_MAP in info:
            return protocol.parse_port_mappings(info[protocol.OPT_PORT_MAP])
        endpoint = self._endpoints.get(endpoint_id)
        addresses = endpoint.addresses if endpoint else ()
        mappings = []
        for request in ports:
            host_ip = ipaddress.ip_address(request.host_ip or "0.0.0.0")
            container_ip = next((a for a in addresses if a.version == host_ip.version), None)
            if container_ip is not None:
                mappings.append(
                    PortMapping(
                        request.proto,
                        host_ip,
                        request.host_port,
                        container_ip,
                        request.container_port,
                    )
                )
        return mappings

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:
        try:
            self._call(
                "RevokeExternalConnectivity", protocol.network_request(network_id, endpoint_id)
            )
        except MethodNotImplemented:
            return

    def _operational_info(self, network_id: str, endpoint_id: str) -> dict[str, Any]:
        try:
            answer = self._call(
                "EndpointOperInfo", protocol.network_request(network_id, endpoint_id)
            )
        except MethodNotImplemented:
            return {}
        return protocol.Reader(answer, "EndpointOperInfo answer", CnmError).mapping("Value")

    def endpoint_info(self, network_id: str, endpoint_id: str) -> Mapping[str, str]:
        try:
            return protocol.stringify(self._operational_info(network_id, endpoint_id))
        except CnmError as err:
            log.warning("plugin %s: EndpointOperInfo failed: %s", self.name, err)
            return {}

    def restore(self, networks: list[NetworkSpec], endpoints: list[EndpointSpec]) -> None:
        """The plugin keeps its own state; only what this proxy knew comes back. Where a
        joined endpoint's link went is not recorded, so its leave only tells the plugin."""
        with self._lock:
            for spec in endpoints:
                self._endpoints[spec.endpoint_id] = _Endpoint(
                    spec.network_id,
                    spec.mac_address,
                    tuple(a.ip for a in (spec.address, spec.address_v6) if a is not None),
                )
