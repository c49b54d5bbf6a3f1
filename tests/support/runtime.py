"""Containers under runc, in-process: the busybox fixture image, and helpers that make
networks and containers and run commands in them.

The fixtures built on these (``make_runtime``, ``runtime``, ``busybox``) are in
tests/conftest.py: the runtime, DNS and firewall tests all use them.
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import time
from pathlib import Path
from typing import Any

from cnm.model import IpamRequest, Network, NetworkRequest
from cnm.osl.reaper import REAPER
from cnm.runtime.execs import ExecProcess
from cnm.runtime.model import ContainerConfig, HostConfig
from cnm.runtime.runtime import Runtime

BUSYBOX_TAR = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "busybox-rootfs.tar"
BUSYBOX = "busybox:local"
HOST_RESOLV_CONF = "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.test\n"


def mounts_under(root: Path) -> list[str]:
    """Every mount point below ``root``."""
    with open("/proc/self/mountinfo") as mounts:
        points = [line.split()[4] for line in mounts]
    return [p for p in points if p.startswith(str(root) + "/")]


def make_network(runtime: Runtime, name: str, subnet: str) -> Network:
    return runtime.controller.create_network(
        NetworkRequest(name=name, ipam_config=[IpamRequest(subnet=subnet)])
    )


def config(image: str, *cmd: str, **kwargs: Any) -> ContainerConfig:
    return ContainerConfig(image=image, cmd=list(cmd), **kwargs)


def host(**kwargs: Any) -> HostConfig:
    return HostConfig(**kwargs)


def communicate(process: ExecProcess, timeout: float) -> tuple[bytes, bytes]:
    """As Popen.communicate: close the exec's stdin, read its stdout and stderr to their ends."""
    process.stdin.close()
    deadline = time.monotonic() + timeout
    read: dict[int, list[bytes]] = {}
    with selectors.DefaultSelector() as selector:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                selector.register(stream.fileno(), selectors.EVENT_READ)
                read[stream.fileno()] = []
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the exec's output did not end in {timeout} s")
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    read[key.fd].append(chunk)
                else:
                    selector.unregister(key.fd)
    out = b"".join(read[process.stdout.fileno()])
    err = b"".join(read[process.stderr.fileno()]) if process.stderr is not None else b""
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return out, err


def run_exec(runtime: Runtime, ref: str, *cmd: str, timeout: float = 15) -> tuple[int, str, str]:
    """Run a command in a container; (exit code, stdout, stderr)."""
    exec_id = runtime.exec_create(ref, list(cmd), [], False)
    process = runtime.exec_start(exec_id)
    out, err = communicate(process, timeout)
    code = process.wait(timeout)
    assert runtime.exec_inspect(exec_id).exit_code == code
    return code, out.decode(), err.decode()


def ipv4_of(runtime: Runtime, ref: str, network: str) -> str:
    """The address of a running container on a network, without its prefix length."""
    endpoint = runtime.network_state(runtime.container(ref)).networks[network].endpoint
    assert endpoint is not None and endpoint.ipv4_address is not None
    return str(ipaddress.ip_interface(endpoint.ipv4_address).ip)


def output(runtime: Runtime, ref: str, *cmd: str) -> str:
    code, out, err = run_exec(runtime, ref, *cmd)
    assert code == 0, f"{cmd} exited {code}: {err}"
    return out


def logged(runtime: Runtime, ref: str, stream: int | None = None) -> str:
    """What the container's log holds (of one stream: 1 stdout, 2 stderr), bytes as text."""
    messages = runtime.read_logs(ref)
    return b"".join(m.data for m in messages if stream in (None, m.stream)).decode()


def host_run(*cmd: str, timeout: float = 10) -> str:
    """A command in the test's host namespace (a child of the calling thread), via the reaper."""
    done = REAPER.run(list(cmd), timeout=timeout)
    assert done.returncode == 0, f"{cmd}: {done.stderr.decode()}"
    return done.stdout.decode()
