"""Every user-supplied value the runtime and the controller both check, checked once here.

One function per kind of input, each returning the value in its normal form or raising
InvalidParameter with a message that names what was wrong; the API and the library get the
same answer whichever layer sees the value first. The messages are Docker's where Docker has
one, so clients that match on them keep working. Patterns are matched whole (``fullmatch``:
``$`` would let a trailing newline through), and numbers are ASCII decimal only: Python's
``int()`` and ``\\d`` also take other scripts' digits (Arabic-Indic, full-width), which Docker's
Go parsers refuse and which would be echoed back as given.

Limits where Docker has none that the kernel or DNS does not impose anyway, chosen so that what
is accepted works: names are at most 255 characters (a DNS name's limit; the embedded resolver
answers for them), a hostname at most 64 bytes (the kernel's HOST_NAME_MAX: longer ones fail
in sethostname at start), an interface name 1-15 bytes (IFNAMSIZ) without '/', ':',
whitespace or NUL (the kernel's dev_valid_name). JSON bodies may nest at most
``MAX_JSON_DEPTH`` levels (Docker's deepest request is under ten; Python's decoder would
otherwise recurse until RecursionError) and hold no NUL character in any string, since none
of their strings can reach the kernel, runc or a file with one.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

from cnm.errors import InvalidParameter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_NAME_LENGTH = 255
MAX_HOSTNAME_BYTES = 64  # HOST_NAME_MAX
MAX_IFNAME_BYTES = 15  # IFNAMSIZ less the NUL
MAX_JSON_DEPTH = 64

# Docker's restricted name pattern: a container name has at least two characters.
_CONTAINER_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
# Six octets separated by colons or by hyphens (the forms Go's net.ParseMAC takes for EUI-48).
_MAC = re.compile(r"[0-9a-fA-F]{2}(?P<sep>[:-])[0-9a-fA-F]{2}(?:(?P=sep)[0-9a-fA-F]{2}){4}")


def network_name(name: str) -> str:
    """Docker 20.10's rule (libnetwork's ``config.ValidateName``): any name that is not blank,
    so ``my net`` or ``a/b`` are names (Docker refuses only what ``strings.TrimSpace`` empties;
    it answers 500 "invalid name: ...", cnm 400). Beyond Docker's rule, as for every name cnm
    keeps: at most MAX_NAME_LENGTH characters, and no control character (a newline or a NUL
    would break every listing that shows the name)."""
    if not name.strip():
        raise InvalidParameter(f"invalid name: {name!r}: a network name cannot be empty or blank")
    if any(not c.isprintable() for c in name):
        raise InvalidParameter(
            f"invalid network name {name[:40]!r}: control characters are not allowed"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameter(
            f"invalid network name {name[:20]}...: {len(name)} characters, "
            f"at most {MAX_NAME_LENGTH} allowed"
        )
    return name


def container_name(name: str) -> str:
    """A container name as stored: without the leading slash Docker's API may send."""
    if not _CONTAINER_NAME.fullmatch(name):
        raise InvalidParameter(
            f"Invalid container name ({name!r}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    bare = name.removeprefix("/")
    if len(bare) > MAX_NAME_LENGTH:
        raise InvalidParameter(
            f"Invalid container name ({bare[:20]}...): {len(bare)} characters, "
            f"at most {MAX_NAME_LENGTH} allowed"
        )
    return bare


_DECIMAL = re.compile(r"-?[0-9]+")


def decimal(text: str, what: str) -> int:
    """An integer written in ASCII decimal digits (an optional minus sign first)."""
    if not _DECIMAL.fullmatch(text):
        raise InvalidParameter(f"invalid {what}: {text!r} is not a decimal number")
    return int(text)


def mtu(text: str) -> int:
    """A link MTU: the IPv4 minimum (68) to the largest a veth or bridge takes (65535)."""
    if not _DECIMAL.fullmatch(text):
        raise InvalidParameter(f"invalid MTU {text!r}: not a number")
    value = int(text)
    if not 68 <= value <= 65535:
        raise InvalidParameter(f"invalid MTU {value}: must be between 68 and 65535")
    return value


def interface_name(name: str, what: str = "interface name") -> str:
    """A Linux interface name, by the kernel's dev_valid_name: 1-15 bytes (IFNAMSIZ less the
    NUL), none of them '/', ':', whitespace or a control character, not "." or ".."."""
    size = len(name.encode())
    bad = {c for c in name if c in "/:" or c.isspace() or not c.isprintable()}
    if not 1 <= size <= MAX_IFNAME_BYTES or bad or name in (".", ".."):
        raise InvalidParameter(
            f"invalid {what} {name!r}: 1-{MAX_IFNAME_BYTES} bytes, no '/', ':', spaces or "
            "control characters, not '.' or '..'"
        )
    return name


def hostname(name: str, what: str = "hostname") -> str:
    """A container's hostname or domain name, as sethostname(2) takes it."""
    bad = [c for c in name if c.isspace() or not c.isprintable()]
    if len(name.encode()) > MAX_HOSTNAME_BYTES or bad:
        raise InvalidParameter(
            f"invalid {what} {name[:20]!r}{'...' if len(name) > 20 else ''}: at most "
            f"{MAX_HOSTNAME_BYTES} bytes, no spaces or control characters"
        )
    return name


def working_dir(path: str) -> str:
    """A container's working directory: absolute, or empty for the image's."""
    if path and not path.startswith("/"):
        raise InvalidParameter(
            f"the working directory '{path}' is invalid, it needs to be an absolute path"
        )
    return path


_ENV_NAME = re.compile(r"[^=\s]+")


def env_entry(entry: str) -> str:
    """``NAME=value`` (or ``NAME`` alone): a name without '=' or whitespace."""
    name = entry.partition("=")[0]
    if not _ENV_NAME.fullmatch(name):
        raise InvalidParameter(f"invalid environment variable: {entry!r}")
    return entry


def json_document(text: str | bytes, what: str) -> object:
    """JSON from a client (``what``: "JSON" for a body, "filters"...): well-formed, at most
    MAX_JSON_DEPTH levels deep, no NUL character in any string or key. Errors name where the
    problem is."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidParameter(
            f"invalid {what}: nested more than {MAX_JSON_DEPTH} levels deep"
        ) from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidParameter(f"invalid {what}: {err}") from None
    _check_json_value(value, what)
    return value


def _check_json_value(value: object, what: str) -> None:
    """Walk the document without recursion (its depth is what is being checked)."""
    pending: list[tuple[object, str, int]] = [(value, "", 1)]
    while pending:
        item, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidParameter(f"invalid {what}: nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(item, str):
            if "\0" in item:
                where = path or "the document"
                raise InvalidParameter(f"invalid {what}: {where} holds a NUL character")
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\0" in key:
                    raise InvalidParameter(f"invalid {what}: a key holds a NUL character")
                pending.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))


def published_ports(
    ephemeral: int, sockets: int, ephemeral_range: tuple[int, int], socket_budget: int
) -> None:
    """Whether a container's published ports can ever be bound: ``ephemeral`` of them need a
    host port from the kernel's ephemeral range, and all need ``sockets`` host sockets of
    the daemon's ``socket_budget``."""
    low, high = ephemeral_range
    if ephemeral > high - low + 1:
        raise InvalidParameter(
            f"invalid HostConfig.PortBindings: {ephemeral} ports need a host port from the "
            f"ephemeral range {low}-{high}, which has {high - low + 1}"
        )
    if sockets > socket_budget:
        raise InvalidParameter(
            f"invalid HostConfig.PortBindings: the ports need {sockets} host sockets, more "
            f"than the {socket_budget} this daemon can hold for one container (half its "
            "open-files limit)"
        )


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
