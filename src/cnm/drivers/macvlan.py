"""The macvlan driver: each container gets a child of a host interface (the parent), with a MAC
of its own, straight on the parent's LAN. Docker's options and rules (libnetwork 20.10's
drivers/macvlan), where the kernel lets them hold:

* Options: ``parent`` (a host interface), ``macvlan_mode`` = bridge (default) | vepa |
  private | passthru, and ``com.docker.network.driver.mtu`` (the children's MTU, at most the
  parent's; Docker ignores it, cnm honours it). Any other option is refused.
* The gateway is the LAN's router, outside the host: IPAM reserves it (the first usable
  address when none is given) and no host interface carries it. Containers get their default
  route through it, unless the network is ``--internal`` or has no parent.
* One network per parent, whatever its mode; a second one is refused (Docker's rule, checked
  in ``createNetwork``).
* No ``parent``: the children hang off a placeholder link of cnm's own, ``dm-<12 hex of the
  network id>`` as Docker names its dummy link. This kernel has no dummy driver, so the
  placeholder is a Linux bridge with no ports: it is always up with carrier on (an empty bridge
  has no port whose carrier it follows), which macvlan children need to pass frames to each
  other; what they send to the bridge itself goes nowhere. One end of a veth pair would not
  do: with its peer down it has no carrier and the children none either, and with its peer up
  it costs two links. Containers on such a network reach only each other and get no default
  route (the gateway address would be unreachable: there is no LAN).
* ``parent=eth0.50`` where no such link exists: the 802.1Q sub-interface (VLAN 50 on eth0,
  1-4094) is created with the network and deleted with it, as Docker does. A kernel without
  802.1Q (this one has none) gets a clear error naming it, and nothing is made.
* ``passthru`` gives the parent whole to one container: the child takes the parent's MAC (the
  kernel's rule), so ``--mac-address`` is refused, and a second container is refused.
* The placeholder and sub-interfaces carry the alias ``cnm:macvlan:<network id>``; ``restore``
  deletes those no record names and recreates missing ones. The children live only inside
  sandboxes, where the sandbox's deletion takes them; the controller removes those a crash
  left without a record.
* ``-p`` on a macvlan network publishes nothing: Docker 20.10's driver logs "macvlan driver
  does not support port mappings" and goes on, and so does cnm. The containers' own addresses
  are on the LAN already.
* Firewall: none. A macvlan child's frames leave through the parent's driver and arrive
  through the parent's rx_handler, which hands frames for a child's MAC to the child before the
  host's IP stack (and its netfilter hooks) sees them; Docker programs no iptables rules for
  macvlan either. The same bypass is the known limitation: the host cannot reach its own
  containers through the parent (the kernel does not loop a child's frames back to the parent
  itself); the usual workaround is a macvlan child on the host side (README).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnm import validate
from cnm.driverapi import (
    Capability,
    EndpointInfo,
    EndpointSpec,
    IpamData,
    JoinInfo,
    NetworkDriver,
    NetworkSpec,
    Scope,
    mac_from_ip,
)
from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound, Unavailable
from cnm.model import PortMapping, PortRequest
from cnm.osl.links import MACVLAN_MODES, HostNetwork, LinkDetails, sandbox_network, write_sysctl
from cnm.osl.namespace import NetNamespace

log = logging.getLogger(__name__)

OPT_PARENT = "parent"
OPT_MODE = "macvlan_mode"
OPT_MTU = "com.docker.network.driver.mtu"
OPTIONS = (OPT_PARENT, OPT_MODE, OPT_MTU)
DEFAULT_MODE = "bridge"
TAG = "cnm:macvlan:"
PLACEHOLDER_PREFIX = "dm-"
VLAN_IDS = range(1, 4095)
NO_8021Q = (
    "this kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q, module 8021q), so cnm cannot "
    "create the sub-interface {name} (VLAN {vlan} on {base}): load the module "
    "(modprobe 8021q) on a kernel that has it, or give an existing interface as parent"
)


@dataclass(frozen=True)
class MacvlanOptions:
    parent: str | None  # None: a placeholder link of cnm's own
    mode: str
    mtu: int | None


def parse_options(options: Mapping[str, str]) -> MacvlanOptions:
    """The driver's options, checked as far as they can be without the kernel."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidParameter(
            f"unknown option {unknown[0]!r} for the macvlan driver: it takes " + ", ".join(OPTIONS)
        )
    mode = options.get(OPT_MODE) or DEFAULT_MODE
    if mode not in MACVLAN_MODES:
        raise InvalidParameter(
            f"requested macvlan mode '{mode}' is not valid, 'bridge' mode is the macvlan driver "
            "default (modes: " + ", ".join(MACVLAN_MODES) + ")"
        )
    parent = options.get(OPT_PARENT) or None
    if parent is not None:
        if parent == "lo":
            raise InvalidParameter("loopback interface is not a valid macvlan parent link")
        validate.interface_name(parent, "parent interface name")
    mtu = validate.mtu(options[OPT_MTU]) if OPT_MTU in options else None
    return MacvlanOptions(parent, mode, mtu)


def parse_vlan(name: str) -> tuple[str, int]:
    """``eth0.50`` -> ("eth0", 50): a sub-interface name as Docker reads it."""
    parts = name.split(".")
    if len(parts) != 2 or not parts[0]:
        raise InvalidParameter(
            "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, "
            f"instead received {name}"
        )
    base, text = parts
    if not (text.isascii() and text.isdigit()):
        raise InvalidParameter(
            f"unable to parse a valid vlan id from: {text} (ex. eth0.10 for vlan 10)"
        )
    vlan = int(text)
    if vlan not in VLAN_IDS:
        raise InvalidParameter(f"vlan id must be between 1-4094, received: {vlan}")
    return base, vlan


def placeholder_name(network_id: str) -> str:
    return PLACEHOLDER_PREFIX + network_id[:12]


@dataclass
class _MacvlanNetwork:
    spec: NetworkSpec
    parent: str
    mode: str
    mtu: int | None
    placeholder: bool  # the parent is cnm's placeholder: no LAN, no gateway
    made_parent: bool  # the parent link is cnm's (placeholder or sub-interface): deleted with it


@dataclass
class _MacvlanEndpoint:
    network_id: str
    mac: str
    address: ipaddress.IPv4Interface | None
    address_v6: ipaddress.IPv6Interface | None
    sandbox_key: str | None = None  # where the child lives once joined
    ifname: str | None = None


class MacvlanDriver(NetworkDriver):
    name = "macvlan"

    def __init__(self, host: HostNetwork) -> None:
        self.host = host
        self._networks: dict[str, _MacvlanNetwork] = {}
        self._endpoints: dict[str, _MacvlanEndpoint] = {}
        self._lock = threading.Lock()

    def configure(self, config: Mapping[str, Any]) -> None:
        return None

    def capabilities(self) -> Capability:
        # As libnetwork: state is local, the LAN reaches across hosts.
        return Capability(Scope.LOCAL, Scope.GLOBAL)

    def validate_network_options(self, options: Mapping[str, str]) -> None:
        parse_options(options)

    def _network(self, network_id: str) -> _MacvlanNetwork:
        with self._lock:
            network = self._networks.get(network_id)
        if network is None:
            raise NotFound(f"macvlan network {network_id[:12]} not found")
        return network

    def _endpoint(self, endpoint_id: str) -> _MacvlanEndpoint:
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"macvlan endpoint {endpoint_id[:12]} not found")
        return endpoint

    # ----------------------------------------------------------------- networks

    def create_network(self, spec: NetworkSpec) -> None:
        options = parse_options(spec.options)
        if not spec.ipv4:
            raise InvalidParameter("ipv4 pool is empty: a macvlan network needs an IPv4 subnet")
        parent = options.parent or placeholder_name(spec.network_id)
        with self._lock:
            holder = next((n for n in self._networks.values() if n.parent == parent), None)
        if holder is not None:
            raise Conflict(
                f"network {holder.spec.name} is already using parent interface {parent}: "
                "the macvlan driver takes one network per parent"
            )
        if options.parent is None:
            self._make_placeholder(spec.network_id, options.mtu)
            made = True
        else:
            made = self._find_or_make_parent(spec.network_id, options)
        with self._lock:
            self._networks[spec.network_id] = _MacvlanNetwork(
                spec, parent, options.mode, options.mtu, options.parent is None, made
            )

    def _make_placeholder(self, network_id: str, mtu: int | None) -> int:
        """The bridge with no ports that stands in for a parent (module note), IPv6 off (it
        would only send router solicitations into nothing), up."""
        name = placeholder_name(network_id)
        self._wait_if_doomed(name)
        index = self.host.create_bridge(name, mtu=mtu, alias=TAG + network_id)
        try:
            with self.host.inside():
                write_sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
            self.host.links.set_up(index)
        except Exception:
            self.host.links.delete(index)
            raise
        return index

    def _wait_if_doomed(self, name: str) -> None:
        """A link of ours by that name may be a deleted network's, on its way out."""
        found = self.host.links.details(name)
        if found is not None and (found.alias or "").startswith(TAG):
            self.host.drain_deletions()

    def _find_or_make_parent(self, network_id: str, options: MacvlanOptions) -> bool:
        """Check the parent, creating it if it is an 802.1Q sub-interface that does not exist
        yet; True if cnm made it."""
        assert options.parent is not None
        name = options.parent
        self._wait_if_doomed(name)
        found = self.host.links.details(name)
        if found is not None:
            self._check_parent(found, options.mtu)
            return False
        if "." not in name:
            raise InvalidParameter(
                f"the requested parent interface {name} was not found on the host"
            )
        base_name, vlan = parse_vlan(name)
        base = self.host.links.details(base_name)
        if base is None:
            raise InvalidParameter(
                f"the parent of sub-interface {name}, {base_name}, was not found on the host"
            )
        self._check_parent(base, options.mtu)
        if not self.host.supports_link_kind("vlan"):
            raise CnmError(NO_8021Q.format(name=name, vlan=vlan, base=base_name))
        self.host.create_vlan(name, parent=base.index, vlan_id=vlan, alias=TAG + network_id)
        return True

    @staticmethod
    def _check_parent(parent: LinkDetails, mtu: int | None) -> None:
        if parent.loopback:
            raise InvalidParameter("loopback interface is not a valid macvlan parent link")
        if mtu is not None and mtu > parent.mtu:
            raise InvalidParameter(
                f"MTU {mtu} is larger than the MTU of parent interface {parent.name} "
                f"({parent.mtu}): a macvlan link cannot exceed its parent"
            )

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            network = self._networks.pop(network_id, None)
        if network is not None and network.made_parent:
            self._delete_made_parent(network.parent, network_id)

    def _delete_made_parent(self, name: str, network_id: str) -> None:
        found = self.host.links.details(name)
        if found is not None and found.alias == TAG + network_id:
            self.host.delete_link_later(found.index)

    # ----------------------------------------------------------------- endpoints

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        network = self._network(spec.network_id)
        if spec.address is None:
            raise InvalidParameter("create endpoint was not passed an IP address")
        if network.mode == "passthru":
            if spec.mac_address is not None:
                raise InvalidParameter(
                    f"a MAC address cannot be chosen on network {network.spec.name}: in "
                    "passthru mode the container's interface takes its parent's MAC"
                )
            mac = self._parent(network).mac or ""
        else:
            mac = spec.mac_address or mac_from_ip(spec.address.ip)
        with self._lock:
            self._endpoints[spec.endpoint_id] = _MacvlanEndpoint(
                spec.network_id, mac, spec.address, spec.address_v6
            )
        return EndpointInfo(mac_address=mac)

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            self._endpoints.pop(endpoint_id, None)

    def _parent(self, network: _MacvlanNetwork) -> LinkDetails:
        found = self.host.links.details(network.parent)
        if found is None:
            raise Unavailable(
                f"parent interface {network.parent} of network {network.spec.name} is gone "
                "from the host"
            )
        return found

    # ----------------------------------------------------------------- join / leave

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None, ifname: str
    ) -> JoinInfo:
        if sandbox_key is None:
            raise InvalidParameter("the macvlan driver needs a sandbox namespace to join")
        network = self._network(network_id)
        endpoint = self._endpoint(endpoint_id)
        parent = self._parent(network)
        sandbox = NetNamespace(sandbox_key)
        try:
            self.host.create_macvlan(
                ifname,
                sandbox,
                parent=parent.index,
                mode=network.mode,
                mac=None if network.mode == "passthru" else endpoint.mac,
                mtu=network.mtu,
            )
        except InvalidParameter as err:
            raise self._refusal(network, err) from err
        finally:
            sandbox.close()
        with self._lock:
            endpoint.sandbox_key, endpoint.ifname = sandbox_key, ifname
        spec = network.spec
        if spec.internal or network.placeholder:
            return JoinInfo(mtu=network.mtu)
        return JoinInfo(
            gateway=_gateway(spec.ipv4, endpoint.address),
            gateway_v6=_gateway(spec.ipv6, endpoint.address_v6),
            mtu=network.mtu,
        )

    @staticmethod
    def _refusal(network: _MacvlanNetwork, err: CnmError) -> CnmError:
        if network.mode == "passthru":
            return Conflict(
                f"parent interface {network.parent} of network {network.spec.name} is taken: "
                "passthru mode gives the parent to one container (or the parent has macvlan "
                "links made outside cnm)"
            )
        return InvalidParameter(
            f"the kernel refused a {network.mode}-mode macvlan link on {network.parent} "
            f"(another mode's links on the same parent rule it out): {err}"
        )

    def leave(self, network_id: str, endpoint_id: str, *, namespace_deleted: bool = False) -> None:
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None:
                return
            where = (endpoint.sandbox_key, endpoint.ifname)
            endpoint.sandbox_key = endpoint.ifname = None
        sandbox_key, ifname = where
        if namespace_deleted or sandbox_key is None or ifname is None:
            return
        try:
            with sandbox_network(sandbox_key) as sandbox_net:
                index = sandbox_net.links.index_of(ifname)
                if index is not None:
                    sandbox_net.links.delete(index)
        except FileNotFoundError:
            return  # the sandbox is gone, and its links with it

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, ports: Sequence[PortRequest]
    ) -> list[PortMapping]:
        if ports:
            log.warning(
                "macvlan driver does not support port mappings: endpoint %s publishes nothing",
                endpoint_id[:12],
            )
        return []

    def network_info(self, network_id: str) -> Mapping[str, str]:
        with self._lock:
            network = self._networks.get(network_id)
        return {OPT_PARENT: network.parent} if network else {}

    # ----------------------------------------------------------------- restart

    def restore(self, networks: list[NetworkSpec], endpoints: list[EndpointSpec]) -> None:
        wanted = {spec.network_id: spec for spec in networks}
        tagged: dict[str, str] = {}  # network id -> the name of its link
        for link in list(self.host.links.summaries()):
            if not (link.alias or "").startswith(TAG):
                continue
            network_id = (link.alias or "").removeprefix(TAG)
            if network_id in wanted:
                tagged[network_id] = link.name
            else:
                log.warning("removing %s: no macvlan network names it", link.name)
                self.host.links.delete(link.index)
        for spec in networks:
            options = parse_options(spec.options)
            parent = options.parent or placeholder_name(spec.network_id)
            made = spec.network_id in tagged
            if not made:
                made = self._restore_missing_parent(spec, options)
            self._networks[spec.network_id] = _MacvlanNetwork(
                spec, parent, options.mode, options.mtu, options.parent is None, made
            )
        for endpoint in endpoints:
            if endpoint.network_id not in self._networks:
                raise CnmError(f"endpoint {endpoint.endpoint_id[:12]} names an unknown network")
            self._endpoints[endpoint.endpoint_id] = _MacvlanEndpoint(
                endpoint.network_id,
                endpoint.mac_address or "",
                endpoint.address,
                endpoint.address_v6,
                sandbox_key=endpoint.sandbox_key if endpoint.joined else None,
                ifname=endpoint.ifname if endpoint.joined else None,
            )

    def _restore_missing_parent(self, spec: NetworkSpec, options: MacvlanOptions) -> bool:
        """Recreate a placeholder or sub-interface of cnm's that vanished; a parent of the
        user's that is gone is reported (joins fail until it is back). Children of a vanished
        parent went with it: their containers need connecting again."""
        if options.parent is None:
            self._make_placeholder(spec.network_id, options.mtu)
            return True
        if self.host.links.index_of(options.parent) is not None:
            return False
        try:
            return self._find_or_make_parent(spec.network_id, options)
        except CnmError as err:
            log.error("macvlan network %s has no parent: %s", spec.name, err)
            return False


def _gateway(
    pools: Sequence[IpamData],
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The gateway of the pool holding ``address`` (a network may have several subnets)."""
    if address is None:
        return None
    for data in pools:
        if address.ip in data.pool and data.gateway is not None:
            return data.gateway.ip
    return None
