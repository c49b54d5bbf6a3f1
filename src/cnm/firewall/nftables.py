"""The firewall seam on nftables: one table per family that needs one, owned whole by cnm.

Shape (the generated documents in docs/rulesets/ show it filled in):

* ``table inet cnm`` holds the policy as a fixed set of chains whose every rule is a lookup:
  the forward hook dispatches on the input interface through the verdict map ``egress`` (a
  bridge of an internal network maps to drop), endpoints are ``bridge . address`` elements
  (anti-spoofing on egress), published ports are map elements keyed by
  ``[address .] proto . port``, ICC and masquerading are per-network set elements. Adding the
  10,000th published port or the 1,000th endpoint is one element insert into a hash set, which
  costs what the 10th did; no rule is ever added or removed after start.
* ``table bridge cnm`` holds ICC off. Frames between two ports of one bridge never reach the
  inet family's hooks unless br_netfilter is loaded, so ``enable_icc=false`` is enforced where
  every such frame passes: the bridge family's forward hook (only ARP gets through).
* Each seam call is one libnftables command buffer, which nft sends as one netlink batch: the
  kernel commits it atomically or not at all. There is no ``nft`` subprocess; the library runs
  in-process. Its netlink socket is opened when the context is made, so the context is created
  while the calling thread is inside the host namespace (the namespace current when this object
  was made, as for HostNetwork), and every call enters that namespace again (libnftables may
  reopen its socket, e.g. after EINTR).
* Sets that take per-container elements are plain hashes: nft reads a set's existing elements
  from the kernel before an insert only for interval sets (to merge ranges), so interval sets
  hold per-network data only.

Loopback publishing (``127.0.0.1:8080:80``, and 0.0.0.0 reached through 127.0.0.1) goes through
the kernel: DNAT in the output hook only, route_localnet on cnm bridges (a packet from
127.0.0.1 may leave through them; ip_route_output refuses otherwise) and masquerade to the
bridge address. The prerouting hook never translates loopback destinations, so a neighbour
with a route to 127.0.0.1 through this host reaches nothing (CVE-2020-8558), and packets to or
from 127.0.0.0/8 arriving on a cnm bridge are dropped before conntrack, since route_localnet
would otherwise let containers reach the host's loopback services. Measured with iperf3 on
this machine (bench/firewall.py, host into a container, 2 vCPUs): through 127.0.0.1 85-100 %
of the direct throughput, through the splice(2) userland relay 72-77 %, which also costs CPU
per byte. IPv6 loopback has no route_localnet, so ``[::1]`` is served by the port's relay
(portmap/proxy.py).

If someone else edits these tables (``nft flush table inet cnm``), the monitor notices and the
whole ruleset is written again from memory in one transaction; a call that fails because the
table was edited does the same.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import nftables

from cnm import faults
from cnm.errors import CnmError, Conflict, InvalidParameter
from cnm.firewall.api import EndpointRules, Firewall, NetworkRules
from cnm.firewall.docker import DockerUser
from cnm.firewall.monitor import NftMonitor
from cnm.metrics import FIREWALL_UPDATES
from cnm.model import PortMapping
from cnm.osl.namespace import NetNamespace, current_thread_namespace
from cnm.portmap.spec import PROTOCOLS

log = logging.getLogger(__name__)

TABLE = "cnm"
MAX_REWRITES = 5
REWRITE_WINDOW_S = 10.0
DOCKER_SETTLE_S = 0.5
IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")

INET_TABLE = """\
table inet cnm {
	comment "owned by cnm: written whole at start and again whenever another program edits it"

	set bridges {
		type ifname
		comment "every cnm bridge"
		elements = { @bridges }
	}

	map egress {
		type ifname : verdict
		comment "what may leave each bridge: from-network, or nothing for an internal network"
		elements = { @egress }
	}

	set icc {
		type ifname . ifname
		comment "bridge . bridge of networks whose endpoints talk to each other"
		elements = { @icc }
	}

	set masquerade4 {
		type ipv4_addr
		flags interval
		comment "subnets masqueraded on egress"
		elements = { @masquerade4 }
	}

	set masquerade6 {
		type ipv6_addr
		flags interval
		comment "subnets masqueraded on egress"
		elements = { @masquerade6 }
	}

	map snat4 {
		type ipv4_addr : ipv4_addr
		flags interval
		comment "subnet : fixed source address on egress (com.docker.network.host_ipv4)"
		elements = { @snat4 }
	}

	set endpoints4 {
		type ifname . ipv4_addr
		comment "bridge . address of every endpoint"
		elements = { @endpoints4 }
	}

	set endpoints6 {
		type ifname . ipv6_addr
		comment "bridge . address of every endpoint"
		elements = { @endpoints6 }
	}

	map ports4 {
		type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
		comment "published ports: host address . protocol . port : container address . port"
		elements = { @ports4 }
	}

	map ports4_any {
		type inet_proto . inet_service : ipv4_addr . inet_service
		comment "published on 0.0.0.0: protocol . port : container address . port"
		elements = { @ports4_any }
	}

	map ports6 {
		type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service
		comment "published ports: host address . protocol . port : container address . port"
		elements = { @ports6 }
	}

	map ports6_any {
		type inet_proto . inet_service : ipv6_addr . inet_service
		comment "published on [::]: protocol . port : container address . port"
		elements = { @ports6_any }
	}

	chain raw-prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname @bridges ip daddr 127.0.0.0/8 drop comment "route_localnet is on for cnm bridges: keep containers off the host's loopback"
		iifname @bridges ip saddr 127.0.0.0/8 drop
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname . oifname @icc accept comment "inside one network (frames bridged through br_netfilter)"
		iifname vmap @egress
		oifname @bridges goto into-network
	}

	chain from-network {
		oifname @bridges drop comment "never into another network"
		iifname . ip saddr @endpoints4 accept
		iifname . ip6 saddr @endpoints6 accept
		drop comment "a source address that is not the endpoint's own"
	}

	chain into-network {
		ct state established,related accept
		ct status dnat accept comment "a published port"
		drop comment "other networks, and hosts routing straight to container addresses"
	}

	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname @bridges return comment "containers reach published ports through the port's relay"
		ip daddr 127.0.0.0/8 return comment "loopback is the host's own: only nat-output publishes it"
		fib daddr type local goto published
	}

	chain nat-output {
		type nat hook output priority -100; policy accept;
		ip6 daddr ::1 return comment "IPv6 loopback cannot leave through a bridge: the port's relay serves it"
		fib daddr type local goto published
	}

	chain published {
		dnat ip to ip daddr . meta l4proto . th dport map @ports4
		dnat ip to meta l4proto . th dport map @ports4_any
		dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6
		dnat ip6 to meta l4proto . th dport map @ports6_any
	}

	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname @bridges ip saddr 127.0.0.0/8 masquerade comment "the host through 127.0.0.1"
		oifname @bridges return
		snat ip to ip saddr map @snat4
		ip saddr @masquerade4 masquerade
		ip6 saddr @masquerade6 masquerade
	}
}
"""

BRIDGE_TABLE = """\
table bridge cnm {
	comment "owned by cnm: ICC off, where frames between ports of one bridge pass"

	set isolated {
		type ifname
		comment "ports of endpoints on networks with ICC off"
		elements = { @isolated }
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname @isolated ether type != arp drop
	}
}
"""

SET_FAMILY = {"isolated": "bridge"}


def _name(text: str) -> str:
    if not IFNAME.match(text):
        raise InvalidParameter(f"interface name {text!r} is not one the firewall accepts")
    return f'"{text}"'


class NftError(CnmError):
    """libnftables refused a command buffer."""


Elements = dict[str, list[str]]


class NftablesFirewall(Firewall):
    """The seam on nftables, bound to the namespace current when it is made."""

    def __init__(self) -> None:
        self._namespace = current_thread_namespace()
        with self._namespace.entered():
            self._nft = nftables.Nftables()
        self._lock = threading.RLock()
        self._networks: dict[str, NetworkRules] = {}
        self._endpoints: dict[str, EndpointRules] = {}
        self._ports: dict[tuple[str, str, int], PortMapping] = {}
        self._port_ids: set[int] = set()
        self._rewrites: list[float] = []
        self._docker_timer: threading.Timer | None = None
        self._closed = False
        self._started = False
        self._docker = DockerUser(self._namespace)
        self._monitor: NftMonitor | None = None
        self._reader: nftables.Nftables | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        with self._lock:
            # Listen first: an edit made right after the write must not go unseen.
            self._monitor = NftMonitor(self._namespace, self._is_ours, self._foreign)
            self._write_all()
            self._started = True
            self._docker.refresh(self._networks)

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        with self._lock:
            if self._docker_timer is not None:
                self._docker_timer.cancel()
                self._docker_timer = None
            self._closed = True
            self._namespace.close()

    def _is_ours(self, port_id: int) -> bool:
        """Whether a transaction came through this process's libnftables socket (looked up
        again when unknown: libnftables may have reopened it)."""
        if port_id not in self._port_ids:
            self._port_ids = _netfilter_port_ids(self._namespace)
        return port_id in self._port_ids

    def _foreign(self, tables: frozenset[tuple[str, str]]) -> None:
        """Another program committed a change (monitor thread). Two programs that each keep
        rewriting the table (two cnm daemons in one namespace) would do so forever: after
        ``MAX_REWRITES`` in ``REWRITE_WINDOW_S`` this one stops answering for the window."""
        everything = ("*", "*") in tables
        if everything or any(name == TABLE for _, name in tables):
            now = time.monotonic()
            self._rewrites = [t for t in self._rewrites if now - t < REWRITE_WINDOW_S]
            if len(self._rewrites) >= MAX_REWRITES:
                log.error(
                    "cnm's nftables tables keep being changed by another program (a second "
                    "cnm daemon in this namespace?); leaving them as they are for now"
                )
                return
            self._rewrites.append(now)
            if everything:
                log.warning("missed nftables notifications (overflow); rewriting cnm's tables")
            else:
                log.warning("another program changed cnm's nftables tables; rewriting them")
            with self._lock:
                self._write_all()
        if everything or any(name == "filter" for _, name in tables):
            self._refresh_docker_soon()

    def _refresh_docker_soon(self) -> None:
        """Look for Docker's chains again once a burst of filter-table changes is over
        (dockerd makes dozens of iptables calls when it starts)."""
        with self._lock:
            if self._docker_timer is not None:
                self._docker_timer.cancel()
            self._docker_timer = threading.Timer(DOCKER_SETTLE_S, self._refresh_docker)
            self._docker_timer.daemon = True
            self._docker_timer.start()

    def _refresh_docker(self) -> None:
        with self._lock:
            self._docker_timer = None
            self._docker.refresh(self._networks)

    # ----------------------------------------------------------------- seam

    def add_network(self, rules: NetworkRules) -> None:
        _name(rules.bridge)
        with self._lock:
            if rules.bridge in self._networks:
                raise InvalidParameter(f"the firewall has network {rules.bridge} already")
            elements = _network_elements(rules)
            self._change(
                _commands("add", elements),
                lambda: self._networks.__setitem__(rules.bridge, rules),
                lambda: self._networks.pop(rules.bridge, None),
            )
            if self._started:
                self._docker.sync(self._networks)

    def remove_network(self, bridge: str) -> None:
        with self._lock:
            rules = self._networks.get(bridge)
            if rules is None:
                return
            self._change(
                _commands("delete", _network_elements(rules)),
                lambda: self._networks.pop(bridge, None),
                lambda: self._networks.__setitem__(bridge, rules),
            )
            if self._started:
                self._docker.sync(self._networks)

    def add_endpoint(self, rules: EndpointRules) -> None:
        _name(rules.port)
        with self._lock:
            network = self._networks.get(rules.bridge)
            if network is None:
                raise InvalidParameter(f"the firewall has no network {rules.bridge}")
            self._change(
                _commands("add", _endpoint_elements(rules, network)),
                lambda: self._endpoints.__setitem__(rules.port, rules),
                lambda: self._endpoints.pop(rules.port, None),
            )

    def remove_endpoint(self, port: str) -> None:
        with self._lock:
            rules = self._endpoints.get(port)
            if rules is None:
                return
            network = self._networks.get(rules.bridge)
            if network is None:  # went with its network
                self._endpoints.pop(port, None)
                return
            self._change(
                _commands("delete", _endpoint_elements(rules, network)),
                lambda: self._endpoints.pop(port, None),
                lambda: self._endpoints.__setitem__(port, rules),
            )

    def add_ports(self, bridge: str, mappings: Sequence[PortMapping]) -> None:
        with self._lock:
            network = self._networks.get(bridge)
            if network is None:
                raise InvalidParameter(f"the firewall has no network {bridge}")
            if network.internal:
                raise InvalidParameter("ports cannot be published on an internal network")
            entries = {_port_key(m): m for m in mappings}
            if len(entries) != len(mappings) or any(key in self._ports for key in entries):
                raise Conflict("a host port of these mappings is published already")
            self._change(
                _commands("add", _port_elements(mappings, with_values=True)),
                lambda: self._ports.update(entries),
                lambda: [self._ports.pop(key, None) for key in entries],
            )

    def remove_ports(self, mappings: Sequence[PortMapping]) -> None:
        with self._lock:
            known = [m for m in mappings if _port_key(m) in self._ports]
            if not known:
                return
            removed = {_port_key(m): self._ports[_port_key(m)] for m in known}
            self._change(
                _commands("delete", _port_elements(known, with_values=False)),
                lambda: [self._ports.pop(key, None) for key in removed],
                lambda: self._ports.update(removed),
            )

    def ruleset(self) -> list[dict[str, Any]]:
        """Both tables read back from the kernel through a context of its own (JSON output,
        handles on), so the writing context's settings never change."""
        with self._lock:
            if self._closed:
                raise CnmError("the firewall is closed")
            with self._namespace.entered():
                if self._reader is None:
                    self._reader = nftables.Nftables()
                    self._reader.set_json_output(True)
                    self._reader.set_handle_output(True)
                found: list[dict[str, Any]] = []
                for family in ("inet", "bridge"):
                    rc, output, error = self._reader.cmd(f"list table {family} {TABLE}")
                    if rc != 0:
                        raise NftError(f"nftables: {error.strip()}")
                    found += [o for o in json.loads(output)["nftables"] if "metainfo" not in o]
        return found

    # ----------------------------------------------------------------- transactions

    def _change(
        self, commands: str, update: Callable[[], object], undo: Callable[[], object]
    ) -> None:
        """Apply ``commands`` and record the change with ``update``. Before ``start`` only
        record it. When the kernel refuses the change (someone edited the table), rewrite
        everything with the change in; when that fails too, forget the change and raise."""
        if not self._started or not commands:
            update()
            return
        try:
            self._run(commands)
        except NftError as err:
            FIREWALL_UPDATES.labels("change", "refused").inc()
            update()
            try:
                self._write_all()
            except NftError:
                undo()
                raise err from None
            log.warning("firewall change refused (%s); rewrote the whole ruleset", err)
            return
        FIREWALL_UPDATES.labels("change", "ok").inc()
        update()

    def _write_all(self) -> None:
        """Replace both tables with the full ruleset, in one transaction."""
        with _counted("rewrite"):
            self._run(
                "\n".join(
                    [
                        f"add table inet {TABLE}",
                        f"delete table inet {TABLE}",
                        f"add table bridge {TABLE}",
                        f"delete table bridge {TABLE}",
                        self.render(),
                    ]
                )
            )

    def render(self) -> str:
        """The whole ruleset as an nft script."""
        elements: Elements = {}
        for network in self._networks.values():
            _merge(elements, _network_elements(network))
        for endpoint in self._endpoints.values():
            _merge(elements, _endpoint_elements(endpoint, self._networks[endpoint.bridge]))
        _merge(elements, _port_elements(list(self._ports.values()), with_values=True))
        text = INET_TABLE + "\n" + BRIDGE_TABLE

        def fill(match: re.Match[str]) -> str:
            found = elements.get(match[1])
            return f"elements = {{ {', '.join(found)} }}" if found else ""

        text = re.sub(r"elements = \{ @(\w+) \}", fill, text)
        return re.sub(r"\n\t\t\n", "\n", text)

    def _run(self, commands: str) -> None:
        if self._closed:  # its namespace handle is gone: never act on another namespace
            raise CnmError("the firewall is closed")
        faults.step("firewall change")
        with self._namespace.entered():
            rc, _, error = self._nft.cmd(commands)
        if rc != 0:
            raise NftError(f"nftables: {error.strip()}")


@contextmanager
def _counted(kind: str) -> Iterator[None]:
    try:
        yield
    except NftError:
        FIREWALL_UPDATES.labels(kind, "refused").inc()
        raise
    FIREWALL_UPDATES.labels(kind, "ok").inc()


def _netfilter_port_ids(namespace: NetNamespace) -> set[int]:
    """Port ids of this process's NETLINK_NETFILTER sockets in ``namespace``: the sockets'
    inodes among our descriptors, matched in the namespace's /proc/net/netlink."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    with namespace.entered(), open("/proc/thread-self/net/netlink") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return {int(row[2]) for row in rows if row[1] == "12" and int(row[9]) in inodes}


# ----------------------------------------------------------------- elements


def _merge(into: Elements, more: Elements) -> None:
    for name, values in more.items():
        into.setdefault(name, []).extend(values)


def _commands(verb: str, elements: Elements) -> str:
    return "\n".join(
        f"{verb} element {SET_FAMILY.get(name, 'inet')} {TABLE} {name} {{ {', '.join(values)} }}"
        for name, values in elements.items()
        if values
    )


def _network_elements(rules: NetworkRules) -> Elements:
    bridge = _name(rules.bridge)
    elements: Elements = {
        "bridges": [bridge],
        "egress": [f"{bridge} : {'drop' if rules.internal else 'goto from-network'}"],
        "icc": [f"{bridge} . {bridge}"] if rules.icc else [],
    }
    if rules.internal or not rules.masquerade:
        return elements
    for subnet in rules.subnets:
        if subnet.version == 4 and rules.snat_ipv4 is not None:
            elements.setdefault("snat4", []).append(f"{subnet} : {rules.snat_ipv4}")
        else:
            elements.setdefault(f"masquerade{subnet.version}", []).append(str(subnet))
    return elements


def _endpoint_elements(rules: EndpointRules, network: NetworkRules) -> Elements:
    bridge = _name(rules.bridge)
    elements: Elements = {"isolated": [] if network.icc else [_name(rules.port)]}
    for address in rules.addresses:
        elements.setdefault(f"endpoints{address.version}", []).append(f"{bridge} . {address}")
    return elements


def _port_key(mapping: PortMapping) -> tuple[str, str, int]:
    return mapping.proto, str(mapping.host_ip), mapping.host_port


def _port_elements(mappings: Sequence[PortMapping], *, with_values: bool) -> Elements:
    """Map elements for the mappings the kernel translates: the host and container address of
    one family, and no IPv6 loopback (the relay's)."""
    elements: Elements = {}
    for m in mappings:
        if m.proto not in PROTOCOLS:
            raise InvalidParameter(f"unknown protocol {m.proto!r}")
        if m.host_ip.version != m.container_ip.version or (
            m.host_ip.version == 6 and m.host_ip.is_loopback
        ):
            continue
        name = f"ports{m.host_ip.version}"
        key = f"{m.proto} . {m.host_port}"
        if m.host_ip.is_unspecified:
            name += "_any"
        else:
            key = f"{m.host_ip} . {key}"
        value = f" : {m.container_ip} . {m.container_port}" if with_values else ""
        elements.setdefault(name, []).append(key + value)
    return elements
