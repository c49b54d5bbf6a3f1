"""The default IPAM driver: Docker's built-in pool and address allocator.

Why it looks like this:

* Automatic pools are carved, in order, from a list of ``PoolSpec`` (Docker's
  ``default-address-pools``), skipping subnets that overlap a pool already handed out (in any
  address space) or a network the host uses (its on-link routes and nameservers, supplied by
  the caller through ``reserved_networks``). Explicit pools only have to avoid the pools of the
  same address space: users may pick any subnet, as with Docker.
* A dynamic request gets the lowest free address of the range, as Docker 20.10's bitmap
  allocator does. The order is a function of what is allocated and nothing else, so it is the
  same before and after a restart (the store replays the allocations, not a cursor): a
  container stopped and started again gets its address back while it is free, which Docker
  Compose's ``restart`` relies on. A reused address reaching another container is made safe
  by the MAC: the bridge driver derives it from the address (02:42 and the IPv4 bytes, as
  Docker 20.10), and a join announces the address (unsolicited ARP and NA), so a neighbour that
  cached the old owner learns the new one at once instead of after its entry goes stale.
  Pools are integer intervals plus a set of allocated addresses, a high-water mark below which
  every address was handed out once, and a heap of the addresses released below it; ranges
  are never materialised, so a /16 with thousands of leases or an IPv6 /64 costs only what is
  allocated, and each request takes O(log n).
* The network address is never handed out, nor the IPv4 broadcast address; for IPv6 the
  network address is the subnet-router anycast address. Point-to-point sized subnets (IPv4
  /31 and /32, IPv6 /127 and /128) have no such reserved addresses: every address is usable.
* The global address space (networks spanning hosts) is handed to ``global_space`` when the
  daemon has a cluster store (``cluster.py``: state in etcd); without one it is served here
  like the local space.
* State lives in memory only (hence ``requires_request_replay``). The controller's store is
  the source of truth and replays every recorded pool and address after a restart, so pool
  ids are deterministic:
  ``"{address_space}/{subnet}"`` plus ``"/{sub_pool}"`` when a sub-pool was requested.
"""

from __future__ import annotations

import heapq
import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

from cnm.errors import Conflict, InvalidParameter, NotFound, Unavailable
from cnm.ipamapi import (
    GLOBAL_ADDRESS_SPACE,
    LOCAL_ADDRESS_SPACE,
    REQUEST_ADDRESS_TYPE,
    REQUEST_TYPE_GATEWAY,
    IPAddress,
    IpamCapabilities,
    IpamDriver,
    IPInterface,
    IPNetwork,
    PoolGrant,
)

_ADDRESS_SPACES = (LOCAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE)


@dataclass(frozen=True)
class PoolSpec:
    """A default address pool: subnets of prefix length ``size`` are carved from ``base``."""

    base: IPNetwork
    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.base, ipaddress.IPv4Network | ipaddress.IPv6Network):
            raise InvalidParameter(f"invalid address pool base {self.base!r}: not a network")
        if not self.base.prefixlen <= self.size <= self.base.max_prefixlen:
            raise InvalidParameter(
                f"invalid address pool size {self.size} for base {self.base}: it must be between "
                f"{self.base.prefixlen} and {self.base.max_prefixlen}"
            )


DEFAULT_POOLS: tuple[PoolSpec, ...] = (
    *(PoolSpec(ipaddress.IPv4Network(f"172.{octet}.0.0/16"), 16) for octet in range(17, 32)),
    PoolSpec(ipaddress.IPv4Network("192.168.0.0/16"), 20),
)


def parse_pool_option(text: str) -> PoolSpec:
    """Parse Docker's ``default-address-pools`` daemon option, e.g. ``base=10.20.0.0/16,size=24``.

    Keys are case-insensitive, both are required, each at most once."""
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InvalidParameter(
                f"invalid address pool {text!r}: expected key=value, got {part!r}"
            )
        if key not in ("base", "size"):
            raise InvalidParameter(
                f"invalid address pool {text!r}: unexpected key {key!r} (expected base and size)"
            )
        if key in values:
            raise InvalidParameter(f"invalid address pool {text!r}: duplicate key {key!r}")
        values[key] = value.strip()
    missing = [key for key in ("base", "size") if key not in values]
    if missing:
        raise InvalidParameter(f"invalid address pool {text!r}: missing {' and '.join(missing)}")
    size = values["size"]
    if not (size.isascii() and size.isdigit()):
        raise InvalidParameter(f"invalid address pool {text!r}: size {size!r} is not a number")
    return PoolSpec(parse_cidr(values["base"], "address pool base"), int(size))


def parse_cidr(text: str, what: str) -> IPNetwork:
    """Parse a CIDR strictly: a prefix length is required and host bits must be zero."""
    _, sep, prefix = text.partition("/")
    if not sep or not (prefix.isascii() and prefix.isdigit()):
        raise InvalidParameter(f"invalid {what} {text!r}: expected CIDR notation, e.g. 10.1.0.0/24")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            canonical = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise InvalidParameter(f"invalid {what} {text!r}: {exc}") from None
        raise InvalidParameter(
            f"invalid {what} {text!r}: host bits are set, the canonical form is {canonical}"
        ) from None


def within(inner: IPNetwork, outer: IPNetwork) -> bool:
    """Whether ``inner`` lies within ``outer`` (never across address families)."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def assignable_bounds(net: IPNetwork) -> tuple[int, int]:
    """First and last address of ``net`` that may be handed out, as integers.

    The network address (for IPv6, the subnet-router anycast address) and the IPv4 broadcast
    address are excluded, except in /31 and /32 (IPv6 /127 and /128) where every address is
    usable, as on point-to-point links."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.max_prefixlen - net.prefixlen >= 2:
        first += 1
        if net.version == 4:
            last -= 1
    return first, last


def interface_of(net: IPNetwork, value: int) -> IPInterface:
    if net.version == 4:
        return ipaddress.IPv4Interface((value, net.prefixlen))
    return ipaddress.IPv6Interface((value, net.prefixlen))


@dataclass
class _Pool:
    address_space: str
    subnet: IPNetwork
    first: int  # assignable bounds of the whole subnet
    last: int
    range_first: int  # bounds for dynamic allocation: the sub-pool within first..last
    range_last: int
    allocated: set[int] = field(default_factory=set)
    # Every free address of range_first..mark-1 is in holes (with stale entries, taken since
    # by an explicit request, dropped when met): the lowest free is holes' least, else the
    # first unallocated at or above mark.
    mark: int = 0
    holes: list[int] = field(default_factory=list)

    def lowest_free_in_range(self) -> int | None:
        """The lowest unallocated address of the dynamic range."""
        while self.holes:
            if self.holes[0] not in self.allocated:
                return self.holes[0]
            heapq.heappop(self.holes)
        self.mark = max(self.mark, self.range_first)
        while self.mark <= self.range_last and self.mark in self.allocated:
            self.mark += 1
        return self.mark if self.mark <= self.range_last else None

    def lowest_free(self, first: int, last: int) -> int | None:
        """The lowest unallocated address of first..last (for a gateway: once per pool). Only
        allocated addresses are skipped: at most len(allocated) + 1 steps."""
        for value in range(first, last + 1):
            if value not in self.allocated:
                return value
        return None

    def take(self, value: int) -> None:
        self.allocated.add(value)

    def give_back(self, value: int) -> None:
        if value in self.allocated:
            self.allocated.discard(value)
            if self.range_first <= value < self.mark:
                heapq.heappush(self.holes, value)


class DefaultIpam(IpamDriver):
    """Docker's default IPAM driver (see the module docstring)."""

    name = "default"

    def __init__(
        self,
        default_pools: Sequence[PoolSpec] | None = None,
        reserved_networks: Callable[[], Iterable[IPNetwork]] | None = None,
        global_space: IpamDriver | None = None,
    ) -> None:
        self._default_pools = tuple(DEFAULT_POOLS if default_pools is None else default_pools)
        self._reserved_networks = reserved_networks
        self._global = global_space
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()

    def default_address_spaces(self) -> tuple[str, str]:
        return LOCAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE

    def capabilities(self) -> IpamCapabilities:
        return IpamCapabilities(requires_request_replay=True)

    def request_pool(
        self,
        address_space: str,
        pool: str | None,
        sub_pool: str | None,
        options: Mapping[str, str],
        v6: bool,
    ) -> PoolGrant:
        if address_space not in _ADDRESS_SPACES:
            raise InvalidParameter(
                f"unknown address space {address_space!r} (expected one of {_ADDRESS_SPACES})"
            )
        if address_space == GLOBAL_ADDRESS_SPACE and self._global is not None:
            return self._global.request_pool(address_space, pool, sub_pool, options, v6)
        if pool is None:
            if sub_pool is not None:
                raise InvalidParameter(f"ip-range {sub_pool} requires an explicit subnet")
            return self._request_default_pool(address_space, v6)

        subnet = parse_cidr(pool, "subnet")
        if (subnet.version == 6) != v6:
            family = "IPv6" if v6 else "IPv4"
            raise InvalidParameter(f"subnet {subnet} is not an {family} subnet")
        ip_range = subnet
        pool_id = f"{address_space}/{subnet}"
        if sub_pool is not None:
            ip_range = parse_cidr(sub_pool, "ip-range")
            if not within(ip_range, subnet):
                raise InvalidParameter(f"ip-range {ip_range} is not within subnet {subnet}")
            pool_id += f"/{ip_range}"
        with self._lock:
            for other in self._pools.values():
                if other.address_space == address_space and other.subnet.overlaps(subnet):
                    raise Conflict(
                        f"Pool overlaps with other one on this address space: {subnet} "
                        f"overlaps {other.subnet}"
                    )
            self._add_pool(pool_id, address_space, subnet, ip_range)
        return PoolGrant(pool_id, subnet)

    def _request_default_pool(self, address_space: str, v6: bool) -> PoolGrant:
        version = 6 if v6 else 4
        specs = [spec for spec in self._default_pools if spec.base.version == version]
        if not specs:
            raise InvalidParameter(
                f"no default IPv{version} address pools are configured: "
                "the network needs an explicit subnet"
            )
        # Called outside the lock: it may read kernel routes or files.
        reserved = list(self._reserved_networks()) if self._reserved_networks else []
        with self._lock:
            blockers = [
                (int(net.network_address), int(net.broadcast_address))
                for net in chain(reserved, (p.subnet for p in self._pools.values()))
                if net.version == version
            ]
            for spec in specs:
                subnet = carve(spec, blockers)
                if subnet is not None:
                    pool_id = f"{address_space}/{subnet}"
                    self._add_pool(pool_id, address_space, subnet, subnet)
                    return PoolGrant(pool_id, subnet)
        raise Unavailable(
            f"could not find an available, non-overlapping IPv{version} address pool among "
            "the defaults to assign to the network"
        )

    def _add_pool(
        self, pool_id: str, address_space: str, subnet: IPNetwork, ip_range: IPNetwork
    ) -> None:
        first, last = assignable_bounds(subnet)
        range_first = max(first, int(ip_range.network_address))
        range_last = min(last, int(ip_range.broadcast_address))
        self._pools[pool_id] = _Pool(address_space, subnet, first, last, range_first, range_last)

    def _delegated(self, pool_id: str) -> IpamDriver | None:
        """The global space's driver, for a pool id of that space."""
        if self._global is not None and pool_id.startswith(GLOBAL_ADDRESS_SPACE + "/"):
            return self._global
        return None

    def release_pool(self, pool_id: str) -> None:
        if (delegate := self._delegated(pool_id)) is not None:
            delegate.release_pool(pool_id)
            return
        with self._lock:
            if self._pools.pop(pool_id, None) is None:
                raise NotFound(f"pool {pool_id} not found")

    def request_address(
        self, pool_id: str, address: IPAddress | None, options: Mapping[str, str]
    ) -> IPInterface:
        if (delegate := self._delegated(pool_id)) is not None:
            return delegate.request_address(pool_id, address, options)
        with self._lock:
            pool = self._get(pool_id)
            if address is not None:
                value = self._check_explicit(pool, address)
                if value in pool.allocated:
                    raise Conflict(f"Address already in use: {address} in pool {pool.subnet}")
            else:
                if options.get(REQUEST_ADDRESS_TYPE) == REQUEST_TYPE_GATEWAY:
                    found = pool.lowest_free(pool.first, pool.last)
                else:
                    found = pool.lowest_free_in_range()
                if found is None:
                    raise Unavailable(f"no available addresses on this pool: {pool_id}")
                value = found
            pool.take(value)
            return interface_of(pool.subnet, value)

    def release_address(self, pool_id: str, address: IPAddress) -> None:
        if (delegate := self._delegated(pool_id)) is not None:
            delegate.release_address(pool_id, address)
            return
        with self._lock:
            pool = self._get(pool_id)
            if address.version == pool.subnet.version:
                pool.give_back(int(address))

    def _get(self, pool_id: str) -> _Pool:
        pool = self._pools.get(pool_id)
        if pool is None:
            raise NotFound(f"pool {pool_id} not found")
        return pool

    @staticmethod
    def _check_explicit(pool: _Pool, address: IPAddress) -> int:
        if address.version != pool.subnet.version or address not in pool.subnet:
            raise InvalidParameter(f"address {address} is not within pool {pool.subnet}")
        value = int(address)
        if not pool.first <= value <= pool.last:
            if value > pool.last:
                kind = "broadcast"
            else:
                kind = "network" if pool.subnet.version == 4 else "subnet-router anycast"
            raise InvalidParameter(
                f"address {address} is the {kind} address of {pool.subnet} and cannot be assigned"
            )
        return value


def carve(spec: PoolSpec, blockers: Sequence[tuple[int, int]]) -> IPNetwork | None:
    """The first subnet of ``spec`` overlapping none of ``blockers`` (inclusive integer
    intervals). A clash jumps straight past the blocker, so no subnet list is built."""
    step = 1 << (spec.base.max_prefixlen - spec.size)
    start = int(spec.base.network_address)
    end_of_base = int(spec.base.broadcast_address)
    while start + step - 1 <= end_of_base:
        end = start + step - 1
        clash_end = max(
            (b_end for b_start, b_end in blockers if b_start <= end and start <= b_end),
            default=None,
        )
        if clash_end is None:
            if spec.base.version == 4:
                return ipaddress.IPv4Network((start, spec.size))
            return ipaddress.IPv6Network((start, spec.size))
        start += ((clash_end - start) // step + 1) * step
    return None
