"""``explain`` against real packets: every verdict it gives for a matrix of networks and
sandboxes (external, IPv6, internal, ICC off; ports published on 127.0.0.1 and on every
address; the host; an outside host that routes straight to container addresses) is checked
with a probe sent the same way, and a reachable verdict must name who really answered."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cnm.controller import Controller
from cnm.errors import InvalidParameter, NotFound
from cnm.model import PortRequest
from cnm.observe.explain import explain, parse_target

from .probes import EchoServer, probe_from_all, run
from .topology import HOST4, OUTSIDE4, Outside, address, ipv6_settled, network, sandbox_on

PORT = 7
LOOPBACK_PORT = 18080  # a1's port 7, published on 127.0.0.1
ANY_PORT = 18081  # d1's port 7, published on every host address
NETWORKS = {
    "a": ("10.41.0.0/24", {"ipv6_subnet": "fd41::/64"}),
    "b": ("10.42.0.0/24", {}),
    "c": ("10.43.0.0/24", {"internal": True}),
    "d": ("10.44.0.0/24", {"options": {"com.docker.network.bridge.enable_icc": "false"}}),
}
SANDBOXES = {
    "a1": ["a"],
    "a2": ["a"],
    "ab": ["a", "b"],
    "b1": ["b"],
    "bc": ["b", "c"],
    "c1": ["c"],
    "d1": ["d"],
    "d2": ["d"],
}


def test_every_verdict_matches_a_probe(
    controller: Controller, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    for name, (subnet, kwargs) in NETWORKS.items():
        network(controller, name, subnet, **kwargs)
    boxes = {name: sandbox_on(controller, name, *nets) for name, nets in SANDBOXES.items()}
    controller.publish(boxes["a1"].id, [PortRequest("tcp", PORT, "127.0.0.1", LOOPBACK_PORT)])
    controller.publish(boxes["d1"].id, [PortRequest("tcp", PORT, "", ANY_PORT)])
    ipv6_settled(controller, "a")
    for name, box in boxes.items():
        servers(box.key, name, [PORT])
    servers(None, "host", [PORT])
    servers(outside.path, "outside", [PORT])
    # The outside host routes straight to container addresses through the host.
    run("ip", "route", "add", "10.40.0.0/13", "via", HOST4, netns=outside.path)
    run("ip", "-6", "route", "add", "fd41::/64", "via", outside.host6, netns=outside.path)

    container_targets = [
        address(controller, box, net, version)
        for name, box in boxes.items()
        for net in SANDBOXES[name]
        for version in ((4, 6) if net == "a" else (4,))
    ]
    gateways = ["10.41.0.1", "10.42.0.1", "10.43.0.1", "10.44.0.1", "fd41::1"]
    published = [(HOST4, ANY_PORT), (HOST4, LOOPBACK_PORT)]
    sources: dict[str, str | None] = {name: box.key for name, box in boxes.items()}
    sources["host"] = None
    sources[OUTSIDE4] = outside.path
    questions: dict[str, list[tuple[str, int]]] = {}
    for source in sources:
        wanted = [(t, PORT) for t in [*container_targets, *gateways, OUTSIDE4]]
        wanted += [*published, ("10.44.0.1", ANY_PORT), ("10.41.0.1", LOOPBACK_PORT)]
        if source == "host":
            wanted += [("127.0.0.1", LOOPBACK_PORT), ("127.0.0.1", ANY_PORT)]
        questions[source] = [
            (t, p)
            for t, p in wanted
            if not (source in SANDBOXES and _owned_by(source, t, boxes, controller))
        ]
    verdicts = {
        (source, target, port): explain(controller, None, source, _target(target, port))
        for source, targets in questions.items()
        for target, port in targets
    }
    answers = probe_from_all(
        {sources[s]: [("tcp", t, p) for t, p in targets] for s, targets in questions.items()}
    )
    wrong = []
    for (source, target, port), verdict in verdicts.items():
        reply = answers[sources[source]][("tcp", target, port)]
        expected_name = verdict.delivered_to if verdict.reachable else None
        if verdict.delivered_to == "the host":
            expected_name = "host"
        elif verdict.delivered_to == OUTSIDE4:
            expected_name = "outside"
        answered_by = reply.split()[0] if reply else None
        if answered_by != expected_name:
            wrong.append(
                f"{source} -> {target}:{port}: explain says {expected_name!r} "
                f"({verdict.reason}), the probe got {reply!r}"
            )
    assert not wrong, "\n".join(wrong)
    # Every kind of verdict was met, each with the rule that decides it.
    reasons = {v.deciding.where for v in verdicts.values() if v.deciding and not v.reachable}
    assert {
        "bridge cnm forward handle",
        "inet cnm from-network handle",
        "inet cnm into-network handle",
    } <= {r.rsplit(" ", 1)[0] for r in reasons}, reasons


def _owned_by(source: str, target: str, boxes: dict, controller: Controller) -> bool:
    return any(
        address(controller, boxes[source], net, version) == target
        for net in SANDBOXES[source]
        for version in ((4, 6) if net == "a" else (4,))
    )


def _target(address_text: str, port: int) -> str:
    return f"[{address_text}]:{port}" if ":" in address_text else f"{address_text}:{port}"


def test_the_answer_names_rule_path_and_what_would_change_it(controller: Controller) -> None:
    network(controller, "front", "10.51.0.0/24")
    network(controller, "back", "10.52.0.0/24")
    network(
        controller,
        "quiet",
        "10.53.0.0/24",
        options={"com.docker.network.bridge.enable_icc": "false"},
    )
    sandbox_on(controller, "web", "front")
    sandbox_on(controller, "db", "back")
    sandbox_on(controller, "q1", "quiet")
    sandbox_on(controller, "q2", "quiet")

    cut = explain(controller, None, "web", "db:5432")
    assert not cut.reachable
    assert cut.deciding is not None and cut.deciding.chain == "from-network"
    assert cut.deciding.text == "oifname @bridges drop"
    assert any("connect web to back" in s for s in cut.suggestions), cut.suggestions
    assert [s.where for s in cut.steps][:1] == ["web"]

    quiet = explain(controller, None, "q1", "q2:80/udp")
    assert not quiet.reachable and quiet.proto == "udp"
    assert quiet.deciding is not None
    assert (quiet.deciding.family, quiet.deciding.chain) == ("bridge", "forward")
    assert any("ICC" in s for s in quiet.suggestions)

    into = explain(controller, None, "host", "db:5432")
    assert into.reachable and into.delivered_to == "db"

    network(controller, "vault", "10.54.0.0/24", internal=True)
    sandbox_on(controller, "locked", "vault")
    out = explain(controller, None, "locked", "198.18.0.2:443")
    assert not out.reachable and out.reason == "locked has no route to 198.18.0.2"
    assert any("not internal" in s for s in out.suggestions), out.suggestions


def test_a_macvlan_network_is_refused_not_guessed(controller: Controller) -> None:
    network(controller, "mv", "10.88.0.0/24", driver="macvlan")
    sandbox_on(controller, "m1", "mv")
    sandbox_on(controller, "m2", "mv")
    with pytest.raises(InvalidParameter, match=r"bridge driver's networks.*a macvlan network"):
        explain(controller, None, "m1", "m2:80")
    assert not explain(controller, None, "host", "m1:80").reachable


def test_bad_questions_are_refused(controller: Controller) -> None:
    with pytest.raises(NotFound, match="No such container: ghost"):
        explain(controller, None, "ghost", "host")
    for text in ("web:0", "web:99999", "web:80/icmp", "[fd00::1", ":80"):
        with pytest.raises(InvalidParameter):
            parse_target(text)
    assert parse_target("[fd00::1]:53/udp") == ("fd00::1", 53, "udp")
    assert parse_target("fd00::1") == ("fd00::1", None, "tcp")
