"""The IPAM contract: how the controller obtains subnets and addresses.

Modelled on libnetwork's ipamapi. An IPAM driver hands out *pools* (subnets) inside an address
space and *addresses* inside a pool. A driver that keeps its state in memory only (the default
one) asks for ``requires_request_replay``: the controller's store records are the source of
truth, and on restart the controller replays every recorded pool and address through
``request_pool``/``request_address`` with the exact values it recorded, so its pool ids must be
deterministic for the same (address space, pool, sub-pool) request. A driver that keeps its own
state (a remote plugin, as a rule) is not replayed to: it would see every allocation twice.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

LOCAL_ADDRESS_SPACE = "LocalDefault"
GLOBAL_ADDRESS_SPACE = "GlobalDefault"

# Option key of request_address: what the address is for. With REQUEST_TYPE_GATEWAY and no
# explicit address, the driver picks the first free address of the pool (Docker's rule).
REQUEST_ADDRESS_TYPE = "RequestAddressType"
REQUEST_TYPE_GATEWAY = "com.docker.network.gateway"
# Option key of request_address for drivers with ``requires_mac_address``: the endpoint's MAC.
MAC_ADDRESS_OPTION = "com.docker.network.endpoint.macaddress"


@dataclass(frozen=True)
class PoolGrant:
    """A pool handed out by ``request_pool``; ``gateway`` is one the driver chose with it
    (libnetwork's ``com.docker.network.gateway`` pool data), used when the user named none."""

    pool_id: str
    subnet: IPNetwork
    gateway: IPInterface | None = None


@dataclass(frozen=True)
class IpamCapabilities:
    requires_mac_address: bool = False
    requires_request_replay: bool = False


class IpamDriver(ABC):
    """An IPAM driver. Errors are cnm.errors classes: InvalidParameter for bad requests,
    Conflict for overlaps and addresses in use, Unavailable for exhausted pools,
    NotFound for unknown pool ids."""

    name: str

    @abstractmethod
    def default_address_spaces(self) -> tuple[str, str]:
        """(local address space, global address space)."""

    @abstractmethod
    def request_pool(
        self,
        address_space: str,
        pool: str | None,
        sub_pool: str | None,
        options: Mapping[str, str],
        v6: bool,
    ) -> PoolGrant:
        """Reserve ``pool`` (a CIDR), or with ``pool`` None the next free default pool of the
        family. ``sub_pool`` (a CIDR inside ``pool``) restricts dynamic address allocation."""

    @abstractmethod
    def release_pool(self, pool_id: str) -> None:
        """Give the pool back; its addresses go with it."""

    @abstractmethod
    def request_address(
        self, pool_id: str, address: IPAddress | None, options: Mapping[str, str]
    ) -> IPInterface:
        """Reserve ``address``, or with None the next free one; returns it with the pool's
        prefix length."""

    @abstractmethod
    def release_address(self, pool_id: str, address: IPAddress) -> None:
        """Give an address back to its pool (no error if it was not reserved)."""

    def capabilities(self) -> IpamCapabilities:
        return IpamCapabilities()
