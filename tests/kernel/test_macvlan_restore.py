"""The macvlan driver across a restart (a new controller on the same store and exec root, as
a daemon restart): joined containers keep working and can leave, placeholders no record names
are removed and missing ones recreated, and a child a crashed join left in a sandbox goes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cnm.controller import Controller
from cnm.model import IpamRequest, NetworkRequest
from cnm.osl.namespace import NetNamespace
from tests.support.lan import Lan, lan, ping

from .probes import link, links, run, stop

MakeController = Callable[..., Controller]


def _macvlan(ctl: Controller, name: str, subnet: str, parent: str | None) -> str:
    options = {"parent": parent} if parent else {}
    return ctl.create_network(
        NetworkRequest(
            name=name, driver="macvlan", options=options, ipam_config=[IpamRequest(subnet=subnet)]
        )
    ).id


@pytest.fixture
def lan77(host_netns: NetNamespace) -> Iterator[Lan]:
    with lan(host_netns.path) as made:
        yield made


def test_restart_keeps_containers_working(make_controller: MakeController, lan77: Lan) -> None:
    first = make_controller()
    _macvlan(first, "lan", "10.77.0.0/24", lan77.parent)
    box = first.create_sandbox()
    endpoint = first.connect("lan", box.id)
    inside = {name: info["ifindex"] for name, info in links(box.key).items()}
    host = {name: info["ifindex"] for name, info in links().items()}
    stop(first)

    second = make_controller()
    assert {name: info["ifindex"] for name, info in links(box.key).items()} == inside
    assert {name: info["ifindex"] for name, info in links().items()} == host
    assert second.endpoint(endpoint.id).mac_address == endpoint.mac_address
    ping(box.key, "10.77.0.1")
    second.disconnect("lan", box.id)  # the restored driver finds the child again
    assert link("eth0", box.key) is None
    again = second.connect("lan", box.id)
    assert again.ipv4_address == endpoint.ipv4_address
    ping(box.key, "10.77.0.1")


def test_restart_removes_orphans_and_recreates_placeholders(
    make_controller: MakeController,
) -> None:
    first = make_controller()
    island = _macvlan(first, "island", "10.79.0.0/24", None)
    box = first.create_sandbox()
    first.connect("island", box.id)
    stop(first)
    # A crash between making a placeholder and recording its network leaves a tagged link...
    run("ip", "link", "add", "dm-0123456789ab", "type", "bridge")
    run("ip", "link", "set", "dm-0123456789ab", "alias", "cnm:macvlan:" + "0" * 64)
    # ...and someone deleted the island's placeholder (its child went with it).
    run("ip", "link", "del", f"dm-{island[:12]}")
    assert link("eth0", box.key) is None

    second = make_controller()
    assert link("dm-0123456789ab") is None
    placeholder = link(f"dm-{island[:12]}")
    assert placeholder is not None and placeholder["ifalias"] == f"cnm:macvlan:{island}"
    other = second.create_sandbox()
    second.connect("island", other.id)
    second.disconnect("island", box.id)  # its child is gone already: nothing to remove
    second.connect("island", box.id)
    ping(box.key, "10.79.0.3")


def test_restart_removes_a_child_left_by_a_crashed_join(
    make_controller: MakeController, lan77: Lan
) -> None:
    first = make_controller()
    _macvlan(first, "lan", "10.77.0.0/24", lan77.parent)
    box = first.create_sandbox()
    first.connect("lan", box.id)
    stop(first)
    # The driver made eth1 inside the sandbox, then the daemon died before the record.
    run("ip", "link", "add", "mv-crash", "link", lan77.parent, "type", "macvlan")
    run("ip", "link", "set", "mv-crash", "netns", box.key, "name", "eth1")
    assert link("eth1", box.key) is not None

    second = make_controller()
    assert sorted(links(box.key)) == ["eth0", "lo"]
    second.create_network(NetworkRequest(name="br", ipam_config=[IpamRequest("10.90.0.0/24")]))
    assert second.connect("br", box.id).ifname == "eth1"
