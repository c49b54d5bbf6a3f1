"""The scene of the firewall tests: controllers in the test's host namespace, the "outside"
host wired to it, networks and sandboxes on them.

The outside host is one more namespace joined to the host namespace by a veth: vout0
(198.18.0.1/24, fd99::1/64) on the host, vin0 (198.18.0.2/24, fd99::2/64) outside, addresses
from the benchmarking and ULA ranges, nothing else (the ``outside`` fixture makes it). The host
namespace never has a route to the machine's network: it is fresh and holds only what the test
and the controller make.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnm.controller import Controller, ControllerConfig
from cnm.model import (
    EndpointOptions,
    IpamRequest,
    Network,
    NetworkRequest,
    Sandbox,
    SandboxOptions,
)
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

from .probes import run

HOST4, OUTSIDE4 = "198.18.0.1", "198.18.0.2"
HOST6, OUTSIDE6 = "fd99::1", "fd99::2"


@dataclass
class Outside:
    path: str
    host4: str = HOST4
    ip4: str = OUTSIDE4
    host6: str = HOST6
    ip6: str = OUTSIDE6


class Controllers:
    """Controllers on the test's store and exec root (a daemon started again is another one);
    ``stop`` closes one as a stopping daemon would, the rest are cleaned up at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.resolv = tmp_path / "resolv.conf"
        self.resolv.write_text("nameserver 192.0.2.53\n")
        self.running: list[Controller] = []

    def __call__(self, **config: Any) -> Controller:
        store = SqliteStore(self.tmp_path / "cnm.db")
        ctl = build_controller(
            ControllerConfig(
                exec_root=self.tmp_path / "exec", host_resolv_conf=self.resolv, **config
            ),
            store,
        )
        self.running.append(ctl)
        ctl.start()
        return ctl

    def stop(self, ctl: Controller) -> None:
        self.running.remove(ctl)
        ctl.close()
        ctl.store.close()


def network(ctl: Controller, name: str, subnet: str, **kwargs: Any) -> Network:
    options = kwargs.pop("options", {})
    ipam = [IpamRequest(subnet=subnet)]
    if "ipv6_subnet" in kwargs:
        ipam.append(IpamRequest(subnet=kwargs.pop("ipv6_subnet")))
        kwargs["enable_ipv6"] = True
    return ctl.create_network(
        NetworkRequest(name=name, options=options, ipam_config=ipam, **kwargs)
    )


def ipv6_settled(ctl: Controller, net: str) -> None:
    """Wait until the bridge's link-local address has passed duplicate address detection: until
    then the kernel sends no neighbour solicitation for a packet it forwards onto the bridge
    (ndisc_solicit wants a usable link-local source), so the first inbound IPv6 packets to a
    just-made network wait about a second."""
    bridge = ctl.network_info(ctl.network(net).id)["com.docker.network.bridge.name"]
    deadline = time.monotonic() + 5
    while run("ip", "-6", "addr", "show", "dev", bridge, "tentative").strip():
        assert time.monotonic() < deadline, f"{bridge} stayed tentative"
        time.sleep(0.05)


def stop_watching(ctl: Controller) -> None:
    """Stop the firewall's monitor, so a test can edit the tables unanswered."""
    monitor = ctl.firewall._monitor  # type: ignore[attr-defined]
    monitor.close()
    ctl.firewall._monitor = None  # type: ignore[attr-defined]


def sandbox_on(ctl: Controller, name: str, *networks: str) -> Sandbox:
    """A sandbox joined to ``networks`` in order (the first gets eth0)."""
    box = ctl.create_sandbox(SandboxOptions(hostname=name))
    for net in networks:
        ctl.connect(net, box.id, EndpointOptions(name=name))
    return ctl.sandbox(box.id)


def address(ctl: Controller, box: Sandbox, net: str, version: int = 4) -> str:
    network_id = ctl.network(net).id
    (endpoint,) = [e for e in ctl.endpoints(sandbox_id=box.id) if e.network_id == network_id]
    text = endpoint.ipv4_address if version == 4 else endpoint.ipv6_address
    assert text is not None
    return text.split("/")[0]
