"""Containers under runc, in-process: the busybox fixture image, and helpers that make
networks and containers and run commands in them.

The fixtures built on these (``make_runtime``, ``runtime``, ``busybox``) are in
tests/conftest.py: the runtime, DNS and firewall tests all use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnm.model import IpamRequest, Network, NetworkRequest
from cnm.osl.reaper import REAPER
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


def run_exec(runtime: Runtime, ref: str, *cmd: str, timeout: float = 15) -> tuple[int, str, str]:
    """Run a command in a container; (exit code, stdout, stderr)."""
    exec_id = runtime.exec_create(ref, list(cmd), [], False)
    process = runtime.exec_start(exec_id)
    out, err = process.communicate(timeout=timeout)
    code = runtime.exec_inspect(exec_id)["ExitCode"]
    assert code == process.returncode
    return code, out.decode(), err.decode()


def output(runtime: Runtime, ref: str, *cmd: str) -> str:
    code, out, err = run_exec(runtime, ref, *cmd)
    assert code == 0, f"{cmd} exited {code}: {err}"
    return out


def host_run(*cmd: str, timeout: float = 10) -> str:
    """A command in the test's host namespace (a child of the calling thread), via the reaper."""
    done = REAPER.run(list(cmd), timeout=timeout)
    assert done.returncode == 0, f"{cmd}: {done.stderr.decode()}"
    return done.stdout.decode()
