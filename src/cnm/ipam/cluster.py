"""IPAM's global address space, kept in the cluster's store so that hosts never collide.

Why one key per pool and per address: every reservation is a compare-and-swap that creates its
key only if no host created it first (``expect_revision=0``), so two hosts asking at once can
never both get a subnet or an address; the loser looks again and takes the next free one. No
host keeps allocation state of its own: the store is the state, so there is nothing to replay
after a restart.

Keys (under the store's own prefix):
* ``ipam/pools/<subnet>`` a global pool, its value the sub-pool (ip-range) if one was asked;
* ``ipam/addresses/<subnet>/<address>`` an address taken in that pool;
* ``subnets/<node>/<subnet>`` the local networks of each host (written by the cluster
  membership, under the host's lease): an automatic global pool avoids them, an explicit one
  that overlaps one is refused with the host named, since its routes would clash there.
Subnets are written with ``_`` for ``/``.

Automatic pools are carved in order from the global default pools (Docker's swarm default
10.0.0.0/8 in /24s); addresses go out lowest-free first, as Docker 20.10 hands them out, so an
address freed by a stopped container is the one its restart gets back while it is free.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence

from cnm.errors import Conflict, InvalidParameter, NotFound, Unavailable
from cnm.ipam.default import PoolSpec, assignable_bounds, carve, interface_of, parse_cidr, within
from cnm.ipamapi import (
    GLOBAL_ADDRESS_SPACE,
    REQUEST_ADDRESS_TYPE,
    REQUEST_TYPE_GATEWAY,
    IPAddress,
    IpamDriver,
    IPInterface,
    IPNetwork,
    PoolGrant,
)
from cnm.store.api import Delete, Store, StoreConflict

DEFAULT_GLOBAL_POOLS = (PoolSpec(ipaddress.IPv4Network("10.0.0.0/8"), 24),)
MAX_ATTEMPTS = 64


def _key_part(subnet: IPNetwork) -> str:
    return str(subnet).replace("/", "_")


def _subnet_of(part: str) -> IPNetwork:
    return ipaddress.ip_network(part.replace("_", "/"))


def host_subnet_key(node: str, subnet: IPNetwork) -> str:
    return f"subnets/{node}/{_key_part(subnet)}"


class ClusterIpam(IpamDriver):
    """Serves the global address space only; the default IPAM driver hands it those requests."""

    name = "default"

    def __init__(
        self,
        store: Store,
        default_pools: Sequence[PoolSpec] = DEFAULT_GLOBAL_POOLS,
        reserved_networks: Callable[[], Iterable[IPNetwork]] | None = None,
    ) -> None:
        self._store = store
        self._default_pools = tuple(default_pools)
        self._reserved_networks = reserved_networks

    def default_address_spaces(self) -> tuple[str, str]:
        return GLOBAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE

    # ----------------------------------------------------------------- pools

    def pools(self) -> list[IPNetwork]:
        """Every global pool's subnet (a local network should not overlap one)."""
        return [
            _subnet_of(e.key.removeprefix("ipam/pools/")) for e in self._store.list("ipam/pools/")
        ]

    def _host_subnets(self) -> list[tuple[str, IPNetwork]]:
        found = []
        for entry in self._store.list("subnets/"):
            node, _, part = entry.key.removeprefix("subnets/").partition("/")
            try:
                found.append((node, _subnet_of(part)))
            except ValueError:
                continue  # written by someone else: not ours to read
        return found

    def request_pool(
        self,
        address_space: str,
        pool: str | None,
        sub_pool: str | None,
        options: Mapping[str, str],
        v6: bool,
    ) -> PoolGrant:
        if address_space != GLOBAL_ADDRESS_SPACE:
            raise InvalidParameter(f"the cluster's IPAM serves {GLOBAL_ADDRESS_SPACE} only")
        if pool is None:
            if sub_pool is not None:
                raise InvalidParameter(f"ip-range {sub_pool} requires an explicit subnet")
            return self._request_default_pool(v6)
        subnet = parse_cidr(pool, "subnet")
        if (subnet.version == 6) != v6:
            raise InvalidParameter(f"subnet {subnet} is not an IPv{6 if v6 else 4} subnet")
        ip_range = subnet
        if sub_pool is not None:
            ip_range = parse_cidr(sub_pool, "ip-range")
            if not within(ip_range, subnet):
                raise InvalidParameter(f"ip-range {ip_range} is not within subnet {subnet}")
        for other in self.pools():
            if other.overlaps(subnet):
                raise Conflict(
                    f"Pool overlaps with other one on this address space: {subnet} overlaps {other}"
                )
        for node, local in self._host_subnets():
            if local.overlaps(subnet):
                raise Conflict(f"subnet {subnet} overlaps {local}, a local network of host {node}")
        self._claim_pool(subnet, ip_range if sub_pool is not None else None)
        return PoolGrant(self._pool_id(subnet, ip_range if sub_pool else None), subnet)

    def _request_default_pool(self, v6: bool) -> PoolGrant:
        version = 6 if v6 else 4
        specs = [spec for spec in self._default_pools if spec.base.version == version]
        if not specs:
            raise InvalidParameter(
                f"no global default IPv{version} address pools: the network needs a subnet"
            )
        reserved = list(self._reserved_networks()) if self._reserved_networks else []
        for _ in range(MAX_ATTEMPTS):
            taken = [*self.pools(), *(net for _, net in self._host_subnets()), *reserved]
            blockers = [
                (int(net.network_address), int(net.broadcast_address))
                for net in taken
                if net.version == version
            ]
            subnet = next((s for s in (carve(spec, blockers) for spec in specs) if s), None)
            if subnet is None:
                raise Unavailable(
                    f"could not find an available, non-overlapping IPv{version} address pool "
                    "among the global defaults to assign to the network"
                )
            try:
                self._claim_pool(subnet, None)
            except Conflict:
                continue  # another host took it first
            return PoolGrant(self._pool_id(subnet, None), subnet)
        raise Unavailable("could not reserve a global pool: too many hosts competing for one")

    def _claim_pool(self, subnet: IPNetwork, ip_range: IPNetwork | None) -> None:
        value = json.dumps({"range": str(ip_range) if ip_range else None}).encode()
        try:
            self._store.put(f"ipam/pools/{_key_part(subnet)}", value, expect_revision=0)
        except StoreConflict:
            raise Conflict(
                f"Pool overlaps with other one on this address space: {subnet}"
            ) from None

    @staticmethod
    def _pool_id(subnet: IPNetwork, ip_range: IPNetwork | None) -> str:
        pool_id = f"{GLOBAL_ADDRESS_SPACE}/{subnet}"
        return f"{pool_id}/{ip_range}" if ip_range is not None else pool_id

    @staticmethod
    def _parse_pool_id(pool_id: str) -> tuple[IPNetwork, IPNetwork]:
        space, _, rest = pool_id.partition("/")
        parts = rest.split("/")
        if space != GLOBAL_ADDRESS_SPACE or len(parts) not in (2, 4):
            raise NotFound(f"pool {pool_id} not found")
        subnet = ipaddress.ip_network("/".join(parts[:2]))
        ip_range = ipaddress.ip_network("/".join(parts[2:])) if len(parts) == 4 else subnet
        return subnet, ip_range

    def release_pool(self, pool_id: str) -> None:
        subnet, _ = self._parse_pool_id(pool_id)
        prefix = f"ipam/addresses/{_key_part(subnet)}/"
        ops = [Delete(e.key) for e in self._store.list(prefix)]
        self._store.commit([*ops, Delete(f"ipam/pools/{_key_part(subnet)}")])

    # ----------------------------------------------------------------- addresses

    def request_address(
        self, pool_id: str, address: IPAddress | None, options: Mapping[str, str]
    ) -> IPInterface:
        subnet, ip_range = self._parse_pool_id(pool_id)
        prefix = f"ipam/addresses/{_key_part(subnet)}/"
        first, last = assignable_bounds(subnet)
        if address is not None:
            if address.version != subnet.version or address not in subnet:
                raise InvalidParameter(f"address {address} is not within pool {subnet}")
            if not first <= int(address) <= last:
                raise InvalidParameter(f"address {address} of {subnet} cannot be assigned")
            try:
                self._store.put(f"{prefix}{address}", b"", expect_revision=0)
            except StoreConflict:
                raise Conflict(f"Address already in use: {address} in pool {subnet}") from None
            return interface_of(subnet, int(address))
        if options.get(REQUEST_ADDRESS_TYPE) != REQUEST_TYPE_GATEWAY:
            first = max(first, int(ip_range.network_address))
            last = min(last, int(ip_range.broadcast_address))
        for _ in range(MAX_ATTEMPTS):
            taken = {
                int(ipaddress.ip_address(e.key.removeprefix(prefix)))
                for e in self._store.list(prefix)
            }
            value = next((v for v in range(first, last + 1) if v not in taken), None)
            if value is None:
                raise Unavailable(f"no available addresses on this pool: {pool_id}")
            candidate = interface_of(subnet, value)
            try:
                self._store.put(f"{prefix}{candidate.ip}", b"", expect_revision=0)
            except StoreConflict:
                continue  # another host took it between the listing and the write
            return candidate
        raise Unavailable(f"could not reserve an address in {pool_id}: too much contention")

    def release_address(self, pool_id: str, address: IPAddress) -> None:
        subnet, _ = self._parse_pool_id(pool_id)
        self._store.delete(f"ipam/addresses/{_key_part(subnet)}/{address}")
