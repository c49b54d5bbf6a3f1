"""An evaluator of nftables rules, for the rules cnm writes: which rule of which chain decides
a packet, read from the ruleset the kernel holds (the firewall seam's ``ruleset``).

A packet here is a dict of the fields the rules look at (``iifname``, ``oifname``,
``l4proto``, ``ip.saddr``/``ip.daddr`` or ``ip6.…``, ``th.dport``, ``ether.type``,
``ct.state``, ``ct.status``, ``fib.daddr.type``). A base chain is walked rule by rule as the
kernel does (RFC-free, nft(8)'s semantics): a rule matches when every match expression holds;
``accept``/``drop`` end the hook, ``jump``/``goto`` enter a regular chain (``return`` comes back
after a jump, ends the base chain after a goto), a verdict map looks the key up, and a base
chain with no verdict ends with its policy. NAT statements (``dnat``/``snat``/``masquerade``)
record the translation and end the chain as they do in the kernel.

Only the expressions cnm's tables use are known; any other raises ``UnknownExpression`` naming
the rule, so a ruleset that grew new kinds of rules fails loudly here instead of being
explained wrongly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Packet = dict[str, Any]


class UnknownExpression(Exception):
    pass


@dataclass(frozen=True)
class RuleRef:
    """A rule by where it lives, with its nft text."""

    family: str
    table: str
    chain: str
    handle: int | None  # None for a chain's policy
    text: str
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "table": self.table,
            "chain": self.chain,
            "handle": self.handle,
            "text": self.text,
            "comment": self.comment,
        }

    @property
    def where(self) -> str:
        handle = f"handle {self.handle}" if self.handle is not None else "policy"
        return f"{self.family} {self.table} {self.chain} {handle}"


@dataclass
class Verdict:
    """The outcome of a hook: ``accept`` or ``drop``, the rule that said so, every rule that
    matched on the way (in order), and a NAT translation if one was made."""

    verdict: str
    rule: RuleRef
    matched: list[RuleRef] = field(default_factory=list)
    nat: dict[str, Any] | None = None


def _text(value: Any) -> str:
    """nft syntax of a JSON expression (enough to read the rule)."""
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, list):
        return "{ " + ", ".join(_text(v) for v in value) + " }"
    if not isinstance(value, dict) or not value:
        return str(value)
    (key, body), *_ = value.items()
    if key == "meta":
        return f"meta {body['key']}" if body["key"] in ("l4proto", "protocol") else body["key"]
    if key == "payload":
        return f"{body['protocol']} {body['field']}"
    if key == "ct":
        return f"ct {body['key']}"
    if key == "fib":
        return f"fib {' . '.join(body['flags'])} {body['result']}"
    if key == "concat":
        return " . ".join(_text(v) for v in body)
    if key == "prefix":
        return f"{body['addr']}/{body['len']}"
    if key == "range":
        return f"{_text(body[0])}-{_text(body[1])}"
    if key == "set":
        return _text(body)
    if key == "map":
        return f"{_text(body['key'])} map {_text(body['data'])}"
    return f"{key} {body}"


def rule_text(expressions: list[dict[str, Any]]) -> str:
    parts = []
    for expression in expressions:
        (key, body), *_ = expression.items()
        if key == "match":
            op = "" if body["op"] in ("==", "in") else f"{body['op']} "
            parts.append(f"{_text(body['left'])} {op}{_text(body['right'])}")
        elif key in ("accept", "drop", "return", "masquerade"):
            parts.append(key)
        elif key in ("jump", "goto"):
            parts.append(f"{key} {body['target']}")
        elif key == "vmap":
            parts.append(f"{_text(body['key'])} vmap {_text(body['data'])}")
        elif key in ("dnat", "snat"):
            parts.append(f"{key} {body.get('family', '')} to {_text(body['addr'])}".strip())
        elif key == "counter":
            parts.append("counter")
        else:
            parts.append(f"{key} {body}")
    return " ".join(parts)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class Ruleset:
    """The tables of one seam read: sets and maps by name, chains with their rules."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.sets: dict[tuple[str, str], dict[str, Any]] = {}
        self.chains: dict[tuple[str, str], dict[str, Any]] = {}
        self.rules: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for obj in objects:
            (kind, body), *_ = obj.items()
            if kind in ("set", "map"):
                self.sets[(body["family"], body["name"])] = body
            elif kind == "chain":
                self.chains[(body["family"], body["name"])] = body
                self.rules.setdefault((body["family"], body["name"]), [])
            elif kind == "rule":
                self.rules.setdefault((body["family"], body["chain"]), []).append(body)

    def base_chains(self, family: str, hook: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The base chains of ``family`` on ``hook`` (of one ``kind``: filter, nat), in the
        order the kernel runs them (priority)."""
        found = [
            c
            for (f, _), c in self.chains.items()
            if f == family and c.get("hook") == hook and (kind is None or c.get("type") == kind)
        ]
        return sorted(found, key=lambda c: c.get("prio", 0))

    def elements(self, family: str, name: str) -> list[Any]:
        body = self.sets.get((family, name))
        if body is None:
            raise UnknownExpression(f"no set @{name} in the {family} table")
        return list(body.get("elem", []))

    def run_hook(self, family: str, hook: str, packet: Packet, kind: str | None = None) -> Verdict:
        """Every base chain of the hook in turn; the first drop ends it, else the last
        chain's accept (a hook with no chain of cnm's accepts: cnm has no say)."""
        outcome: Verdict | None = None
        matched: list[RuleRef] = []
        nat: dict[str, Any] | None = None
        for chain in self.base_chains(family, hook, kind):
            result = self.run_chain(family, chain["name"], packet)
            matched += result.matched
            nat = nat or result.nat
            outcome = result
            if result.verdict == "drop":
                break
        if outcome is None:
            none = RuleRef(family, "cnm", hook, None, "no chain of cnm's on this hook")
            return Verdict("accept", none, [], None)
        outcome.matched = matched
        outcome.nat = nat
        return outcome

    def run_chain(self, family: str, name: str, packet: Packet) -> Verdict:
        matched: list[RuleRef] = []
        result = self._walk(family, name, packet, matched)
        chain = self.chains[(family, name)]
        policy = chain.get("policy", "accept")
        if result is None:
            ref = RuleRef(family, chain["table"], name, None, f"policy {policy}")
            return Verdict(policy, ref, matched, packet.get("_nat"))
        if result[0] == "return":  # the rule that returned decides: the policy follows it
            return Verdict(policy, result[1], matched, packet.get("_nat"))
        verdict, ref = result
        return Verdict(verdict, ref, matched, packet.get("_nat"))

    def _walk(
        self, family: str, name: str, packet: Packet, matched: list[RuleRef]
    ) -> tuple[str, RuleRef] | None:
        """Run one chain; (verdict, rule) for a final verdict or a NAT, ("return", rule) for
        an explicit return, None when the chain ran out."""
        for rule in self.rules.get((family, name), []):
            ref = RuleRef(
                family,
                rule["table"],
                name,
                rule["handle"],
                rule_text(rule["expr"]),
                rule.get("comment", ""),
            )
            outcome = self._rule(family, rule, packet, ref, matched)
            if outcome is None:
                continue
            verdict, target = outcome
            if verdict in ("accept", "drop", "return"):
                return verdict, target
            if verdict == "jump":
                inner = self._walk(family, target.text, packet, matched)
                if inner is not None and inner[0] != "return":
                    return inner
            elif verdict == "goto":
                return self._walk(family, target.text, packet, matched)
        return None

    def _rule(
        self,
        family: str,
        rule: dict[str, Any],
        packet: Packet,
        ref: RuleRef,
        matched: list[RuleRef],
    ) -> tuple[str, RuleRef] | None:
        """One rule: None when it does not match (or matches without a verdict)."""
        for expression in rule["expr"]:
            (key, body), *_ = expression.items()
            if key == "match":
                if not self._match(family, body, packet, ref):
                    return None
            elif key == "counter":
                continue
            elif key in ("accept", "drop", "return"):
                matched.append(ref)
                return key, ref
            elif key in ("jump", "goto"):
                matched.append(ref)
                return key, RuleRef(family, ref.table, ref.chain, ref.handle, body["target"])
            elif key == "vmap":
                value = self._value(family, body["key"], packet, ref)
                for element in self.elements(family, body["data"].lstrip("@")):
                    if self._member(value, element[0]):
                        (verdict, target), *_ = element[1].items()
                        matched.append(ref)
                        if verdict in ("jump", "goto"):
                            jump_ref = RuleRef(
                                family, ref.table, ref.chain, ref.handle, target["target"]
                            )
                            return verdict, jump_ref
                        return verdict, ref
                return None
            elif key in ("dnat", "snat"):
                translated = self._nat(family, key, body, packet, ref)
                if translated is None:
                    return None  # no map element: the kernel's rule does nothing either
                packet["_nat"] = translated
                matched.append(ref)
                return "accept", ref
            elif key == "masquerade":
                packet["_nat"] = {"kind": "masquerade"}
                matched.append(ref)
                return "accept", ref
            else:
                raise UnknownExpression(f"rule {ref.where} ({ref.text}): {key} is not known")
        return None

    def _nat(
        self, family: str, kind: str, body: dict[str, Any], packet: Packet, ref: RuleRef
    ) -> dict[str, Any] | None:
        nat_family = body.get("family", "ip")
        if packet.get("family") != nat_family:
            return None
        addr = body["addr"]
        if "map" not in addr:
            raise UnknownExpression(f"rule {ref.where}: only map NAT is known")
        key = self._value(family, addr["map"]["key"], packet, ref)
        for element in self.elements(family, addr["map"]["data"].lstrip("@")):
            if self._member(key, element[0]):
                value = element[1]
                parts = (
                    value["concat"] if isinstance(value, dict) and "concat" in value else [value]
                )
                translated: dict[str, Any] = {"kind": kind, "address": str(parts[0])}
                if len(parts) > 1:
                    translated["port"] = int(parts[1])
                return translated
        return None

    def _value(self, family: str, expression: Any, packet: Packet, ref: RuleRef) -> Any:
        if not isinstance(expression, dict):
            return expression
        (key, body), *_ = expression.items()
        if key == "meta":
            return packet.get(body["key"])
        if key == "payload":
            if body["protocol"] in ("ip", "ip6") and packet.get("family") != body["protocol"]:
                return None  # an IPv4 field of an IPv6 packet: no match
            return packet.get(f"{body['protocol']}.{body['field']}")
        if key == "ct":
            return packet.get(f"ct.{body['key']}")
        if key == "fib":
            return packet.get(f"fib.{'.'.join(body['flags'])}.{body['result']}")
        if key == "concat":
            return [self._value(family, part, packet, ref) for part in body]
        raise UnknownExpression(f"rule {ref.where} ({ref.text}): {key} is not known")

    def _match(self, family: str, body: dict[str, Any], packet: Packet, ref: RuleRef) -> bool:
        value = self._value(family, body["left"], packet, ref)
        if value is None or (isinstance(value, list) and None in value):
            return False  # the field is absent (an IPv4 field of an IPv6 packet)
        right = body["right"]
        if body["op"] == "in":  # flags: ct state/status
            wanted = right if isinstance(right, list) else [right]
            have = value if isinstance(value, list | set | tuple) else [value]
            return any(w in have for w in wanted)
        if isinstance(right, str) and right.startswith("@"):
            found = any(self._member(value, e) for e in self.elements(family, right[1:]))
        else:
            found = self._member(value, right)
        if body["op"] == "==":
            return found
        if body["op"] == "!=":
            return not found
        raise UnknownExpression(f"rule {ref.where}: operator {body['op']} is not known")

    def _member(self, value: Any, element: Any) -> bool:
        """Whether ``value`` matches one set element (a value, prefix, range or concat)."""
        if isinstance(element, dict):
            if "concat" in element:
                parts = element["concat"]
                return (
                    isinstance(value, list)
                    and len(value) == len(parts)
                    and all(self._member(v, p) for v, p in zip(value, parts, strict=True))
                )
            if "prefix" in element:
                address = _address(str(value))
                prefix = element["prefix"]
                network = ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}", strict=False)
                return address is not None and address in network
            if "range" in element:
                low, high = element["range"]
                address = _address(str(value))
                if address is not None:
                    return _address(str(low)) <= address <= _address(str(high))  # type: ignore[operator]
                return bool(int(low) <= int(value) <= int(high))
            if "elem" in element:
                return self._member(value, element["elem"]["val"])
            raise UnknownExpression(f"set element {element} is not known")
        if isinstance(value, list):
            return False
        if str(value) == str(element):
            return True
        left, right = _address(str(value)), _address(str(element))
        return left is not None and left == right
