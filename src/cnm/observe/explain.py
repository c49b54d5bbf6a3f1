"""``cnm explain A B[:port[/proto]]``: can A reach B, and why.

The answer is decided from what cnm holds, never by sending anything:

* the model (``topology``): which sandbox owns which address on which network, which
  interface carries its default route, which ports are published where;
* the kernel's routing, asked read-only (``osl.routes``: ``ip route get`` in A's namespace and
  in the host's), so the path is the one a packet would take;
* cnm's nftables tables read back through the firewall seam (``Firewall.ruleset``) and walked
  rule by rule (``nftrules``), so each decision names the rule that makes it by
  family/table/chain/handle, as ``nft -a list table`` shows it.

The walk follows the packet the kernel's way (netfilter's hooks in order): out of A (its
routes), across A's bridge (frames between two ports of one bridge pass only the bridge
family's forward hook, where ICC off lives; br_netfilter, when loaded, also sends them through
the inet forward hook), or up to the host: prerouting (raw, then DNAT of published ports), the
routing decision (local: input; else forward), forward, postrouting (masquerade). From the host
itself: output's DNAT (published ports on 127.0.0.1 and host addresses), then routing.

A host address reached from a container or from outside lands on the host's own stack: cnm
owns no input chain, so cnm lets it in; if the port is one cnm publishes, the port's socket
(bound to the published host address) answers and relays to the container, so the address
must be that one (or the unspecified one). Whether some other program listens on a host port
is not cnm's to know: the answer says the packet is delivered.

DNS is answered from the model with Docker's rule: the embedded resolver of a container on a
user-defined network answers the names (container name, aliases) of containers on the
networks it shares with the asker; on the default bridge and from the host, names do not
resolve, and B's first address is used (and said so).

``reachable`` is the verdict; ``exit code`` 0 when reachable, 1 when not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnm.errors import CnmError, InvalidParameter, NotFound
from cnm.observe.nftrules import RuleRef, Ruleset, UnknownExpression, Verdict
from cnm.observe.topology import Interface, NetworkNode, SandboxNode, Topology, build_topology
from cnm.osl.namespace import NetNamespace
from cnm.osl.routes import RouteLookup, lookup_route

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.runtime.runtime import Runtime

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PROTOCOLS = ("tcp", "udp", "sctp")
Router = Callable[[str | None, str], RouteLookup]  # (namespace path or None: host, address)


@dataclass
class Step:
    """One stage of the path: where the packet is, what happens, and the rule if one
    decides it."""

    where: str
    text: str
    rule: RuleRef | None = None
    verdict: str = ""  # "accept", "drop" or "" for a step that decides nothing

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "text": self.text,
            "verdict": self.verdict,
            "rule": self.rule.to_dict() if self.rule else None,
        }


@dataclass
class Explanation:
    source: str
    target: str
    address: str  # the destination address the packet carries
    proto: str
    port: int | None
    reachable: bool = False
    reason: str = ""
    dns: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    deciding: RuleRef | None = None
    suggestions: list[str] = field(default_factory=list)
    delivered_to: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "Source": self.source,
            "Target": self.target,
            "Address": self.address,
            "Proto": self.proto,
            "Port": self.port,
            "Reachable": self.reachable,
            "Reason": self.reason,
            "DNS": self.dns,
            "Path": [s.to_dict() for s in self.steps],
            "DecidingRule": self.deciding.to_dict() if self.deciding else None,
            "Suggestions": self.suggestions,
            "DeliveredTo": self.delivered_to,
        }


@dataclass(frozen=True)
class Side:
    """One side of the question: a sandbox, the host, or an address outside."""

    kind: str  # "sandbox", "host", "outside"
    label: str
    sandbox: SandboxNode | None = None
    address: IPAddress | None = None


def parse_target(text: str) -> tuple[str, int | None, str]:
    """``B[:port[/proto]]`` (``[v6]:port``); the reference, the port and the protocol."""
    proto = "tcp"
    ref, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise InvalidParameter(f"invalid target {text!r}: no closing ]")
        ref, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidParameter(f"invalid target {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        ref, port_text = text.split(":")
    if "/" in port_text:
        port_text, proto = port_text.split("/", 1)
        proto = proto.lower()
        if proto not in PROTOCOLS:
            raise InvalidParameter(f"invalid protocol {proto!r}: use tcp, udp or sctp")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidParameter(f"invalid port {port_text!r}: a number from 1 to 65535")
        port = int(port_text)
    if not ref:
        raise InvalidParameter(f"invalid target {text!r}: no name or address")
    return ref, port, proto


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("/")[0])
    except ValueError:
        return None


class Explainer:
    """One question over one snapshot of the model, the ruleset and the routes."""

    def __init__(
        self,
        topology: Topology,
        ruleset: Ruleset,
        router: Router,
        resolve_container: Callable[[str], str | None],
        embedded_dns: Callable[[str], bool],
        bridge_netfilter: bool = False,
    ) -> None:
        self.topology = topology
        self.rules = ruleset
        self.router = router
        self.resolve_container = resolve_container  # container/sandbox ref -> sandbox id
        self.embedded_dns = embedded_dns  # sandbox id -> uses the embedded resolver
        self.bridge_netfilter = bridge_netfilter
        self.networks = {n.id: n for n in topology.networks}
        self.bridges = {n.device: n for n in topology.networks if n.device}

    # ----------------------------------------------------------------- who is who

    def _sandbox(self, ref: str) -> SandboxNode | None:
        sandbox_id = self.resolve_container(ref)
        for sandbox in self.topology.sandboxes:
            if sandbox.id == sandbox_id or ref in (sandbox.name, *sandbox.containers):
                return sandbox
        return None

    def _owner(self, address: IPAddress) -> tuple[SandboxNode, Interface] | None:
        for sandbox in self.topology.sandboxes:
            for interface in sandbox.interfaces:
                if address in (_ip(interface.ipv4), _ip(interface.ipv6)):
                    return sandbox, interface
        return None

    def side(self, ref: str) -> Side:
        if ref == "host":
            return Side("host", "the host")
        address = _ip(ref)
        if address is not None:
            owner = self._owner(address)
            if owner is not None:
                return Side("sandbox", owner[0].name, owner[0], address)
            return Side("outside", str(address), None, address)
        sandbox = self._sandbox(ref)
        if sandbox is None:
            raise NotFound(f"No such container: {ref}")
        if sandbox.host_network:
            return Side("host", f"{sandbox.name} (host network)")
        return Side("sandbox", sandbox.name, sandbox)

    # ----------------------------------------------------------------- the question

    def explain(self, source_ref: str, target: str, version: int | None = None) -> Explanation:
        ref, port, proto = parse_target(target)
        source = self.side(source_ref)
        destination = self.side(ref)
        result = Explanation(source.label, destination.label, "", proto, port)
        address = self._destination_address(source, destination, ref, version, result)
        if address is None:
            return result
        result.address = str(address)
        packet: dict[str, Any] = {
            "family": "ip" if address.version == 4 else "ip6",
            "l4proto": proto,
            "th.dport": port,
            "ct.state": ["new"],
            "ct.status": [],
        }
        if source.kind == "sandbox":
            assert source.sandbox is not None
            self._from_sandbox(source.sandbox, address, packet, result)
        elif source.kind == "host":
            self._from_host(address, packet, result)
        else:
            assert source.address is not None
            self._from_outside(source.address, address, packet, result)
        if result.reachable:
            result.reason = f"{result.source} reaches {result.delivered_to}"
        return result

    def _destination_address(
        self,
        source: Side,
        destination: Side,
        ref: str,
        version: int | None,
        result: Explanation,
    ) -> IPAddress | None:
        if destination.address is not None:
            return destination.address
        if destination.kind == "host":
            address = self._host_address(source, version)
            if address is None:
                self._fail(result, "host", f"{source.label} has no address of the host to reach")
            return address
        assert destination.sandbox is not None
        target = destination.sandbox
        addresses = self._addresses(target, version)
        if not addresses:
            self._fail(result, target.name, f"{target.name} has no address on any network")
            result.suggestions.append(f"connect {target.name} to a network")
            return None
        answer = None
        why = ""
        if source.kind == "sandbox" and source.sandbox is not None:
            shared = self._shared_user_networks(source.sandbox, target)
            if not self.embedded_dns(source.sandbox.id):
                why = (
                    f"{source.label} does not use the embedded DNS (it is not on a user-defined "
                    "network): names of containers do not resolve there"
                )
            elif not shared:
                why = (
                    f"{ref} is not on a user-defined network {source.label} is on: the "
                    "embedded DNS answers NXDOMAIN"
                )
            else:
                network, interface = shared[0]
                answer = _ip(interface.ipv6 if version == 6 else interface.ipv4)
                if answer is None:
                    answer = _ip(interface.ipv4 or interface.ipv6)
                why = f"the embedded DNS answers {ref} from network {network.name}"
        else:
            why = f"the host does not resolve container names; {ref}'s own address is used"
        result.dns = {
            "Name": ref,
            "Answer": str(answer) if answer else None,
            "Why": why,
        }
        return answer or addresses[0]

    def _addresses(self, sandbox: SandboxNode, version: int | None) -> list[IPAddress]:
        found = []
        for interface in sandbox.interfaces:
            for text in (interface.ipv4, interface.ipv6):
                address = _ip(text) if text else None
                if address is not None and version in (None, address.version):
                    found.append(address)
        if version is None:
            found.sort(key=lambda a: a.version)
        return found

    def _host_address(self, source: Side, version: int | None) -> IPAddress | None:
        """The host as a sandbox sees it: its gateway; from outside or the host: loopback."""
        if source.kind == "sandbox" and source.sandbox is not None:
            for interface in source.sandbox.interfaces:
                network = self.networks.get(interface.network_id)
                for gateway in network.gateways if network else []:
                    address = _ip(gateway)
                    if address is not None and version in (None, address.version):
                        return address
            return None
        return ipaddress.ip_address("::1" if version == 6 else "127.0.0.1")

    def _shared_user_networks(
        self, source: SandboxNode, target: SandboxNode
    ) -> list[tuple[NetworkNode, Interface]]:
        mine = {i.network_id for i in source.interfaces}
        shared = []
        for interface in target.interfaces:
            network = self.networks.get(interface.network_id)
            if network is None or interface.network_id not in mine:
                continue
            if network.name in ("bridge", "host", "none"):
                continue
            shared.append((network, interface))
        return shared

    # ----------------------------------------------------------------- the walks

    def _fail(
        self, result: Explanation, where: str, text: str, rule: RuleRef | None = None
    ) -> None:
        result.steps.append(Step(where, text, rule, "drop"))
        result.reachable = False
        result.reason = text
        result.deciding = rule

    def _deliver(self, result: Explanation, where: str, text: str, to: str) -> None:
        result.steps.append(Step(where, text, None, "accept"))
        result.reachable = True
        result.delivered_to = to

    def _rule_step(self, result: Explanation, where: str, verdict: Verdict, what: str) -> bool:
        """Record a hook's verdict; True when it lets the packet on."""
        sentence = verdict.rule.comment or _sentence(verdict.rule)
        text = f"{what}: {verdict.verdict} by {verdict.rule.where} ({verdict.rule.text})"
        if sentence:
            text += f" — {sentence}"
        if verdict.verdict == "drop":
            self._fail(result, where, text, verdict.rule)
            return False
        result.steps.append(Step(where, text, verdict.rule, "accept"))
        result.deciding = verdict.rule
        return True

    def _from_sandbox(
        self, source: SandboxNode, address: IPAddress, packet: dict[str, Any], result: Explanation
    ) -> None:
        if address.is_loopback or address in self._addresses(source, None):
            self._deliver(result, source.name, f"{address} is {source.name}'s own", source.name)
            return
        route = self.router(source.key, str(address))
        if route.kind == "unreachable" or not route.device:
            network = self._network_of(address)
            self._fail(result, source.name, f"{source.name} has no route to {address}")
            if network is not None:
                result.suggestions.append(f"connect {source.name} to {network.name}")
            elif not any(i.gateway4 or i.gateway6 for i in source.interfaces):
                result.suggestions.append(
                    f"{source.name} has no default route (its networks are internal, or it has "
                    "none): connect it to a network that is not internal"
                )
            return
        interface = next((i for i in source.interfaces if i.ifname == route.device), None)
        network = self.networks.get(interface.network_id) if interface else None
        if interface is None or network is None:
            self._fail(
                result,
                source.name,
                f"{source.name} would send through {route.device}, which no cnm network owns",
            )
            return
        if network.driver != "bridge":
            raise InvalidParameter(
                f"explain follows the bridge driver's networks; {source.name} would send "
                f"through network {network.name}, a {network.driver} network, whose frames "
                "leave through its parent interface before netfilter sees them"
            )
        source_ip = _ip(interface.ipv4 if address.version == 4 else interface.ipv6)
        if source_ip is None:
            self._fail(
                result, source.name, f"{interface.ifname} has no IPv{address.version} address"
            )
            return
        packet[f"{packet['family']}.saddr"] = str(source_ip)
        packet[f"{packet['family']}.daddr"] = str(address)
        via = f"via {route.gateway}" if route.gateway else "on-link"
        result.steps.append(
            Step(
                source.name,
                f"{source.name} sends from {source_ip} out of {interface.ifname} ({via}) over "
                f"veth {interface.host_interface} into bridge {network.device} "
                f"(network {network.name})",
            )
        )
        if route.gateway is None and not self._is_gateway(network, address):
            self._bridged(source, interface, network, address, packet, result)
            return
        packet["iifname"] = network.device
        self._host_receives(network.device, address, packet, result)

    def _is_gateway(self, network: NetworkNode, address: IPAddress) -> bool:
        return any(_ip(g) == address for g in network.gateways)

    def _network_of(self, address: IPAddress) -> NetworkNode | None:
        for network in self.topology.networks:
            for subnet in network.subnets:
                if address in ipaddress.ip_network(subnet, strict=False):
                    return network
        return None

    def _bridged(
        self,
        source: SandboxNode,
        interface: Interface,
        network: NetworkNode,
        address: IPAddress,
        packet: dict[str, Any],
        result: Explanation,
    ) -> None:
        owner = self._owner(address)
        if owner is None or owner[1].network_id != network.id:
            self._fail(result, network.device, f"nothing on network {network.name} has {address}")
            return
        target, target_interface = owner
        frame = {
            **packet,
            "iifname": interface.host_interface,
            "oifname": target_interface.host_interface,
            "ether.type": packet["family"],
        }
        verdict = self.rules.run_hook("bridge", "forward", frame)
        if not self._rule_step(result, network.device, verdict, "bridge forward hook"):
            result.suggestions.append(
                f"network {network.name} has ICC off (com.docker.network.bridge.enable_icc="
                f"false): put {source.name} and {target.name} on a network with ICC on"
            )
            return
        if self.bridge_netfilter:
            frame = {**packet, "iifname": network.device, "oifname": network.device}
            verdict = self.rules.run_hook("inet", "forward", frame, "filter")
            if not self._rule_step(result, network.device, verdict, "inet forward (br_netfilter)"):
                return
        self._deliver(
            result,
            target.name,
            f"bridged to {target_interface.host_interface}: {target.name}'s "
            f"{target_interface.ifname} has {address}",
            target.name,
        )

    def _host_receives(
        self, iif: str, address: IPAddress, packet: dict[str, Any], result: Explanation
    ) -> None:
        """A packet arriving at the host on ``iif``: prerouting, routing, forward or input."""
        packet["fib.daddr.type"] = self._fib_type(address)
        verdict = self.rules.run_hook("inet", "prerouting", packet)
        if not self._rule_step(result, "host", verdict, "prerouting"):
            if address.is_loopback:
                result.suggestions.append("a container reaches the host through its gateway")
            return
        destination = address
        port = packet.get("th.dport")
        if verdict.nat and verdict.nat.get("kind") == "dnat":
            destination = ipaddress.ip_address(verdict.nat["address"])
            port = verdict.nat.get("port", port)
            packet["ct.status"] = ["dnat"]
            packet[f"{packet['family']}.daddr"] = str(destination)
            packet["th.dport"] = port
            result.steps.append(
                Step("host", f"published port: DNAT to {destination}:{port}", verdict.rule)
            )
        route = self.router(None, str(destination))
        if route.kind in ("local", "broadcast"):
            self._host_local(address, packet, result)
            return
        if route.kind == "unreachable":
            self._fail(result, "host", f"the host has no route to {destination}")
            return
        packet["oifname"] = route.device
        verdict = self.rules.run_hook("inet", "forward", packet, "filter")
        where = f"host {packet.get('iifname')} -> {route.device}"
        if not self._rule_step(result, where, verdict, "forward hook"):
            self._suggest_forward_drop(verdict.rule, address, result)
            return
        self._leave_host(route, destination, packet, result)

    def _suggest_forward_drop(self, rule: RuleRef, address: IPAddress, result: Explanation) -> None:
        owner = self._owner(address)
        network = self.networks.get(owner[1].network_id) if owner else None
        if rule.chain == "from-network" and "oifname" in rule.text and network is not None:
            result.suggestions.append(
                f"connect {result.source} to {network.name} (networks are isolated from each other)"
            )
        elif rule.chain == "into-network" and owner is not None:
            port = result.port or "PORT"
            result.suggestions.append(
                f"publish {port} on {owner[0].name} (-p {port}:{port}) and reach it through a "
                "host address: nothing reaches a container from outside its network otherwise"
            )
        elif rule.chain == "forward" and "vmap" in rule.text:
            result.suggestions.append(
                f"{result.source}'s network is internal: connect it to a network that is not"
            )

    def _leave_host(
        self,
        route: RouteLookup,
        destination: IPAddress,
        packet: dict[str, Any],
        result: Explanation,
    ) -> None:
        network = self.bridges.get(route.device)
        post = self.rules.run_hook("inet", "postrouting", packet, "nat")
        if post.nat is not None:
            result.steps.append(
                Step(
                    route.device, f"postrouting: {post.nat['kind']} ({post.rule.where})", post.rule
                )
            )
        if network is None:
            self._deliver(
                result,
                route.device,
                f"leaves the host through {route.device} towards {destination}",
                str(destination),
            )
            return
        owner = self._owner(destination)
        if owner is None or owner[1].network_id != network.id:
            self._fail(result, route.device, f"nothing on network {network.name} has {destination}")
            return
        if network.driver == "macvlan":
            self._fail(
                result,
                route.device,
                f"{owner[0].name} is a macvlan child of {network.device}: the kernel never "
                "loops frames between a macvlan child and its parent's own addresses",
            )
            result.suggestions.append(
                f"give the host a macvlan child of {network.device} too (README: macvlan)"
            )
            return
        self._deliver(
            result,
            owner[0].name,
            f"out of bridge {network.device} to {owner[0].name}'s {owner[1].ifname} ({destination})",
            owner[0].name,
        )

    def _fib_type(self, address: IPAddress) -> str:
        return "local" if self.router(None, str(address)).kind == "local" else "unicast"

    def _host_local(self, address: IPAddress, packet: dict[str, Any], result: Explanation) -> None:
        """The packet is for the host itself (input): a published port's socket, or the
        host's own stack."""
        port = packet.get("th.dport")
        mappings = [
            (sandbox, p)
            for sandbox in self.topology.sandboxes
            for p in sandbox.ports
            if p.proto == packet["l4proto"] and p.host_port == port
        ]
        if not mappings:
            self._deliver(
                result,
                "host",
                f"delivered to the host's own stack at {address}"
                + (
                    f":{port}/{packet['l4proto']} (a program of the host must listen there)"
                    if port
                    else ""
                ),
                "the host",
            )
            return
        for sandbox, mapping in mappings:
            bound = ipaddress.ip_address(mapping.host_ip)
            if bound == address or (bound.is_unspecified and bound.version == address.version):
                self._deliver(
                    result,
                    sandbox.name,
                    f"the socket of published port {mapping.host_ip}:{mapping.host_port} takes "
                    f"it and relays it to {sandbox.name} ({mapping.container_ip}:"
                    f"{mapping.container_port})",
                    sandbox.name,
                )
                return
        bound_on = ", ".join(sorted({m.host_ip for _, m in mappings}))
        self._fail(
            result,
            "host",
            f"port {port}/{packet['l4proto']} is published on {bound_on} only: nothing takes it "
            f"at {address}",
        )
        result.suggestions.append(f"reach it at {bound_on}")

    def _from_host(self, address: IPAddress, packet: dict[str, Any], result: Explanation) -> None:
        family = packet["family"]
        route = self.router(None, str(address))
        packet[f"{family}.daddr"] = str(address)
        packet[f"{family}.saddr"] = route.source or ("127.0.0.1" if family == "ip" else "::1")
        packet["fib.daddr.type"] = "local" if route.kind == "local" else "unicast"
        verdict = self.rules.run_hook("inet", "output", packet)
        if not self._rule_step(result, "host", verdict, "output hook"):
            return
        destination = address
        if verdict.nat and verdict.nat.get("kind") == "dnat":
            destination = ipaddress.ip_address(verdict.nat["address"])
            port = verdict.nat.get("port", packet.get("th.dport"))
            packet[f"{family}.daddr"] = str(destination)
            packet["th.dport"] = port
            result.steps.append(
                Step("host", f"published port: DNAT to {destination}:{port}", verdict.rule)
            )
            route = self.router(None, str(destination))
        if route.kind in ("local", "broadcast"):
            self._host_local(address, packet, result)
            return
        if route.kind == "unreachable":
            self._fail(result, "host", f"the host has no route to {destination}")
            return
        packet["oifname"] = route.device
        result.steps.append(
            Step(
                "host",
                f"the host sends to {destination} out of {route.device} (output: no "
                "filter of cnm's there)",
            )
        )
        self._leave_host(route, destination, packet, result)

    def _from_outside(
        self, source: IPAddress, address: IPAddress, packet: dict[str, Any], result: Explanation
    ) -> None:
        back = self.router(None, str(source))
        if back.kind != "unicast" or not back.device:
            self._fail(result, "host", f"the host has no route to {source}: nothing comes back")
            return
        family = packet["family"]
        packet["iifname"] = back.device
        packet[f"{family}.saddr"] = str(source)
        packet[f"{family}.daddr"] = str(address)
        result.steps.append(Step(back.device, f"arrives from {source} on {back.device}"))
        self._host_receives(back.device, address, packet, result)


def _sentence(rule: RuleRef) -> str:
    """A human sentence for the rules cnm writes without a comment."""
    text = rule.text
    if rule.handle is None:
        return f"nothing in {rule.chain} decided, so its policy did"
    if "@egress" in text:
        return "the source bridge's entry in the egress map decides what may leave it"
    if "@endpoints" in text:
        return "the endpoint sends from its own address: it may leave its network"
    if "@icc" in text:
        return "inside one network"
    if "@isolated" in text:
        return "the port belongs to a network with ICC off: only ARP passes"
    if "into-network" in text:
        return "towards a cnm network: only replies and published ports pass"
    if "masquerade" in text:
        return "the source is rewritten to the host's address"
    return ""


def _bridge_netfilter(controller: Controller) -> bool:
    with controller.host.inside():
        try:
            with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as flag:
                return flag.read().strip() == "1"
        except OSError:
            return False


def explain(
    controller: Controller,
    runtime: Runtime | None,
    source: str,
    target: str,
    version: int | None = None,
) -> Explanation:
    """Answer one question against the controller's model, ruleset and routes now."""
    topology = build_topology(controller, runtime)
    ruleset = Ruleset(controller.firewall.ruleset())
    host = controller.host.namespace

    def router(namespace: str | None, address: str) -> RouteLookup:
        if namespace is None:
            return lookup_route(host, address)
        ns = NetNamespace(namespace)
        try:
            return lookup_route(ns, address)
        finally:
            ns.close()

    def resolve(ref: str) -> str | None:
        if runtime is not None:
            try:
                return runtime.container(ref).sandbox_id
            except NotFound:
                pass
        try:
            return controller.sandbox(ref).id
        except NotFound:
            return None

    def embedded(sandbox_id: str) -> bool:
        try:
            return controller.sandbox(sandbox_id).embedded_dns
        except NotFound:
            return False

    explainer = Explainer(
        topology, ruleset, router, resolve, embedded, _bridge_netfilter(controller)
    )
    try:
        return explainer.explain(source, target, version)
    except UnknownExpression as err:
        raise CnmError(f"explain cannot read cnm's ruleset: {err}") from None
