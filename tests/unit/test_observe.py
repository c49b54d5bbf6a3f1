"""Pure logic of seeing the network: the nft rule evaluator on hand-made rulesets, the DOT
picture of a hand-made topology, and the explain target syntax."""

from __future__ import annotations

from typing import Any

import pytest

from cnm.observe.dot import render
from cnm.observe.nftrules import Ruleset, UnknownExpression, rule_text
from cnm.observe.topology import Interface, NetworkNode, Port, SandboxNode, Topology


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _rule(chain: str, handle: int, *expr: dict[str, Any], family: str = "inet") -> dict[str, Any]:
    return {"rule": {"family": family, "table": "t", "chain": chain, "handle": handle,
                     "expr": list(expr)}}  # fmt: skip


def _ruleset(*rules: dict[str, Any]) -> Ruleset:
    objects: list[dict[str, Any]] = [
        {"chain": {"family": "inet", "table": "t", "name": "fwd", "hook": "forward",
                   "type": "filter", "prio": 0, "policy": "accept"}},
        {"chain": {"family": "inet", "table": "t", "name": "inner"}},
        {"set": {"family": "inet", "name": "pairs", "table": "t",
                 "elem": [{"concat": ["br-a", "br-a"]}]}},
        {"set": {"family": "inet", "name": "nets", "table": "t",
                 "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}]}},
        {"map": {"family": "inet", "name": "out", "table": "t",
                 "elem": [["br-a", {"jump": {"target": "inner"}}], ["br-x", {"drop": None}]]}},
    ]  # fmt: skip
    return Ruleset(objects + list(rules))


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def test_the_first_matching_verdict_decides_and_names_its_rule() -> None:
    rules = _ruleset(
        _rule("fwd", 1, _match({"concat": [_meta("iifname"), _meta("oifname")]}, "@pairs"),
              {"accept": None}),
        _rule("fwd", 2, {"vmap": {"key": _meta("iifname"), "data": "@out"}}),
        _rule("inner", 3, _match({"payload": {"protocol": "ip", "field": "daddr"}}, "@nets"),
              {"drop": None}),
        _rule("inner", 4, {"return": None}),
        _rule("fwd", 5, {"drop": None}),
    )  # fmt: skip
    packet = {"family": "ip", "iifname": "br-a", "oifname": "br-a", "ip.daddr": "10.1.2.3"}
    assert rules.run_hook("inet", "forward", packet).rule.handle == 1
    packet["oifname"] = "eth0"
    verdict = rules.run_hook("inet", "forward", packet)
    assert (verdict.verdict, verdict.rule.handle) == ("drop", 3)
    packet["ip.daddr"] = "192.0.2.1"  # inner returns, the base chain goes on
    assert rules.run_hook("inet", "forward", packet).rule.handle == 5
    packet["iifname"] = "br-x"
    assert rules.run_hook("inet", "forward", packet).rule.handle == 2
    packet["iifname"] = "br-none"  # no map entry: rule 5
    assert rules.run_hook("inet", "forward", packet).rule.handle == 5


def test_an_ipv4_field_never_matches_an_ipv6_packet_and_policy_decides() -> None:
    rules = _ruleset(
        _rule("fwd", 1, _match({"payload": {"protocol": "ip", "field": "daddr"}}, "@nets"),
              {"drop": None}),
    )  # fmt: skip
    verdict = rules.run_hook("inet", "forward", {"family": "ip6", "ip6.daddr": "fd00::1"})
    assert (verdict.verdict, verdict.rule.handle, verdict.rule.text) == ("accept", None,
                                                                          "policy accept")  # fmt: skip
    assert rules.run_hook("inet", "output", {"family": "ip"}).verdict == "accept"


def test_an_unknown_expression_is_refused_not_guessed() -> None:
    rules = _ruleset(_rule("fwd", 9, {"limit": {"rate": 10}}, {"drop": None}))
    with pytest.raises(UnknownExpression, match=r"handle 9.*limit is not known"):
        rules.run_hook("inet", "forward", {"family": "ip"})


def test_rule_text_reads_like_nft() -> None:
    text = rule_text([
        _match(_meta("iifname"), "@bridges"),
        _match({"payload": {"protocol": "ether", "field": "type"}}, "arp", "!="),
        {"drop": None},
    ])  # fmt: skip
    assert text == "iifname @bridges ether type != arp drop"


def test_the_picture_marks_what_matters() -> None:
    topology = Topology(
        host="box",
        networks=[
            NetworkNode("n1" * 32, "front", "bridge", "br-1", ["10.1.0.0/24"], ["10.1.0.1/24"]),
            NetworkNode("n2" * 32, "back", "bridge", "br-2", ["10.2.0.0/24"], [], internal=True),
            NetworkNode("n3" * 32, "quiet", "bridge", "br-3", ["10.3.0.0/24"], [], icc=False),
        ],
        sandboxes=[
            SandboxNode(
                "s1" * 32, "web", ["web"], interfaces=[
                    Interface("e1", "n1" * 32, "eth0", "veth1", "10.1.0.2/24", gateway4=True),
                    Interface("e2", "n2" * 32, "eth1", "veth2", "10.2.0.2/24"),
                ], ports=[Port("tcp", "127.0.0.1", 8080, "10.1.0.2", 80)],
            )
        ],
    )  # fmt: skip
    dot = render(topology, "dot").decode()
    assert "eth0 (default route)" in dot and "penwidth=2.5" in dot
    assert "internal: no way out" in dot and "ICC off: members cannot talk" in dot
    assert "127.0.0.1:8080 -> 80/tcp" in dot
    assert Topology.from_dict(topology.to_dict()) == topology
    with pytest.raises(ValueError, match="unknown format"):
        render(topology, "gif")
