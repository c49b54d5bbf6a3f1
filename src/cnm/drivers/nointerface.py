"""The shared shape of drivers that make no interface: host and null.

Their networks hold no kernel object and no address pool, and an endpoint on one must be its
sandbox's only endpoint (Docker refuses to mix `host` or `none` with other networks)."""

from __future__ import annotations

from collections.abc import Mapping
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


class NoInterfaceDriver(NetworkDriver):
    """Every call succeeds and makes nothing."""

    def configure(self, config: Mapping[str, Any]) -> None:
        return None

    def capabilities(self) -> Capability:
        return Capability(Scope.LOCAL, Scope.LOCAL, uses_addresses=False, multiple_networks=False)

    def create_network(self, spec: NetworkSpec) -> None:
        return None

    def delete_network(self, network_id: str) -> None:
        return None

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        return EndpointInfo()

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        return None

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None, ifname: str
    ) -> JoinInfo:
        return JoinInfo(configure_interface=False)

    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        return None

    def restore(self, networks: list[NetworkSpec], endpoints: list[EndpointSpec]) -> None:
        return None
