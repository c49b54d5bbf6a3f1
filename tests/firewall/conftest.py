"""Fixtures for the firewall tests: a controller in the throwaway host namespace of
``host_netns``, an "outside" host wired to it (``topology.py``), echo servers, and sandboxes on
networks.

Containers under runc come from the fixtures of tests/conftest.py (``runtime``, ``busybox``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnm.controller import Controller
from cnm.osl.namespace import NetNamespace, delete_netns
from tests.support.netns import make_test_netns

from .probes import EchoServer, run
from .topology import HOST4, HOST6, OUTSIDE4, OUTSIDE6, Controllers, Outside


@pytest.fixture
def make_controller(host_netns: NetNamespace, tmp_path: Path) -> Iterator[Controllers]:
    controllers = Controllers(tmp_path)
    yield controllers
    for ctl in reversed(controllers.running):
        for sandbox in ctl.sandboxes():
            ctl.delete_sandbox(sandbox.id)
        controllers.stop(ctl)


@pytest.fixture
def controller(make_controller: Controllers) -> Controller:
    return make_controller()


@pytest.fixture
def outside(host_netns: NetNamespace) -> Iterator[Outside]:
    ns = make_test_netns("out")
    try:
        run("ip", "link", "add", "vout0", "type", "veth", "peer", "name", "vin0", "netns", ns.path)
        # No duplicate address detection on the link: a tentative link-local address would
        # hold up neighbour discovery for the first second of every test.
        run("sysctl", "-qw", "net.ipv6.conf.vout0.accept_dad=0")
        run("sysctl", "-qw", "net.ipv6.conf.vin0.accept_dad=0", netns=ns.path)
        run("ip", "addr", "add", f"{HOST4}/24", "dev", "vout0")
        run("ip", "-6", "addr", "add", f"{HOST6}/64", "dev", "vout0", "nodad")
        run("ip", "link", "set", "vout0", "up")
        for args in (
            ("ip", "addr", "add", f"{OUTSIDE4}/24", "dev", "vin0"),
            ("ip", "-6", "addr", "add", f"{OUTSIDE6}/64", "dev", "vin0", "nodad"),
            ("ip", "link", "set", "vin0", "up"),
        ):
            run(*args, netns=ns.path)
        yield Outside(ns.path)
    finally:
        ns.close()
        delete_netns(ns.path)


@pytest.fixture
def servers() -> Iterator[Callable[[str | None, str, list[int]], EchoServer]]:
    started: list[EchoServer] = []

    def start(netns: str | None, name: str, ports: list[int]) -> EchoServer:
        server = EchoServer(netns, name, ports)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
