"""The generated ruleset documents in docs/rulesets/: each scenario is built in a throwaway
namespace, its tables listed with ``nft list table`` and normalised (bridge and port names
become placeholders, set elements are sorted), then compared with the stored document.
``CNM_UPDATE_GOLDEN=1`` writes the documents instead, so a reviewer sees a firewall change as
a diff of these files."""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cnm.controller import Controller
from cnm.drivers.bridge import host_veth_name
from cnm.model import EndpointOptions, PortRequest, SandboxOptions

from .probes import nft_list
from .topology import Controllers, network

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rulesets"
UPDATE = os.environ.get("CNM_UPDATE_GOLDEN") == "1"


def _containers(controller: Controller, *placements: tuple[str, list[str]]) -> dict[str, str]:
    """Sandboxes named and joined as given; their ports' names -> placeholders."""
    names = {}
    for name, networks in placements:
        box = controller.create_sandbox(SandboxOptions(hostname=name))
        for net in networks:
            endpoint = controller.connect(net, box.id, EndpointOptions(name=name))
            names[host_veth_name(endpoint.id)] = f"veth-<{name}@{net}>"
    return names


def default_bridge(controller: Controller) -> tuple[str, dict[str, str]]:
    names = _containers(controller, ("c1", ["bridge"]), ("c2", ["bridge"]))
    return "the default bridge network (cnm0) with two containers, no published port", names


def published_port(controller: Controller) -> tuple[str, dict[str, str]]:
    network(controller, "web", "10.80.0.0/24", ipv6_subnet="fd80::/64")
    network(controller, "v4only", "10.81.0.0/24")
    names = _containers(controller, ("web", ["web"]), ("api", ["v4only"]))
    [web, api] = [s for s in controller.sandboxes() if s.hostname in ("web", "api")]
    controller.publish(web.id, [PortRequest("tcp", 80, host_port=8080)])
    controller.publish(
        api.id,
        [
            PortRequest("tcp", 80, host_port=8081),
            PortRequest("udp", 53, "127.0.0.1", 5353),
            PortRequest("tcp", 443, "::1", 8443),
        ],
    )
    return (
        "a dual-stack network web whose container publishes 8080:80 (0.0.0.0 and [::], both "
        "through the kernel), and an IPv4-only network whose container publishes 8081:80 "
        "([::] is served by the port's relay, so only 0.0.0.0 appears), 127.0.0.1:5353:53/udp "
        "and [::1]:8443:443 (relay only)",
        names,
    )


def icc_off(controller: Controller) -> tuple[str, dict[str, str]]:
    network(
        controller,
        "quiet",
        "10.82.0.0/24",
        options={"com.docker.network.bridge.enable_icc": "false"},
    )
    names = _containers(controller, ("q1", ["quiet"]), ("q2", ["quiet"]))
    return "a network with com.docker.network.bridge.enable_icc=false and two containers", names


def internal(controller: Controller) -> tuple[str, dict[str, str]]:
    network(controller, "sealed", "10.83.0.0/24", internal=True)
    names = _containers(controller, ("s1", ["sealed"]))
    return "an internal network (--internal) with one container", names


def two_networks(controller: Controller) -> tuple[str, dict[str, str]]:
    network(controller, "front", "10.84.0.0/24")
    network(
        controller,
        "back",
        "10.85.0.0/24",
        options={
            "com.docker.network.host_ipv4": "192.0.2.10",
            "com.docker.network.bridge.name": "back0",
        },
    )
    network(
        controller,
        "plain",
        "10.86.0.0/24",
        options={"com.docker.network.bridge.enable_ip_masquerade": "false"},
    )
    names = _containers(
        controller, ("proxy", ["front", "back"]), ("app", ["back"]), ("edge", ["front"])
    )
    return (
        "networks front and back (bridge back0, egress source fixed to 192.0.2.10), a "
        "container on both, one on each; and a network plain without masquerading",
        names,
    )


SCENARIOS = [default_bridge, published_port, icc_off, internal, two_networks]


def normalise(text: str, controller: Controller, names: dict[str, str]) -> str:
    """Placeholders for per-run names, elements sorted (the kernel lists hash sets in no
    particular order)."""
    for network_ in controller.networks():
        bridge = controller.network_info(network_.id).get("com.docker.network.bridge.name", "")
        if bridge.startswith("br-"):
            names[bridge] = f"br-<{network_.name}>"
    for name, placeholder in names.items():
        text = text.replace(f'"{name}"', f'"{placeholder}"')

    def sort(match: re.Match[str]) -> str:
        items = sorted(item.strip() for item in match[2].split(","))
        indent = match[1]
        if len(items) == 1:
            return f"{indent}elements = {{ {items[0]} }}"
        inner = f",\n{indent}\t     ".join(items)
        return f"{indent}elements = {{ {inner} }}"

    return re.sub(r"(\t+)elements = \{ (.*?) \}", sort, text, flags=re.DOTALL)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.replace("_", "-"))
def test_ruleset_document(
    scenario: Callable[[Controller], tuple[str, dict[str, str]]],
    make_controller: Controllers,
) -> None:
    controller = make_controller()
    description, names = scenario(controller)
    listing = normalise(nft_list("inet") + nft_list("bridge"), controller, names)
    header = (
        textwrap.fill(
            f"cnm's nftables ruleset: {description}.",
            width=92,
            initial_indent="# ",
            subsequent_indent="# ",
        )
        + "\n# Generated by tests/firewall/test_golden.py (`nft list table inet cnm` and `nft list\n"
        "# table bridge cnm` in a throwaway namespace; CNM_UPDATE_GOLDEN=1 rewrites it). Bridge\n"
        "# and port names are placeholders, set elements sorted. See README.md here.\n\n"
    )
    document = header + listing
    path = DOCS / f"{scenario.__name__.replace('_', '-')}.nft"
    if UPDATE:
        path.write_text(document)
    assert path.exists(), f"{path} is missing: run with CNM_UPDATE_GOLDEN=1"
    assert document == path.read_text(), f"{path.name} differs: review, then CNM_UPDATE_GOLDEN=1"
