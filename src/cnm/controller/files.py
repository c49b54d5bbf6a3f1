"""Where each sandbox's hosts, resolv.conf and hostname live, and when they are written.

They are written once when the sandbox is made; afterwards only ``hosts`` changes (on join and
leave), rewritten in place so the bind mount a running container holds keeps showing it. The
rendering rules (Docker's, with cnm's differences) are in ``cnm.sandbox_files``.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from typing import Protocol

from cnm import sandbox_files
from cnm.model import Endpoint, Sandbox

FILE_NAMES = ("hosts", "resolv.conf", "hostname")


class ResolverSettings(Protocol):
    """The daemon-wide settings a resolv.conf depends on (read when a sandbox is made)."""

    host_resolv_conf: Path
    dns: list[str]


class SandboxFiles:
    def __init__(self, root: Path, settings: ResolverSettings) -> None:
        self.root = root
        self._settings = settings

    def path(self, sandbox_id: str, name: str) -> Path:
        return self.root / sandbox_id / name

    def make_directory(self, sandbox_id: str) -> None:
        (self.root / sandbox_id).mkdir(parents=True)

    def write_new(self, sandbox: Sandbox) -> None:
        """Write a new sandbox's resolv.conf, hostname and (address-less) hosts."""
        try:
            host_conf = self._settings.host_resolv_conf.read_text()
        except OSError:
            host_conf = ""
        if sandbox.embedded_dns:
            resolv_conf = sandbox_files.render_embedded_resolv_conf(
                host_conf, sandbox.dns_search, sandbox.dns_options
            )
        else:
            resolv_conf = sandbox_files.render_resolv_conf(
                host_conf,
                sandbox.dns or self._settings.dns,
                sandbox.dns_search,
                sandbox.dns_options,
            )
        sandbox_files.write_in_place(self.path(sandbox.id, "resolv.conf"), resolv_conf)
        sandbox_files.write_in_place(self.path(sandbox.id, "hostname"), sandbox.hostname + "\n")
        self.write_hosts(sandbox, [])

    def write_hosts(self, sandbox: Sandbox, endpoints: list[Endpoint]) -> None:
        """Rewrite the sandbox's hosts file for its joined ``endpoints``."""
        own = [
            ipaddress.ip_interface(text).ip.compressed
            for e in sorted(endpoints, key=lambda e: e.join_order)
            for text in (e.ipv4_address, e.ipv6_address)
            if text
        ]
        sandbox_files.write_in_place(
            self.path(sandbox.id, "hosts"),
            sandbox_files.render_hosts(
                sandbox.hostname,
                sandbox.domainname,
                own,
                [*sandbox.extra_hosts, *sandbox.link_hosts],
            ),
        )

    def remove(self, sandbox_id: str) -> None:
        """Three known files, so no directory scan (unless something else was left there)."""
        directory = self.root / sandbox_id
        for name in FILE_NAMES:
            (directory / name).unlink(missing_ok=True)
        try:
            directory.rmdir()
        except OSError:
            shutil.rmtree(directory, ignore_errors=True)

    def remove_unknown(self, known: set[str]) -> None:
        """After a crash: the directories of sandboxes that have no record."""
        for directory in self.root.iterdir():
            if directory.name not in known:
                shutil.rmtree(directory, ignore_errors=True)
