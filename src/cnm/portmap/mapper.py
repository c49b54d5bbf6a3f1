"""Host ports for published ports: chosen, checked and held by a bound socket.

Why a socket per mapping (as Docker 28 does): binding is the only honest check that a port is
free (another mapping, or any process listening there), and keeping the socket open holds the
port, so no process can later bind it and be silently shadowed by the DNAT. Ephemeral ports
come from bind(port 0), which draws from the namespace's ``ip_local_port_range``. TCP sockets
set SO_REUSEADDR (a restarted container gets its port back despite TIME_WAIT connections; a
listener still conflicts), UDP sockets do not (it would let two sockets share the port).

The sockets also serve: TCP ones listen and UDP ones read, relaying to the container what the
kernel's DNAT does not take (``proxy``). Sockets are opened inside the host namespace (the one
current when the mapper was made), whatever namespace the calling thread is in.

A request with no host address and no network or daemon default binds 0.0.0.0 and ::, both on
the same port (Docker 28); :: is skipped when the host has no IPv6. SCTP ports get no socket
when the kernel has no SCTP sockets (then no process can hold one either).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cnm import faults
from cnm.errors import Conflict, InvalidParameter
from cnm.model import IPAddress, PortMapping, PortRequest
from cnm.osl.links import HostNetwork, read_sysctl
from cnm.portmap.proxy import Proxy

EPHEMERAL_TRIES = 20
LISTEN_BACKLOG = 128
ANY4 = ipaddress.IPv4Address("0.0.0.0")
ANY6 = ipaddress.IPv6Address("::")


def format_host(ip: IPAddress) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


@dataclass
class _Held:
    mapping: PortMapping | None
    sock: socket.socket | None


class PortMapper:
    def __init__(self, host: HostNetwork) -> None:
        self._host = host
        self._proxy = Proxy(host.namespace)
        self._lock = threading.Lock()
        # (proto, host port) -> {host address: what holds it}
        self._held: dict[tuple[str, int], dict[IPAddress, _Held]] = {}

    def close(self) -> None:
        self._proxy.close()
        with self._lock:
            for held in (h for by_ip in self._held.values() for h in by_ip.values()):
                if held.sock is not None:
                    held.sock.close()
            self._held.clear()

    def map(
        self,
        requests: Sequence[PortRequest],
        *,
        ipv4: ipaddress.IPv4Address | None,
        ipv6: ipaddress.IPv6Address | None,
        default_host_ip: str,
    ) -> list[PortMapping]:
        """Bind every request for a container at ``ipv4``/``ipv6``; all or nothing."""
        made: list[tuple[tuple[str, int], IPAddress]] = []
        mappings: list[PortMapping] = []
        with self._lock, self._host.inside():
            try:
                for request in requests:
                    for mapping in self._map_one(request, ipv4, ipv6, default_host_ip):
                        made.append(((mapping.proto, mapping.host_port), mapping.host_ip))
                        mappings.append(mapping)
            except BaseException:
                for key, ip in made:
                    self._release(key, ip)
                raise
            for key, ip in made:
                held = self._held[key][ip]
                if held.sock is None or held.mapping is None:
                    continue
                if held.sock.type == socket.SOCK_STREAM:
                    held.sock.listen(LISTEN_BACKLOG)
                target = held.mapping.container_ip
                self._proxy.add(held.sock, (str(target), held.mapping.container_port))
        return mappings

    def unmap(self, mappings: Sequence[PortMapping]) -> None:
        with self._lock:
            for mapping in mappings:
                self._release((mapping.proto, mapping.host_port), mapping.host_ip)

    def _release(self, key: tuple[str, int], ip: IPAddress) -> None:
        by_ip = self._held.get(key, {})
        held = by_ip.pop(ip, None)
        if not by_ip:
            self._held.pop(key, None)
        if held is not None and held.sock is not None:
            self._proxy.remove(held.sock)  # closes it (a no-op for one never relayed)
            held.sock.close()

    # ----------------------------------------------------------------- one request

    def _map_one(
        self,
        request: PortRequest,
        ipv4: ipaddress.IPv4Address | None,
        ipv6: ipaddress.IPv6Address | None,
        default_host_ip: str,
    ) -> list[PortMapping]:
        chosen = request.host_ip or default_host_ip or str(ANY4)
        addresses: list[IPAddress] = [ipaddress.ip_address(chosen)]
        optional: set[IPAddress] = set()
        if not request.host_ip and addresses == [ANY4]:
            addresses.append(ANY6)
            optional.add(ANY6)
        targets: dict[IPAddress, IPAddress] = {}
        for host_ip in addresses:
            target = (ipv6 or ipv4) if host_ip.version == 6 else ipv4
            if target is None:
                raise InvalidParameter(
                    f"cannot publish {request.key} on {host_ip}: the container has no IPv4 "
                    "address on this network"
                )
            targets[host_ip] = target
        for port in self._candidates(request):
            bound = self._bind_all(request, addresses, optional, port)
            if bound is None:
                continue
            return [
                self._hold(request, ip, bound_port, sock, targets[ip])
                for ip, (bound_port, sock) in bound.items()
            ]
        raise Conflict(
            f"no free host port in {request.host_port}-{request.host_port_end} for {request.key}"
        )

    def _candidates(self, request: PortRequest) -> Iterator[int]:
        if request.host_port == 0:
            yield from [0] * EPHEMERAL_TRIES
        elif request.host_port_end > request.host_port:
            yield from range(max(request.host_port, 1), request.host_port_end + 1)
        else:
            yield request.host_port

    def _bind_all(
        self,
        request: PortRequest,
        addresses: list[IPAddress],
        optional: set[IPAddress],
        port: int,
    ) -> dict[IPAddress, tuple[int, socket.socket | None]] | None:
        """Bind ``port`` (0: the kernel's choice, then the same for the rest) on every address.
        None when a port of a range or an ephemeral pick is taken (try the next one); raises
        when the request can never succeed."""
        bound: dict[IPAddress, tuple[int, socket.socket | None]] = {}
        exact = port != 0 and request.host_port_end <= request.host_port
        try:
            for ip in addresses:
                try:
                    actual, sock = self._reserve(request, ip, port)
                except Conflict:
                    if exact:
                        raise
                    self._close_all(bound)
                    return None
                except _NoIPv6:
                    if ip in optional:
                        continue
                    raise InvalidParameter(
                        f"cannot publish {request.key} on {ip}: IPv6 is not enabled on this host"
                    ) from None
                bound[ip] = (actual, sock)
                port = actual
        except BaseException:
            self._close_all(bound)
            raise
        return bound

    @staticmethod
    def _close_all(bound: dict[IPAddress, tuple[int, socket.socket | None]]) -> None:
        for _, sock in bound.values():
            if sock is not None:
                sock.close()

    def _hold(
        self,
        request: PortRequest,
        host_ip: IPAddress,
        port: int,
        sock: socket.socket | None,
        target: IPAddress,
    ) -> PortMapping:
        mapping = PortMapping(request.proto, host_ip, port, target, request.container_port)
        self._held.setdefault((request.proto, port), {})[host_ip] = _Held(mapping, sock)
        return mapping

    # ----------------------------------------------------------------- sockets

    def _taken_by_us(self, proto: str, ip: IPAddress, port: int) -> bool:
        for other in self._held.get((proto, port), {}):
            if other == ip or (
                other.version == ip.version and (other.is_unspecified or ip.is_unspecified)
            ):
                return True
        return False

    def _reserve(
        self, request: PortRequest, ip: IPAddress, port: int
    ) -> tuple[int, socket.socket | None]:
        """Bind a socket of the request's protocol to ``ip:port`` (port 0: any ephemeral)."""
        where = f"{format_host(ip)}:{port}"
        if port and self._taken_by_us(request.proto, ip, port):
            raise Conflict(f"Bind for {where} failed: port is already allocated")
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        kind, proto = {
            "tcp": (socket.SOCK_STREAM, 0),
            "udp": (socket.SOCK_DGRAM, 0),
            "sctp": (socket.SOCK_STREAM, socket.IPPROTO_SCTP),
        }[request.proto]
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as err:
            if err.errno == errno.EAFNOSUPPORT:
                raise _NoIPv6 from None
            if err.errno == errno.EPROTONOSUPPORT and request.proto == "sctp":
                return self._sctp_without_sockets(ip, port), None
            raise
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            faults.step("bind host port")
            sock.bind((str(ip), port))
        except OSError as err:
            sock.close()
            if err.errno == errno.EADDRINUSE:
                raise Conflict(
                    f"Bind for {where} failed: port is already in use on the host"
                ) from None
            if err.errno == errno.EADDRNOTAVAIL:
                if ip.version == 6 and ip.is_unspecified:
                    raise _NoIPv6 from None
                raise InvalidParameter(
                    f"cannot publish {request.key} on {ip}: not an address of this host"
                ) from None
            raise
        actual = sock.getsockname()[1]
        if port == 0 and self._taken_by_us(request.proto, ip, actual):
            sock.close()  # held by an SCTP mapping without a socket
            raise Conflict(f"Bind for {format_host(ip)}:{actual} failed: already allocated")
        return actual, sock

    def _sctp_without_sockets(self, ip: IPAddress, port: int) -> int:
        """With no SCTP sockets in the kernel no process can hold an SCTP port, so our own
        table is the whole truth; ephemeral ports are taken in ip_local_port_range order."""
        if port:
            return port
        low, high = (int(v) for v in read_sysctl("net.ipv4.ip_local_port_range").split())
        for candidate in range(low, high + 1):
            if not self._taken_by_us("sctp", ip, candidate):
                return candidate
        raise Conflict("no free ephemeral port for sctp")


class _NoIPv6(Exception):
    """The host cannot bind this IPv6 address family or wildcard."""
