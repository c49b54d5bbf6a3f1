"""Coexisting with Docker: with Docker's iptables chains in the host namespace (FORWARD policy
DROP, DOCKER-USER first), cnm accepts its bridges in DOCKER-USER and its traffic still flows;
without those rules it would not (the control)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from cnm.model import PortRequest

from .probes import EchoServer, probe, probe_from_all, run
from .topology import Controllers, Outside, ipv6_settled, network, sandbox_on, stop_watching

pytestmark = pytest.mark.skipif(
    not (shutil.which("iptables") and shutil.which("ip6tables")), reason="no iptables here"
)

DOCKER_LIKE = [
    ["-N", "DOCKER-USER"],
    ["-A", "DOCKER-USER", "-j", "RETURN"],
    ["-N", "DOCKER-FORWARD"],
    ["-P", "FORWARD", "DROP"],
    ["-A", "FORWARD", "-j", "DOCKER-USER"],
    ["-A", "FORWARD", "-j", "DOCKER-FORWARD"],
]


@pytest.fixture
def docker_chains(outside: Outside) -> Iterator[None]:
    """Docker's chains, made in the test's host namespace (as dockerd would with iptables)."""
    for binary in ("iptables", "ip6tables"):
        for rule in DOCKER_LIKE:
            run(binary, "-w", *rule)
    yield


def _cnm_rules(binary: str) -> list[str]:
    return sorted(
        line for line in run(binary, "-w", "-S", "DOCKER-USER").splitlines() if "cnm" in line
    )


def test_cnm_traffic_flows_beside_docker(
    docker_chains: None,
    make_controller: Controllers,
    outside: Outside,
    servers: Callable[..., EchoServer],
) -> None:
    controller = make_controller()
    network(controller, "dk", "10.75.0.0/24", ipv6_subnet="fd75::/64")
    bridge = controller.network_info(controller.network("dk").id)["com.docker.network.bridge.name"]
    for binary in ("iptables", "ip6tables"):
        assert _cnm_rules(binary) == sorted(
            f"-A DOCKER-USER -{d} {b} -m comment --comment cnm -j ACCEPT"
            for b in ("cnm0", bridge)
            for d in "io"
        )
    web, peer = sandbox_on(controller, "web", "dk"), sandbox_on(controller, "peer", "dk")
    servers(web.key, "web", [80])
    servers(outside.path, "outside", [9])
    controller.publish(web.id, [PortRequest("tcp", 80, host_port=8080)])
    ipv6_settled(controller, "dk")

    def flows() -> dict[str, str | None]:
        jobs = {
            web.key: [("tcp", outside.ip4, 9), ("tcp", outside.ip6, 9)],
            outside.path: [("tcp", outside.host4, 8080)],
            peer.key: [("udp", "10.75.0.2", 80)],  # bridged through br_netfilter
        }
        found = probe_from_all(jobs)
        return {
            "egress": found[web.key][("tcp", outside.ip4, 9)],
            "egress6": found[web.key][("tcp", outside.ip6, 9)],
            "published": found[outside.path][("tcp", outside.host4, 8080)],
            "icc": found[peer.key][("udp", "10.75.0.2", 80)],
        }

    assert flows() == {
        "egress": f"outside {outside.host4}",
        "egress6": f"outside {outside.host6}",
        "published": f"web {outside.ip4}",
        "icc": "web 10.75.0.3",
    }
    # The control: without cnm's rules Docker's FORWARD policy drops all of it.
    stop_watching(controller)  # nothing puts them back
    for binary in ("iptables", "ip6tables"):
        for rule in _cnm_rules(binary):
            run(binary, "-w", *rule.replace("-A", "-D", 1).split())
    assert set(flows().values()) == {None}
    # Removing the network takes its rules away (here: nothing left to remove, no error).
    controller.delete_sandbox(web.id)
    controller.delete_sandbox(peer.id)
    controller.delete_network("dk")
    assert probe(None, [("tcp", outside.ip4, 9)])  # the host itself is untouched by this


def test_rules_follow_networks_and_stale_ones_go_at_start(
    docker_chains: None, make_controller: Controllers
) -> None:
    run("iptables", "-w", "-I", "DOCKER-USER", "-i", "br-000000000000", "-m", "comment",
        "--comment", "cnm", "-j", "ACCEPT")  # fmt: skip
    controller = make_controller()
    assert _cnm_rules("iptables") == [
        "-A DOCKER-USER -i cnm0 -m comment --comment cnm -j ACCEPT",
        "-A DOCKER-USER -o cnm0 -m comment --comment cnm -j ACCEPT",
    ]
    network(controller, "gone", "10.76.0.0/24")
    assert len(_cnm_rules("iptables")) == 4
    controller.delete_network("gone")
    assert len(_cnm_rules("iptables")) == 2
    # The user's own rules and Docker's policy are left alone.
    assert "-A DOCKER-USER -j RETURN" in run("iptables", "-w", "-S", "DOCKER-USER")
    assert "-P FORWARD DROP" in run("iptables", "-w", "-S", "FORWARD")
