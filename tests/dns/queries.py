"""Sandboxes that use the embedded resolver, queries sent from inside them, and the stub
upstream servers that forwarded queries go to.

Queries are real: a client socket is created inside the sandbox's namespace (a socket stays in
the namespace it was made in) and dnspython sends from it to 127.0.0.11. Upstreams are stub
servers (``stub_upstream.py``) on loopback addresses of the test's host namespace, and the host
resolv.conf the controller reads names only them: nothing is ever sent to the machine's
resolver. The stubs are stopped by PID.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from cnm.controller import Controller
from cnm.model import EndpointOptions, IpamRequest, Network, NetworkRequest, Sandbox, SandboxOptions
from cnm.osl.namespace import NetNamespace

STUB = Path(__file__).with_name("stub_upstream.py")
HOST_STUB = "127.0.0.53"  # the host resolv.conf's only nameserver
HOST_RESOLV_CONF = f"nameserver {HOST_STUB}\nsearch example.test\n"
UPSTREAM_TIMEOUT_S = 0.5
SERVER = "127.0.0.11"


def make_network(controller: Controller, name: str, subnet: str, **kwargs: object) -> Network:
    configs = [IpamRequest(subnet=subnet)]
    if kwargs.get("enable_ipv6"):
        configs.append(IpamRequest(subnet=str(kwargs.pop("ipv6_subnet"))))
    return controller.create_network(
        NetworkRequest(name=name, ipam_config=configs, **kwargs)  # type: ignore[arg-type]
    )


def make_sandbox(
    controller: Controller,
    name: str,
    *networks: str,
    aliases: dict[str, list[str]] | None = None,
    embedded: bool = True,
    **options: object,
) -> Sandbox:
    """A sandbox as the runtime makes one for container ``name``: its endpoints named after
    it, with ``aliases`` per network."""
    sandbox = controller.create_sandbox(
        SandboxOptions(
            container_id=secrets.token_hex(32),
            embedded_dns=embedded,
            **options,  # type: ignore[arg-type]
        )
    )
    for network in networks:
        endpoint = EndpointOptions(name=name, aliases=(aliases or {}).get(network, []))
        controller.connect(network, sandbox.id, endpoint)
    return controller.sandbox(sandbox.id)


def client_socket(sandbox: Sandbox | str, kind: int = socket.SOCK_DGRAM) -> socket.socket:
    """A socket inside the sandbox (or the namespace at a path, such as a SandboxKey)."""
    with NetNamespace(sandbox if isinstance(sandbox, str) else sandbox.key).entered():
        return socket.socket(socket.AF_INET, kind)


def ask(
    sandbox: Sandbox | str,
    name: str,
    qtype: str = "A",
    tcp: bool = False,
    timeout: float = 3.0,
    **make: object,
) -> dns.message.Message:
    """One query from inside the sandbox to 127.0.0.11."""
    query = dns.message.make_query(name, qtype, **make)  # type: ignore[arg-type]
    if tcp:
        with client_socket(sandbox, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((SERVER, 53))
            return dns.query.tcp(query, SERVER, timeout=timeout, sock=sock)
    with client_socket(sandbox) as sock:
        return dns.query.udp(query, SERVER, timeout=timeout, sock=sock, ignore_trailing=True)


def addresses(response: dns.message.Message, rdtype: str = "A") -> list[str]:
    kind = dns.rdatatype.from_text(rdtype)
    return [item.to_text() for rrset in response.answer if rrset.rdtype == kind for item in rrset]


def send_raw(sandbox: Sandbox | str, payload: bytes, timeout: float = 1.0) -> bytes | None:
    """A datagram of any content to 127.0.0.11:53; the reply, or None if none came (or no one
    listens)."""
    with client_socket(sandbox) as sock:
        sock.settimeout(timeout)
        sock.connect((SERVER, 53))
        sock.send(payload)
        try:
            return sock.recv(65535)
        except (TimeoutError, ConnectionRefusedError):
            return None


@dataclass
class Stubs:
    process: subprocess.Popen[str]
    log: Path

    def queries(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def stop(self) -> None:
        """End the stub server, by its PID."""
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_stubs(log: Path, *specs: str, netns: str | None = None) -> Stubs:
    """The stub server on these loopback addresses (``127.0.0.53=ok``...), in the calling
    thread's namespace or in the one at ``netns``."""
    for spec in specs:
        assert spec.startswith("127."), "stub upstreams live on loopback only"
    command = [sys.executable, str(STUB), "--log", str(log), *specs]
    if netns is not None:
        command = ["nsenter", f"--net={netns}", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    stubs = Stubs(process, log)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        stubs.stop()
        pytest.fail(f"the stub upstream server did not start: {specs}")
    return stubs
