"""Port publishing requests: Docker's ``-p`` forms, parsed and checked before anything is made.

``-p [hostIP:][hostPort:]containerPort[/tcp|udp|sctp]`` follows go-connections' ParsePortSpec:
an IPv6 host address goes in brackets; ``8000-8010:80-90`` pairs ports one to one; a single
container port with a host range (``8000-8010:80``) takes the first free host port of the
range; an omitted or 0 host port is left to the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``). Unlike Docker, container port 0 is refused.

A request names no container address: the mapper binds it once the container's endpoint is
known, and the result is a ``PortMapping``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence

from cnm.errors import InvalidParameter
from cnm.model import PortRequest

PROTOCOLS = ("tcp", "udp", "sctp")
_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")


def _range(text: str, what: str, spec: str, lowest: int) -> tuple[int, int]:
    match = _RANGE.fullmatch(text)
    if match is None:
        raise InvalidParameter(f"invalid {what} {text!r} in port spec {spec!r}")
    start = int(match[1])
    end = int(match[2]) if match[2] is not None else start
    for port in (start, end):
        if not lowest <= port <= 65535:
            raise InvalidParameter(
                f"invalid {what} {port} in port spec {spec!r}: must be between {lowest} and 65535"
            )
    if end < start:
        raise InvalidParameter(f"invalid {what} range {text!r} in port spec {spec!r}")
    return start, end


def _proto(text: str, spec: str) -> str:
    proto = text.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise InvalidParameter(
            f"invalid protocol {text!r} in port spec {spec!r}: expected tcp, udp or sctp"
        )
    return proto


def parse_host_ip(text: str) -> str:
    """A host address as given (brackets around IPv6 allowed), normalised; "" stays ""."""
    if not text:
        return ""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        raise InvalidParameter(f"invalid host IP address {text!r}") from None


def parse_publish(spec: str) -> list[tuple[str, str, str]]:
    """``-p`` as the docker CLI expands it: ``[(container "80/tcp", host IP, host port)]``,
    one entry per container port; the host port is "", one port, or a range to choose from."""
    port_part, _, proto_text = spec.partition("/")
    proto = _proto(proto_text, spec)
    parts = port_part.split(":")
    if len(parts) > 3:  # an IPv6 host address without brackets
        parts = [":".join(parts[:-2]), *parts[-2:]]
    container = parts[-1]
    host_port = parts[-2] if len(parts) > 1 else ""
    host_ip = parse_host_ip(parts[0]) if len(parts) > 2 else ""
    if not container:
        raise InvalidParameter(f"no container port in port spec {spec!r}")
    start, end = _range(container, "container port", spec, 1)
    if not host_port:
        return [(f"{port}/{proto}", host_ip, "") for port in range(start, end + 1)]
    host_start, host_end = _range(host_port, "host port", spec, 0)
    if start == end:
        return [(f"{start}/{proto}", host_ip, host_port)]
    if end - start != host_end - host_start:
        raise InvalidParameter(
            f"invalid ranges in port spec {spec!r}: container ports {container} and host "
            f"ports {host_port} differ in length"
        )
    return [(f"{start + i}/{proto}", host_ip, str(host_start + i)) for i in range(end - start + 1)]


def parse_port_key(key: str) -> tuple[int, int, str]:
    """``80``, ``80/udp`` or ``8000-8010/tcp`` -> (first, last, proto)."""
    port_text, _, proto_text = key.partition("/")
    start, end = _range(port_text, "container port", key, 1)
    return start, end, _proto(proto_text, key)


def requests_from_config(
    bindings: Mapping[str, Sequence[tuple[str, str]]],
    exposed: Iterable[str],
    publish_all: bool,
) -> list[PortRequest]:
    """Docker's HostConfig.PortBindings ({"80/tcp": [(HostIp, HostPort)]}), plus every exposed
    port not bound there when PublishAllPorts (-P) is set, as checked requests."""
    requests: list[PortRequest] = []
    bound: set[tuple[int, str]] = set()
    for key, entries in bindings.items():
        start, end, proto = parse_port_key(key)
        bound.update((port, proto) for port in range(start, end + 1))
        for host_ip_text, host_port in entries or [("", "")]:
            host_ip = parse_host_ip(host_ip_text)
            if not host_port:
                requests += [PortRequest(proto, p, host_ip) for p in range(start, end + 1)]
                continue
            host_start, host_end = _range(host_port, "host port", f"{key}:{host_port}", 0)
            if start == end:
                requests.append(PortRequest(proto, start, host_ip, host_start, host_end))
            elif end - start == host_end - host_start:
                requests += [
                    PortRequest(proto, start + i, host_ip, host_start + i)
                    for i in range(end - start + 1)
                ]
            else:
                raise InvalidParameter(
                    f"invalid ranges for port {key}: container ports and host ports "
                    f"{host_port} differ in length"
                )
    if publish_all:
        for key in exposed:
            start, end, proto = parse_port_key(key)
            requests += [
                PortRequest(proto, port)
                for port in range(start, end + 1)
                if (port, proto) not in bound
            ]
    _check_duplicates(requests)
    return requests


def _overlap(a: str, b: str) -> bool:
    """Whether two host addresses of requests can be the same socket address."""
    if not a or not b or a == b:
        return True
    ip_a, ip_b = ipaddress.ip_address(a), ipaddress.ip_address(b)
    return ip_a.version == ip_b.version and (ip_a.is_unspecified or ip_b.is_unspecified)


def _check_duplicates(requests: Sequence[PortRequest]) -> None:
    fixed: dict[tuple[str, int], list[str]] = {}
    for request in requests:
        if request.host_port == 0 or request.host_port_end > request.host_port:
            continue
        seen = fixed.setdefault((request.proto, request.host_port), [])
        if any(_overlap(request.host_ip, other) for other in seen):
            where = request.host_ip or "the default address"
            raise InvalidParameter(
                f"host port {request.host_port}/{request.proto} on {where} is requested "
                "more than once"
            )
        seen.append(request.host_ip)
