"""The per-sandbox files a container sees as /etc/hosts, /etc/resolv.conf and /etc/hostname.

resolv.conf starts from the host's and drops loopback nameservers: 127.0.0.53 (systemd-resolved)
or ::1 on the host is unreachable from inside the sandbox's own namespace, where loopback is the
container's own. Docker then falls back to public resolvers; cnm does not (this machine must never
send to outside addresses), so a sandbox whose host has only loopback resolvers gets none.

A sandbox that uses the embedded resolver (Docker's rule: the container's network mode is a
user-defined network) gets ``nameserver 127.0.0.11`` instead, with Docker's ``ndots:0`` so that
a bare container name is asked as is before any search domain; the nameservers it would have had
become the resolver's upstreams, asked from the host namespace (where loopback ones work).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

EMBEDDED_NAMESERVER = "127.0.0.11"

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def render_hosts(
    hostname: str,
    domainname: str,
    own_addresses: Iterable[str],
    extra_hosts: Sequence[str],
) -> str:
    """Docker's layout: the fixed header, --add-host entries, then the sandbox's addresses."""
    lines = [HOSTS_HEADER]
    for entry in extra_hosts:
        name, _, address = entry.partition(":")
        lines.append(f"{address}\t{name}\n")
    names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    for address in own_addresses:
        lines.append(f"{address}\t{names}\n")
    return "".join(lines)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


class ResolvConf(NamedTuple):
    nameservers: list[str]  # all of them, loopback ones included
    search: list[str]
    options: list[str]


def parse_resolv_conf(text: str) -> ResolvConf:
    conf = ResolvConf([], [], [])
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            conf.nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            conf.search[:] = fields[1:]
        elif fields[0] == "options":
            conf.options.extend(fields[1:])
    return conf


def _search_and_options(search: Sequence[str], options: Sequence[str]) -> list[str]:
    out = []
    if search and list(search) != ["."]:
        out.append(f"search {' '.join(search)}\n")
    if options:
        out.append(f"options {' '.join(options)}\n")
    return out


def render_resolv_conf(
    host_resolv_conf: str,
    dns: Sequence[str],
    dns_search: Sequence[str],
    dns_options: Sequence[str],
) -> str:
    """The host's resolv.conf with loopback nameservers removed and the sandbox's --dns,
    --dns-search and --dns-option overriding the corresponding host lines."""
    host = parse_resolv_conf(host_resolv_conf)
    nameservers = [server for server in host.nameservers if not _is_loopback(server)]
    out = [f"nameserver {server}\n" for server in (dns or nameservers)]
    out += _search_and_options(list(dns_search) or host.search, list(dns_options) or host.options)
    return "".join(out)


def render_embedded_resolv_conf(
    host_resolv_conf: str, dns_search: Sequence[str], dns_options: Sequence[str]
) -> str:
    """Docker's resolv.conf for the embedded resolver: 127.0.0.11, the search domains and
    options as for any sandbox, and ``ndots:0`` unless an ndots option was given."""
    host = parse_resolv_conf(host_resolv_conf)
    options = list(dns_options) or host.options
    if not any(option.startswith("ndots:") for option in options):
        options.append("ndots:0")
    out = [f"nameserver {EMBEDDED_NAMESERVER}\n"]
    out += _search_and_options(list(dns_search) or host.search, options)
    return "".join(out)


def write_in_place(path: Path, content: str) -> None:
    """Rewrite ``path`` keeping its inode: a container sees the file through a bind mount, which
    follows the inode, so replacing the file by rename would hide the update from it.

    The new content is written over the old and the file cut to its length afterwards, never
    truncated to zero first: ext4 (``auto_da_alloc``) flushes a file that was truncated to zero
    when it is closed, a disk write on every join's hosts file, which on a busy disk took tens
    of milliseconds under the sandbox's lock."""
    data = content.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
