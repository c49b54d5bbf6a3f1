"""Coexisting with Docker: accept cnm's bridges in Docker's DOCKER-USER chain.

Why: a packet passes a netfilter hook only if every base chain on it accepts, whichever table
it lives in. When Docker enabled forwarding itself it sets the iptables FORWARD policy to DROP,
and with br_netfilter (which Docker loads) even frames bridged inside one cnm network traverse
FORWARD; cnm's egress, published ports and ICC would all be dropped there. DOCKER-USER is the
chain Docker reserves for its users and jumps to first from FORWARD, so one ACCEPT per cnm
bridge and direction there hands cnm's traffic back to cnm's own table, which still applies
cnm's policy. Nothing is added unless the chain exists; rules carry the comment ``cnm`` and
are removed with their network. It goes through the iptables binaries because Docker's rules
may live in iptables-legacy, invisible to nftables.

This is the only place cnm touches a table it does not own.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Sequence

from cnm.osl.namespace import NetNamespace
from cnm.osl.reaper import REAPER

log = logging.getLogger(__name__)

CHAIN = "DOCKER-USER"
COMMENT = "cnm"
BINARIES = ("iptables", "ip6tables")
TIMEOUT_S = 10.0


def _run(args: Sequence[str]) -> tuple[int, str]:
    """Run through the daemon's reaper when it runs (it owns every child's exit status)."""
    try:
        if REAPER.running:
            done = REAPER.run(args, timeout=TIMEOUT_S)
            return done.returncode, done.stdout.decode()
        result = subprocess.run(args, capture_output=True, timeout=TIMEOUT_S, check=False)
    except FileNotFoundError:
        return 127, ""
    return result.returncode, result.stdout.decode()


def _rule(direction: str, bridge: str) -> list[str]:
    return [direction, bridge, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"]


class DockerUser:
    """Keeps one ACCEPT per bridge and direction in DOCKER-USER, where that chain exists.

    Whether it exists is looked up by ``refresh`` (at start, and when another program changes
    a filter table), so adding a network costs no iptables call on a host without Docker."""

    def __init__(self, namespace: NetNamespace) -> None:
        self._namespace = namespace
        self._present: tuple[str, ...] = ()

    def refresh(self, bridges: Iterable[str]) -> None:
        self._present = BINARIES
        self.sync(bridges)

    def sync(self, bridges: Iterable[str]) -> None:
        if not self._present:
            return
        wanted = {tuple(_rule(d, b)) for b in bridges for d in ("-i", "-o")}
        present_in = []
        with self._namespace.entered():
            for binary in self._present:
                code, listing = _run([binary, "-w", "-S", CHAIN])
                if code != 0:
                    continue  # no such chain: Docker is not here
                present_in.append(binary)
                ours = set()
                for line in listing.splitlines():
                    words = line.split()
                    if words[:2] == ["-A", CHAIN] and f"--comment {COMMENT}" in line:
                        ours.add(tuple(w.strip('"') for w in words[2:]))
                for rule in ours - wanted:
                    _run([binary, "-w", "-D", CHAIN, *rule])
                for rule in sorted(wanted - ours):
                    code, _ = _run([binary, "-w", "-I", CHAIN, "1", *rule])
                    if code != 0:
                        log.warning("%s: could not add %s to %s", binary, " ".join(rule), CHAIN)
        self._present = tuple(present_in)
