"""Fixtures for the runtime's kernel tests: controller and runtime in-process, in the throwaway
host namespace of ``host_netns``, with data and exec roots in tmp_path.

Teardown removes every container the test left (force: the process is killed and reaped), by
starting one more runtime on the same roots if the test closed its own; that runtime restores
from the store, as a restarted daemon would. Overlays under tmp_path are unmounted, and a
container process still alive by then (none should be) is killed by the pid we recorded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cnm.controller import Controller, ControllerConfig
from cnm.model import IpamRequest, Network, NetworkRequest
from cnm.osl.namespace import NetNamespace
from cnm.runtime import bundle, pidwatch
from cnm.runtime.execs import ExecProcess
from cnm.runtime.model import ContainerConfig, HostConfig
from cnm.runtime.reaper import REAPER
from cnm.runtime.runtime import Runtime, RuntimeConfig
from cnm.store.sqlite import SqliteStore

BUSYBOX_TAR = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "busybox-rootfs.tar"
HOST_RESOLV_CONF = "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.test\n"


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as mounts:
        points = [line.split()[4] for line in mounts]
    return [p for p in points if p.startswith(str(root) + "/")]


@pytest.fixture
def busybox_tar() -> Path:
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox rootfs at {BUSYBOX_TAR}")
    return BUSYBOX_TAR


@pytest.fixture
def make_runtime(host_netns: NetNamespace, tmp_path: Path) -> Iterator[Callable[[], Runtime]]:
    """Start runtimes (each with its own controller) on the test's store and roots."""
    resolv = tmp_path / "host-resolv.conf"
    resolv.write_text(HOST_RESOLV_CONF)
    made: list[tuple[Runtime, Controller, SqliteStore]] = []
    pids: set[tuple[int, int]] = set()

    def make() -> Runtime:
        store = SqliteStore(tmp_path / "cnm.db")
        controller = Controller(
            ControllerConfig(exec_root=tmp_path / "exec", host_resolv_conf=resolv), store
        )
        controller.start()
        runtime = Runtime(
            RuntimeConfig(data_root=tmp_path / "data", exec_root=tmp_path / "exec"),
            store,
            controller,
        )
        runtime.start()
        made.append((runtime, controller, store))
        return runtime

    def shut(runtime: Runtime, controller: Controller, store: SqliteStore) -> None:
        for container in runtime.containers(all=True):
            if container.state.running:
                pids.add((container.state.pid, container.state.pid_start_time))
        runtime.close()
        controller.close()
        store.close()

    yield make
    if made:
        for entry in made:
            shut(*entry)
        janitor = make()
        for container in janitor.containers(all=True):
            with contextlib.suppress(Exception):
                janitor.remove_container(container.id, force=True)
        shut(*made[-1])
    for pid, started in pids:
        if pidwatch.alive(pid, started):
            os.kill(pid, signal.SIGKILL)
    for point in sorted(_mounts_under(tmp_path), reverse=True):
        if "/netns/" not in point:
            bundle.unmount(Path(point))


@pytest.fixture
def runtime(make_runtime: Callable[[], Runtime]) -> Runtime:
    return make_runtime()


@pytest.fixture
def busybox(runtime: Runtime, busybox_tar: Path) -> str:
    with open(busybox_tar, "rb") as stream:
        runtime.import_image(stream, "busybox:local")
    return "busybox:local"


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


def host_run(*cmd: str, timeout: float = 10) -> str:
    """A command in the test's host namespace (a child of the calling thread), via the reaper."""
    done = REAPER.run(list(cmd), timeout=timeout)
    assert done.returncode == 0, f"{cmd}: {done.stderr.decode()}"
    return done.stdout.decode()
