"""A "LAN" for the macvlan tests (kernel and clients): a veth pair whose one end, the parent,
is in the namespace that plays the host and whose other end lives in an "outside" namespace
holding the LAN's router addresses. Nothing on it reaches the machine's real network.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from cnm.osl.namespace import delete_netns
from tests.support.netns import make_test_netns


def run(*args: str, netns: str | None = None) -> str:
    """A command, in the namespace at ``netns`` if given; its stdout (it must succeed)."""
    cmd = ["nsenter", f"--net={netns}", *args] if netns else list(args)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}): {done.stderr.strip()}"
    return done.stdout


@dataclass(frozen=True)
class Lan:
    parent: str  # the host end's name, in the namespace that plays the host
    outside: str  # the outside namespace's path
    wire: str  # the outside end's name

    def neighbours(self) -> dict[str, str]:
        """The outside's neighbour table: address -> MAC (entries with a MAC only)."""
        out = run("ip", "-j", "neigh", "show", "dev", self.wire, netns=self.outside)
        return {
            entry["dst"]: entry["lladdr"] for entry in json.loads(out or "[]") if "lladdr" in entry
        }


@contextmanager
def lan(
    host_netns: str, addresses: Sequence[str] = ("10.77.0.1/24",), *, parent: str | None = None
) -> Iterator[Lan]:
    """A LAN whose outside end carries ``addresses`` (the router's); the parent (named
    ``parent``, else ``lan`` and 6 hex) goes into the namespace at ``host_netns``."""
    outside = make_test_netns("lan")
    name = parent or f"lan{secrets.token_hex(3)}"
    wire = "wire0"
    try:
        run(
            "ip",
            "link",
            "add",
            wire,
            "type",
            "veth",
            "peer",
            "name",
            name,
            "netns",
            host_netns,
            netns=outside.path,
        )
        for address in addresses:
            family = "-6" if ":" in address else "-4"
            extra = ["nodad"] if ":" in address else []
            run("ip", family, "addr", "add", address, "dev", wire, *extra, netns=outside.path)
        run("ip", "link", "set", wire, "up", netns=outside.path)
        run("ip", "link", "set", name, "up", netns=host_netns)
        yield Lan(name, outside.path, wire)
    finally:
        outside.close()
        delete_netns(outside.path)


def ping(netns: str, destination: str, *, expect: bool = True, timeout_s: int = 2) -> bool:
    """One ICMP echo from ``netns`` (busybox ping) after checking the route uses an
    interface the test made; asserts the outcome is ``expect``."""
    (route,) = json.loads(run("ip", "-j", "route", "get", destination, netns=netns))
    dev = route["dev"]
    assert dev.startswith(("eth", "mv", "lan")), f"{destination} would leave {netns} via {dev}"
    done = subprocess.run(
        ["nsenter", f"--net={netns}", "busybox", "ping", "-c1", f"-W{timeout_s}", destination],
        capture_output=True,
        text=True,
        timeout=timeout_s + 5,
        check=False,
    )
    answered = done.returncode == 0
    assert answered == expect, f"ping {destination} from {netns}: {done.stdout}{done.stderr}"
    return answered
