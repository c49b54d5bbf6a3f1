"""A daemon restart: the rules stay in the kernel while it is down (containers keep their
published ports), and the next start binds the same host ports again and writes the same
ruleset in one transaction, without what no record names any more."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from cnm.model import PortRequest

from .probes import EchoServer, answer, nft_list, run
from .topology import Controllers, Outside, network, sandbox_on


def test_restart_keeps_and_rebinds_published_ports(
    make_controller: Controllers, outside: Outside, servers: Callable[..., EchoServer]
) -> None:
    controller = make_controller()
    network(controller, "kept", "10.77.0.0/24")
    box = sandbox_on(controller, "box", "kept")
    servers(box.key, "box", [80])
    mappings = controller.publish(
        box.id, [PortRequest("tcp", 80, host_port=8080), PortRequest("tcp", 80)]
    )
    written = nft_list("inet"), nft_list("bridge")
    make_controller.stop(controller)
    # Down: the kernel still translates, and the host ports are free (as with Docker).
    assert answer(outside.path, "tcp", outside.host4, 8080) == f"box {outside.ip4}"
    # Someone edits the table while no daemon watches; the next start writes it whole.
    run("nft", "add", "element", "inet", "cnm", "ports4_any", "{ tcp . 9999 : 10.77.0.9 . 80 }")
    restarted = make_controller()
    assert restarted.published(box.id) == mappings  # the ephemeral port too
    assert (nft_list("inet"), nft_list("bridge")) == written
    with pytest.raises(OSError), socket.socket() as taken:
        taken.bind(("0.0.0.0", 8080))
    assert answer(None, "tcp", "::1", 8080) == "box 10.77.0.1"  # the relay is back


def test_a_vanished_sandbox_loses_its_ports_at_start(
    make_controller: Controllers, outside: Outside
) -> None:
    controller = make_controller()
    network(controller, "lost", "10.78.0.0/24")
    box = sandbox_on(controller, "box", "lost")
    controller.publish(box.id, [PortRequest("tcp", 80, host_port=8081)])
    make_controller.stop(controller)
    run("umount", box.key)  # its namespace is gone (say, a reboot of the sandbox)
    restarted = make_controller()
    assert restarted.published(box.id) == []
    assert "8081" not in nft_list("inet")
    assert not list(restarted.store.list("ports/"))
