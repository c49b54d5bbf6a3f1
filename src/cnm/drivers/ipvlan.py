"""The ipvlan driver's place: ``-d ipvlan`` gets a clear refusal instead of "driver not found".

Docker's ipvlan driver gives containers children of a parent that share its MAC (modes l2,
l3, l3s). This machine's kernel has no IPvlan support (CONFIG_IPVLAN), so cnm cannot make such
links here, and nothing of it could be tested; the refusal names the missing kernel feature
when that is the reason (the kernel is asked, see ``HostNetwork.supports_link_kind``), and
says plainly that cnm has no ipvlan driver when the kernel has one. No network is ever made,
so the other calls only answer that none exists.
"""

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
from cnm.errors import CnmError, NotFound, NotSupported
from cnm.osl.links import HostNetwork

NO_KERNEL_SUPPORT = (
    "the ipvlan driver needs the kernel's IPvlan support (CONFIG_IPVLAN, module ipvlan), "
    "which this kernel lacks; the macvlan driver (-d macvlan) puts containers on a parent's "
    "LAN with MACs of their own instead"
)
NOT_IMPLEMENTED = (
    "cnm has no ipvlan driver (the kernel supports IPvlan); the macvlan driver (-d macvlan) "
    "puts containers on a parent's LAN with MACs of their own instead"
)


class IpvlanDriver(NetworkDriver):
    name = "ipvlan"

    def __init__(self, host: HostNetwork) -> None:
        self.host = host

    def configure(self, config: Mapping[str, Any]) -> None:
        return None

    def capabilities(self) -> Capability:
        return Capability(Scope.LOCAL, Scope.GLOBAL)

    def validate_network_options(self, options: Mapping[str, str]) -> None:
        raise self.refusal()

    def refusal(self) -> CnmError:
        if not self.host.supports_link_kind("ipvlan"):
            return NotSupported(NO_KERNEL_SUPPORT)
        return NotSupported(NOT_IMPLEMENTED)

    def create_network(self, spec: NetworkSpec) -> None:
        raise self.refusal()

    def delete_network(self, network_id: str) -> None:
        raise NotFound(f"ipvlan network {network_id[:12]} not found")

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        raise NotFound(f"ipvlan network {spec.network_id[:12]} not found")

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        raise NotFound(f"ipvlan network {network_id[:12]} not found")

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None, ifname: str
    ) -> JoinInfo:
        raise NotFound(f"ipvlan network {network_id[:12]} not found")

    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        return None

    def restore(self, networks: list[NetworkSpec], endpoints: list[EndpointSpec]) -> None:
        return None
