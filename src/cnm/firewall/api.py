"""The firewall seam: what a network driver tells the firewall, and what it promises.

A driver reports the facts of its kernel objects: a network's bridge with its policy, an
endpoint's host-side port and addresses, a published port's mapping. The firewall turns them
into packet policy:

* isolation: nothing crosses from one network's bridge to another's, in either direction;
* ICC: endpoints of one network talk freely unless ``icc`` is off (then only ARP passes);
* egress: endpoints of a non-internal network reach anything beyond the host, with their
  source masqueraded (or rewritten to ``snat_ipv4``); an endpoint may only send from its own
  addresses; an internal network's traffic never leaves its bridge;
* ingress: only replies and published ports reach an endpoint from outside its network;
  traffic routed straight to a container address from another host is dropped;
* published ports: ``host_ip:host_port`` (0.0.0.0 / :: meaning every host address) leads to
  the container; loopback addresses only from the host itself.

``ruleset`` is the seam's one read: the tables as the kernel holds them now, for tools that
explain a verdict (``cnm explain``) by the rules that make it.

Every call is one atomic change: it happens whole or not at all. Calls made before ``start``
are remembered and written together by it, so a restarting daemon replaces the previous run's
rules in one step and never leaves its containers unprotected in between.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnm.model import IPAddress, PortMapping

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NetworkRules:
    bridge: str
    subnets: tuple[IPNetwork, ...] = ()
    internal: bool = False
    icc: bool = True
    masquerade: bool = True
    snat_ipv4: ipaddress.IPv4Address | None = None  # com.docker.network.host_ipv4


@dataclass(frozen=True)
class EndpointRules:
    bridge: str
    port: str  # the endpoint's interface on the bridge (the host end of its veth)
    addresses: tuple[IPAddress, ...] = ()


class Firewall(ABC):
    @abstractmethod
    def start(self) -> None:
        """Write everything added so far in one transaction, replacing what an earlier run
        left; from then on keep it written (re-apply when someone else edits it)."""

    @abstractmethod
    def close(self) -> None:
        """Stop watching; the rules stay, so running containers keep working."""

    @abstractmethod
    def add_network(self, rules: NetworkRules) -> None: ...

    @abstractmethod
    def remove_network(self, bridge: str) -> None: ...

    @abstractmethod
    def add_endpoint(self, rules: EndpointRules) -> None: ...

    @abstractmethod
    def remove_endpoint(self, port: str) -> None: ...

    @abstractmethod
    def add_ports(self, bridge: str, mappings: Sequence[PortMapping]) -> None: ...

    @abstractmethod
    def remove_ports(self, mappings: Sequence[PortMapping]) -> None: ...

    @abstractmethod
    def ruleset(self) -> list[dict[str, Any]]:
        """Read-only: cnm's own tables as the kernel holds them now, as the objects of
        libnftables' JSON output (``nft -j -a list table``): each a one-key dict, ``table``,
        ``set``, ``map`` (with their elements), ``chain`` or ``rule`` (with its handle)."""
