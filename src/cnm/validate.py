"""Every user-supplied value the runtime and the controller both check, checked once here.

One function per kind of input, each returning the value in its normal form or raising
InvalidParameter with a message that names what was wrong; the API and the library get the
same answer whichever layer sees the value first. The messages are Docker's where Docker has
one, so clients that match on them keep working. Patterns are matched whole (``fullmatch``:
``$`` would let a trailing newline through).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cnm.errors import InvalidParameter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Docker's restricted name pattern: a container name has at least two characters.
_CONTAINER_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
# Six octets separated by colons or by hyphens (the forms Go's net.ParseMAC takes for EUI-48).
_MAC = re.compile(r"[0-9a-fA-F]{2}(?P<sep>[:-])[0-9a-fA-F]{2}(?:(?P=sep)[0-9a-fA-F]{2}){4}")


def network_name(name: str) -> str:
    """Docker 20.10's rule (libnetwork's ``config.ValidateName``): any name that is not blank,
    so ``my net`` or ``a/b`` are names (Docker refuses only what ``strings.TrimSpace`` empties;
    it answers 500 "invalid name: ...", cnm 400)."""
    if not name.strip():
        raise InvalidParameter(f"invalid name: {name!r}: a network name cannot be empty or blank")
    return name


def container_name(name: str) -> str:
    """A container name as stored: without the leading slash Docker's API may send."""
    if not _CONTAINER_NAME.fullmatch(name):
        raise InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.removeprefix("/")


def interface_name(name: str) -> str:
    """A Linux interface name: 1-15 bytes (IFNAMSIZ less the NUL), none of them '/', ':' or
    whitespace, and not "." or ".." (the kernel's dev_valid_name)."""
    if not 0 < len(name.encode()) < 16:
        raise InvalidParameter(
            f"invalid interface name {name!r}: it must be 1 to 15 characters long"
        )
    if name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        raise InvalidParameter(
            f"invalid interface name {name!r}: '/', ':', whitespace, '.' and '..' are not allowed"
        )
    return name


def mac_address(text: str) -> str:
    """A MAC for an interface: lower-case and colon-separated; unicast, not all zeros."""
    if not _MAC.fullmatch(text):
        raise InvalidParameter(
            f"invalid MAC address {text!r}: expected six hex octets like 02:42:ac:11:00:02"
        )
    mac = text.lower().replace("-", ":")
    if int(mac[:2], 16) & 1:
        raise InvalidParameter(f"invalid MAC address {text}: a multicast address")
    if mac.replace(":", "").strip("0") == "":
        raise InvalidParameter(f"invalid MAC address {text}: all zeros")
    return mac


def ip_address(text: str, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what}: {text!r} is not an IP address") from None


def ip_address_of_version(text: str, version: int) -> IPAddress:
    """An endpoint's static ``--ip`` (version 4) or ``--ip6`` (version 6)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid IPv{version} address: {text}") from None
    if address.version != version:
        raise InvalidParameter(f"invalid IPv{version} address: {text}")
    return address


def static_address(text: str, version: int, subnets: Iterable[str]) -> IPAddress:
    """An endpoint's static address on a network: of the family asked for, inside one of the
    network's ``subnets``."""
    address = ip_address_of_version(text, version)
    if not any(address in ipaddress.ip_network(subnet) for subnet in subnets):
        raise InvalidParameter(
            "invalid endpoint settings:\n"
            f"no configured subnet or ip-range contain the IP address {text}"
        )
    return address


HOST_GATEWAY = "host-gateway"  # --add-host name:host-gateway: the daemon's host gateway IP


def extra_host(entry: str) -> tuple[str, IPAddress | None]:
    """``--add-host name:ip`` as (name, address); the address is None for Docker's special
    ``host-gateway``, which the controller replaces when it makes the sandbox."""
    name, sep, address = entry.partition(":")
    if not sep or not name:
        raise InvalidParameter(f"bad format for add-host: {entry!r}")
    if address == HOST_GATEWAY:
        return name, None
    try:
        return name, ipaddress.ip_address(address)
    except ValueError:
        raise InvalidParameter(f"invalid IP address in add-host: {entry!r}") from None


def link(text: str) -> tuple[str, str]:
    """``--link name:alias`` (or ``name``, or Docker's stored ``/name:/container/alias``) as
    (name, alias), by Docker's ParseLink."""
    if not text:
        raise InvalidParameter("empty string specified for links")
    parts = text.split(":")
    if len(parts) > 2 or not all(parts):
        raise InvalidParameter(f"bad format for links: {text}")
    if len(parts) == 1:
        return text, text
    name, alias = parts
    if name.startswith("/"):
        return name[1:], alias.rsplit("/", 1)[-1]
    return name, alias


def link_local_ip(text: str) -> IPAddress:
    """A ``--link-local-ip``: an IPv4 (169.254.0.0/16) or IPv6 (fe80::/10) link-local
    unicast address, as the docker CLI checks it (the daemon itself does not)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or not address.is_link_local or address.is_multicast:
        raise InvalidParameter(f"invalid link local IP address: {text}")
    return address


def dns_server(text: str) -> IPAddress:
    """A ``--dns`` server."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"{text} is not an ip address") from None
