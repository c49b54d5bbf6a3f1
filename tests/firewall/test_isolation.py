"""Isolation between networks, ICC within them, internal networks: every ordered pair of
sandboxes probed over TCP and UDP, the reachability compared with the expected matrix."""

from __future__ import annotations

from collections.abc import Callable

from cnm.controller import Controller

from .probes import EchoServer, probe, probe_from_all
from .topology import address, network, sandbox_on

PORT = 7
NETWORKS = {
    "a": ("10.41.0.0/24", {}),
    "b": ("10.42.0.0/24", {}),
    "c": ("10.43.0.0/24", {"internal": True}),
    "d": ("10.44.0.0/24", {"options": {"com.docker.network.bridge.enable_icc": "false"}}),
}
SANDBOXES = {
    "a1": ["a"],
    "a2": ["a"],
    "b1": ["b"],
    "ab": ["a", "b"],  # on two networks
    "bc": ["b", "c"],  # on an external and an internal one
    "c1": ["c"],
    "c2": ["c"],
    "d1": ["d"],
    "d2": ["d"],
}


def test_reachability_matrix(controller: Controller, servers: Callable[..., EchoServer]) -> None:
    for name, (subnet, kwargs) in NETWORKS.items():
        network(controller, name, subnet, **kwargs)
    boxes = {name: sandbox_on(controller, name, *nets) for name, nets in SANDBOXES.items()}
    for name, box in boxes.items():
        servers(box.key, name, [PORT])
    # Every address of every sandbox, by the network it is on.
    targets = {
        (name, net): address(controller, box, net)
        for name, box in boxes.items()
        for net in SANDBOXES[name]
    }
    icc_off = {"d"}
    jobs = {
        box.key: [
            (proto, addr, PORT)
            for (name, _), addr in targets.items()
            if name != source
            for proto in ("tcp", "udp")
        ]
        for source, box in boxes.items()
    }
    results = probe_from_all(jobs)
    expected: dict[tuple[str, str, str, str], bool] = {}
    found: dict[tuple[str, str, str, str], bool] = {}
    for source, box in boxes.items():
        for (name, net), addr in targets.items():
            if name == source:
                continue
            for proto in ("tcp", "udp"):
                key = (source, name, net, proto)
                expected[key] = net in SANDBOXES[source] and net not in icc_off
                reply = results[box.key][(proto, addr, PORT)]
                found[key] = reply is not None and reply.startswith(f"{name} ")
    wrong = sorted(k for k in expected if expected[k] != found[k])
    assert not wrong, "reachability differs (source, target, via network, proto): " + ", ".join(
        f"{k}: expected {expected[k]}" for k in wrong
    )
    # The host reaches every container address.
    answers = probe(None, [(p, a, PORT) for a in targets.values() for p in ("tcp", "udp")])
    assert all(answers.values()), answers


def test_disconnect_cuts_the_path_again(
    controller: Controller, servers: Callable[..., EchoServer]
) -> None:
    network(controller, "a", "10.45.0.0/24")
    network(controller, "b", "10.46.0.0/24")
    both = sandbox_on(controller, "both", "a", "b")
    only_b = sandbox_on(controller, "onlyb", "b")
    servers(only_b.key, "onlyb", [PORT])
    target = address(controller, only_b, "b")
    assert probe(both.key, [("tcp", target, PORT)])[("tcp", target, PORT)] == "onlyb 10.46.0.2"
    controller.disconnect("b", both.id)
    assert probe(both.key, [("tcp", target, PORT), ("udp", target, PORT)]) == {
        ("tcp", target, PORT): None,
        ("udp", target, PORT): None,
    }
    controller.connect("b", both.id)
    assert probe(both.key, [("udp", target, PORT)])[("udp", target, PORT)] is not None
