"""The container runtime: containers' lifecycle on top of the controller's sandboxes.

A container is a record (store key ``container/<id>``) until it starts. Start asks the controller
for a sandbox and connects it to the container's networks, then runs the process: under runc from
an OCI bundle (``bundle.py``), or, for the reserved image ``cnm/host``, on the host's filesystem
through ``hostinit.py``. Any failure undoes every step. Stop ends the process and then removes
the sandbox, so a stopped container holds no endpoint and no address (Docker does this at stop);
the record keeps what it asked for (networks, aliases, static addresses), so a start attaches it
the same way again.

Exits. Every child of the daemon is reaped by ``reaper.REAPER``: a container's init, reparented
to us once ``runc run -d`` returns (the daemon is a child subreaper), reports its status there.
A container left running by an earlier daemon is not our child; it is watched with a pidfd and
its exit code read from its zombie (``pidwatch``), or UNKNOWN_EXIT_CODE (137, as for SIGKILL)
when the zombie is gone (reaped by an init that reaps). The exit handler tears the container down
in its own thread, never in the reaper's (teardown runs ``runc delete``, a child of its own).

Output. The container's stdout and stderr are files opened in append mode and handed to the
process (runc passes its own stdio to the container when there is no terminal), so output keeps
flowing while the daemon restarts; the two streams are kept apart, their relative order is not.
With ``Tty`` the process gets a terminal instead, one stream, copied to stdout.log by a ``cat``
that outlives the daemon (``console.py``). With ``OpenStdin`` attached clients' input is queued
and written to the terminal or to a pipe on the process's stdin; ``StdinOnce`` is the API's
business (it closes the stdin when its first attached client leaves).

Daemon restarts (live restore) and stdio. A terminal survives one: its copier holds it open and
keeps logging, and the new daemon takes the master back from the copier, so attach input and
resize work again. A stdin pipe does not: its write end dies with the daemon, so the process
reads EOF (a ``docker run -di ... sh`` then ends, as after its last input), and input attached
later is dropped until the next start. Output written by a terminal container between its exit
and the new daemon noticing it may be cut short in the log.

Locking. ``_lock`` guards the tables and is held briefly; ``_changed`` (on the same lock) wakes
waiters on exits and removals. A lock per container serialises its lifecycle operations; stop
and kill never hold it while waiting for an exit, since the exit handler takes it.

Docker's 304 answers (start of a running container, stop of a stopped one) raise NotModified.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from cnm import validate
from cnm.controller import Controller
from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound
from cnm.model import EndpointOptions, Network, PortRequest, Sandbox, SandboxOptions
from cnm.osl.reaper import REAPER, Child
from cnm.portmap.spec import parse_port_key, requests_from_config
from cnm.runtime import bundle, console, pidwatch
from cnm.runtime.images import HOST_IMAGE, ImageStore, is_host_image, now_rfc3339
from cnm.runtime.model import (
    Container,
    ContainerConfig,
    ContainerState,
    EndpointRequest,
    HostConfig,
    Image,
)
from cnm.runtime.names import generate_name
from cnm.store.api import Store
from cnm.transaction import Transaction, transaction

__all__ = ["HOST_IMAGE", "NotModified", "Runtime", "RuntimeConfig"]

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT_S = 10.0
RUNC_TIMEOUT_S = 30.0
UNKNOWN_EXIT_CODE = 137
TERMINAL_DRAIN_S = 2.0  # after an exit, for the last output of a terminal's holders
SHARED_NETWORK = (
    "container sharing network namespace with another container or host cannot be connected "
    "to any other network"
)
HOST_NETWORK = "container cannot be disconnected from host network or connected to host network"
NONE_NETWORK = (
    "container cannot be connected to multiple networks with one of the networks in private "
    "(none) mode"
)
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")

ExitListener = Callable[[str, int], None]  # (container id, exit code)


class NotModified(CnmError):
    """Nothing to do: the container is already started, or already stopped (HTTP 304)."""

    status = 304


@dataclass
class RuntimeConfig:
    data_root: Path
    exec_root: Path
    runc: str = "runc"


@dataclass
class _Exec:
    id: str
    container_id: str
    cmd: list[str]
    env: list[str]
    tty: bool
    workdir: str
    open_stdin: bool
    console_size: tuple[int, int] = (0, 0)  # the terminal's rows and columns at start
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    console: int = -1  # a copy of the terminal's master while it runs, for resize
    console_lock: threading.Lock = field(default_factory=threading.Lock)


def _exit_code(returncode: int) -> int:
    """Popen's -N for signal N becomes the shell's (and Docker's) 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _parse_signal(value: str | int) -> signal.Signals:
    text = str(value).strip().upper()
    try:
        if text.isdigit():
            return signal.Signals(int(text))
        return signal.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except (KeyError, ValueError):
        raise InvalidParameter(f"Invalid signal: {value}") from None


def _port_keys(port: str) -> list[str]:
    """``80`` -> ["80/tcp"]; a range key names each of its ports."""
    start, end, proto = parse_port_key(port)
    return [f"{number}/{proto}" for number in range(start, end + 1)]


def _port_requests(config: ContainerConfig, host: HostConfig) -> list[PortRequest]:
    """What a container publishes: its port bindings, and with -P its exposed ports."""
    return requests_from_config(
        {key: [(b.host_ip, b.host_port) for b in v] for key, v in host.port_bindings.items()},
        config.exposed_ports,
        host.publish_all_ports,
    )


def _check_size(height: int, width: int) -> None:
    if not (0 <= height <= 0xFFFF and 0 <= width <= 0xFFFF):
        raise InvalidParameter(f"invalid terminal size {height}x{width}")


def _merge_env(base: list[str], override: list[str]) -> list[str]:
    merged = {entry.partition("=")[0]: entry for entry in base}
    merged.update({entry.partition("=")[0]: entry for entry in override})
    return list(merged.values())


class Runtime:
    def __init__(self, config: RuntimeConfig, store: Store, controller: Controller) -> None:
        self.config = config
        self.store = store
        self.controller = controller
        self._images = ImageStore(store, config.data_root / "images")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._containers: dict[str, Container] = {}
        self._container_locks: dict[str, threading.Lock] = {}
        self._execs: dict[str, _Exec] = {}
        self._exits: dict[str, int] = {}  # exits seen per container: wakes next-exit waiters
        self._removed: dict[str, int] = {}  # removed container -> its last exit code
        self._pidfds: dict[str, int] = {}  # running container -> pidfd of its first process
        self._terminals: dict[str, console.Terminal] = {}  # running container with a Tty
        self._stdins: dict[str, console.Stdin] = {}  # OpenStdin container -> this run's input
        self._watcher = pidwatch.PidWatcher()
        self._listeners: list[ExitListener] = []
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ paths

    @property
    def _runc_root(self) -> Path:
        return self.config.exec_root / "runc"

    def _bundle_dir(self, container_id: str) -> Path:
        return self.config.exec_root / "containers" / container_id

    def _state_dir(self, container_id: str) -> Path:
        return self.config.data_root / "containers" / container_id

    def log_paths(self, ref: str) -> tuple[Path, Path]:
        state = self._state_dir(self._resolve(ref).id)
        return state / "stdout.log", state / "stderr.log"

    # ------------------------------------------------------------------ start / close

    def start(self) -> None:
        """Restore images and containers. Containers still running keep running and are
        watched again; those that ended while we were away are torn down as exited."""
        for path in (self._runc_root, self.config.exec_root / "containers"):
            path.mkdir(parents=True, exist_ok=True)
        (self.config.data_root / "containers").mkdir(parents=True, exist_ok=True)
        REAPER.acquire()
        self._started = True
        self._images.load()
        containers = {
            c.id: c
            for c in map(Container.from_json, (e.value for e in self.store.list("container/")))
        }
        with self._lock:
            self._containers = containers
        for container in list(containers.values()):
            if container.state.running:
                self._restore_running(container)
            else:
                self._reconcile_stopped(container)
                self._new_stdin(container)
        self._remove_orphans(set(containers))
        log.info(
            "runtime restored images=%d containers=%d", len(self._images.list()), len(containers)
        )

    def close(self) -> None:
        """Stop watching; containers keep running (live restore)."""
        if not self._started or self._closed:
            return
        with self._lock:
            self._closed = True
            running = [c for c in self._containers.values() if c.state.running]
            pidfds, self._pidfds = self._pidfds, {}
            terminals, self._terminals = self._terminals, {}
            stdins = list(self._stdins.values())
        for container in running:
            REAPER.unwatch(container.state.pid)
        self._watcher.close()
        for fd in pidfds.values():
            os.close(fd)
        for terminal in terminals.values():
            terminal.detach()
        for stdin in stdins:
            stdin.stop()
        REAPER.release()

    def subscribe_exit(self, callback: ExitListener) -> None:
        self._listeners.append(callback)

    def _restore_running(self, container: Container) -> None:
        pid, started = container.state.pid, container.state.pid_start_time
        pidfd = _pidfd_open(pid) if pidwatch.alive(pid, started) else None
        if pidfd is not None:
            if pidwatch.alive(pid, started):  # the pidfd names our process, not a reused pid
                self._pidfds[container.id] = pidfd
                if container.config.tty:
                    self._recover_terminal(container)
                self._watcher.watch(
                    pidfd, lambda: self._on_restored_exit(container.id, pid, started)
                )
                return
            os.close(pidfd)
        with self._container_lock(container.id):
            self._finish(container, self._lost_exit_code(pid, started))
        self._after_exit(container)

    def _recover_terminal(self, container: Container) -> None:
        """Take the terminal back from the copier that kept it while no daemon ran."""
        terminal = console.Terminal.recover(self._bundle_dir(container.id))
        if terminal is None:
            log.warning("container %s lost its terminal: no input or resize", container.id[:12])
            return
        self._new_stdin(container)
        self._keep_terminal(container, terminal)

    @staticmethod
    def _lost_exit_code(pid: int, started: int) -> int:
        """The exit code of a process that is not (or no longer) watched by the reaper: from its
        zombie, or from the reaper if it was our child and is reaped already."""
        for attempt in range(2):
            code = pidwatch.exit_code(pid, started)
            if code is not None:
                return code
            returncode = REAPER.take(pid)
            if returncode is not None:
                return _exit_code(returncode)
            if attempt == 0:
                time.sleep(0.02)  # the reaper may be between waitpid and filing the status
        return UNKNOWN_EXIT_CODE

    def _reconcile_stopped(self, container: Container) -> None:
        """Remove what a crash in the middle of a stop may have left."""
        if container.sandbox_id and not self._shares_sandbox(container):
            with suppress(NotFound):
                self.controller.delete_sandbox(container.sandbox_id)
        if container.sandbox_id:
            container.sandbox_id = None
            self._save(container)
        if (self._runc_root / container.id).exists():
            self._runc_delete(container.id)
        bundle.unmount(self._bundle_dir(container.id) / "rootfs")

    def _remove_orphans(self, known: set[str]) -> None:
        for path in self._runc_root.iterdir():
            if path.name not in known:
                log.warning("removing unknown runc container %s", path.name[:12])
                self._runc_delete(path.name)
        for path in (self.config.exec_root / "containers").iterdir():
            if path.name not in known:
                bundle.unmount(path / "rootfs")
                shutil.rmtree(path, ignore_errors=True)
        for path in (self.config.data_root / "containers").iterdir():
            if path.name not in known:
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ images

    def import_image(
        self,
        stream: BinaryIO,
        reference: str | None,
        progress: Callable[[str], None] | None = None,
    ) -> Image:
        return self._images.import_(stream, reference, progress)

    def images(self) -> list[Image]:
        return self._images.list()

    def image(self, ref: str) -> Image:
        return self._images.get(ref)

    def remove_image(self, ref: str, force: bool = False) -> list[str]:
        """``docker rmi``: returns "Untagged: <name:tag>" and "Deleted: <id>" lines. A running
        container's image cannot be deleted even with force (as Docker)."""

        def users(image_id: str) -> list[tuple[str, bool]]:
            with self._lock:
                return [
                    (c.id, c.state.running)
                    for c in self._containers.values()
                    if c.image_id == image_id
                ]

        return self._images.remove(ref, force, users)

    # ------------------------------------------------------------------ lookups

    def containers(self, all: bool = False) -> list[Container]:
        with self._lock:
            found = [c for c in self._containers.values() if all or c.state.running]
            return [copy.deepcopy(c) for c in sorted(found, key=lambda c: c.created, reverse=True)]

    def container(self, ref: str) -> Container:
        with self._lock:
            return copy.deepcopy(self._resolve(ref))

    def _resolve(self, ref: str) -> Container:
        with self._lock:
            if ref in self._containers:
                return self._containers[ref]
            name = ref.removeprefix("/")
            for container in self._containers.values():
                if container.name == name:
                    return container
            matches = [c for c in self._containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def _current(self, container_id: str) -> Container:
        with self._lock:
            container = self._containers.get(container_id)
        if container is None:
            raise NotFound(f"No such container: {container_id}")
        return container

    def _container_lock(self, container_id: str) -> threading.Lock:
        with self._lock:
            return self._container_locks.setdefault(container_id, threading.Lock())

    def _save(self, container: Container) -> None:
        self.store.put(f"container/{container.id}", container.to_json())

    @staticmethod
    def _shares_sandbox(container: Container) -> bool:
        return container.host_config.network_mode.startswith("container:")

    # ------------------------------------------------------------------ create

    def create_container(
        self,
        name: str | None,
        config: ContainerConfig,
        host_config: HostConfig,
        networks: dict[str, EndpointRequest],
    ) -> Container:
        config = copy.deepcopy(config)
        host_config = copy.deepcopy(host_config)
        if name is not None:
            name = validate.container_name(name)
        image_id = ""
        if not is_host_image(config.image):
            image = self._images.get(config.image)
            image_id = image.id
            if not config.entrypoint and not config.cmd:
                config.cmd = list(image.cmd)
            config.entrypoint = config.entrypoint or list(image.entrypoint)
            config.env = _merge_env(image.env, config.env)
            config.working_dir = config.working_dir or image.working_dir
        if not config.entrypoint and not config.cmd:
            raise InvalidParameter("no command specified")
        host_config.network_mode = self._check_network_mode(config, host_config)
        wanted = self._check_networks(host_config.network_mode, networks)
        self._check_sandbox_options(host_config)
        container_id = secrets.token_hex(32)
        self._check_ports(config, host_config, wanted)
        if not config.hostname:
            mode = host_config.network_mode
            config.hostname = socket.gethostname() if mode == "host" else container_id[:12]
        with self._lock:
            if name is None:
                name = self._generate_unique_name()
            else:
                self._check_name_free(name)
            container = Container(
                id=container_id,
                name=name,
                created=now_rfc3339(),
                image_id=image_id,
                config=config,
                host_config=host_config,
                networks=wanted,
            )
            self.store.put(f"container/{container_id}", container.to_json(), expect_revision=0)
            self._containers[container_id] = container
            self._exits[container_id] = 0
        self._new_stdin(container)
        state = self._state_dir(container_id)
        state.mkdir(parents=True, exist_ok=True)
        for log_file in ("stdout.log", "stderr.log"):
            (state / log_file).touch()
        log.info("container created id=%s name=%s", container_id[:12], name)
        return copy.deepcopy(container)

    def _generate_unique_name(self) -> str:
        taken = {c.name for c in self._containers.values()}
        retry = 0
        while (name := generate_name(retry)) in taken:
            retry += 1
        return name

    def _check_name_free(self, name: str) -> None:
        for other in self._containers.values():
            if other.name == name:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{other.id}". You have to remove (or rename) that container to be able to '
                    "reuse that name."
                )

    def _check_network_mode(self, config: ContainerConfig, host_config: HostConfig) -> str:
        """The mode as stored: "host", "none", a network name, or "container:<id>"."""
        mode = host_config.network_mode or "bridge"
        if mode == "default":
            mode = "bridge"
        if mode.startswith("container:"):
            ref = mode.removeprefix("container:")
            if not ref:
                raise InvalidParameter(
                    "invalid network mode: invalid container format container:<name|id>"
                )
            target = self._resolve(ref)
            conflicts = (
                (config.hostname, "hostname and the network mode"),
                (host_config.dns, "dns and the network mode"),
                (host_config.extra_hosts, "custom host-to-IP mapping and the network mode"),
                (host_config.port_bindings, "port publishing and the container type network mode"),
                (
                    host_config.publish_all_ports,
                    "port publishing and the container type network mode",
                ),
                (config.exposed_ports, "port exposing and the container type network mode"),
            )
            for value, what in conflicts:
                if value:
                    raise InvalidParameter(f"conflicting options: {what}")
            return f"container:{target.id}"
        return self.controller.network(mode).name

    def _check_networks(
        self, mode: str, networks: dict[str, EndpointRequest]
    ) -> dict[str, EndpointRequest]:
        """The networks to attach at start, the network mode's first (it gets eth0)."""
        if mode.startswith("container:"):
            if networks:
                raise InvalidParameter(
                    "conflicting options: container type network can't be used with "
                    "multiple networks"
                )
            return {}
        requested = networks or {mode: EndpointRequest()}
        resolved: dict[str, EndpointRequest] = {}
        for ref, request in requested.items():
            network = self.controller.network(ref)
            if network.name in resolved:
                raise InvalidParameter(f"network {network.name} is given more than once")
            self._check_request(network, request)
            resolved[network.name] = copy.deepcopy(request)
        if mode in ("host", "none") and set(resolved) != {mode}:
            raise InvalidParameter(
                "container cannot be connected to network endpoints: " + ", ".join(resolved)
            )
        ordered = {mode: resolved.pop(mode)} if mode in resolved else {}
        ordered.update(resolved)
        return ordered

    @staticmethod
    def _check_request(network: Network, request: EndpointRequest) -> None:
        if network.predefined:
            if request.ipv4_address or request.ipv6_address:
                raise InvalidParameter(
                    "user specified IP address is supported on user defined networks only"
                )
            if request.aliases:
                raise InvalidParameter(
                    "network-scoped alias is supported only for containers in user defined networks"
                )
        for text, version, pools in (
            (request.ipv4_address, 4, network.ipv4_pools),
            (request.ipv6_address, 6, network.ipv6_pools),
        ):
            if not text:
                continue
            address = validate.ip_address_of_version(text, version)
            if not any(address in ipaddress.ip_network(p.subnet) for p in pools):
                raise InvalidParameter(
                    "invalid endpoint settings:\n"
                    f"no configured subnet or ip-range contain the IP address {text}"
                )
        if request.mac_address:
            validate.mac_address(request.mac_address)

    def _check_ports(
        self, config: ContainerConfig, host_config: HostConfig, wanted: dict[str, EndpointRequest]
    ) -> None:
        """Malformed port specs fail at create, as does publishing with only internal
        networks; host ports are taken at start."""
        requests = _port_requests(config, host_config)
        if not requests or host_config.network_mode in ("host", "none"):
            return
        networks = [self.controller.network(name) for name in wanted]
        if networks and all(n.internal for n in networks):
            raise InvalidParameter(
                f"ports cannot be published on internal network {networks[0].name}"
            )

    @staticmethod
    def _check_sandbox_options(host_config: HostConfig) -> None:
        for server in host_config.dns:
            validate.dns_server(server)
        for entry in host_config.extra_hosts:
            validate.extra_host(entry)

    # ------------------------------------------------------------------ start

    def start_container(self, ref: str) -> None:
        container_id = self._resolve(ref).id
        failed: CnmError | None = None
        with self._container_lock(container_id):
            container = self._current(container_id)
            if container.state.running:
                raise NotModified(f"container {container_id} is already running")
            image = None
            if container.image_id:
                image = self._images.by_id(container.image_id)
                if image is None:
                    raise NotFound(f"No such image: {container.config.image}")
            try:
                try:
                    self._start(container, image)
                except OSError as err:
                    raise CnmError(f"cannot start container {container_id}: {err}") from err
            except CnmError as err:
                container.state.error = str(err)
                container.state.exit_code = _start_exit_code(str(err))
                self._save(container)
                failed = err
        if failed is not None:
            # As Docker: the attached clients and waiters are let go, and --rm removes it.
            log.info("container failed to start id=%s: %s", container_id[:12], failed)
            self._after_exit(container)
            raise failed
        log.info("container started id=%s pid=%d", container_id[:12], container.state.pid)

    def _start(self, container: Container, image: Image | None) -> None:
        stdio = console.ProcessStdio()
        with transaction() as txn:
            sandbox = self._attach_networks(container, txn)
            txn.on_failure("stdio", stdio.close)
            if image is None:
                pid = self._start_host(container, sandbox, txn, stdio)
            else:
                pid = self._start_runc(container, image, sandbox, txn, stdio)
            started = pidwatch.start_time(pid)
            pidfd = _pidfd_open(pid)  # None: it ended already; the reaper has its status
            if pidfd is not None:
                txn.on_failure("pidfd", lambda: os.close(pidfd))
            state = ContainerState(
                status="running",
                pid=pid,
                started_at=now_rfc3339(),
                finished_at=container.state.finished_at,
                pid_start_time=started,
            )
            updated = copy.deepcopy(container)
            updated.state = state
            updated.sandbox_id = sandbox.id
            self._save(updated)
        container.state = state
        container.sandbox_id = sandbox.id
        if pidfd is not None:
            with self._lock:
                self._pidfds[container.id] = pidfd
        self._keep_stdio(container, stdio)
        if image is not None:  # host processes were registered by spawn
            REAPER.watch(pid, lambda p, rc: self._on_exit(container.id, p, rc))

    def _new_stdin(self, container: Container) -> None:
        """The input queue of the container's next run (OpenStdin only)."""
        if container.config.open_stdin:
            with self._lock:
                self._stdins[container.id] = console.Stdin()

    def _keep_stdio(self, container: Container, stdio: console.ProcessStdio) -> None:
        """Hold what a start left of the process's stdio: the terminal (its copier starts) or
        the stdin pipe, which the input queue now feeds."""
        if stdio.master >= 0:
            bundle_dir = self._bundle_dir(container.id)
            bundle_dir.mkdir(parents=True, exist_ok=True)  # a host container has no bundle
            out_log = self._state_dir(container.id) / "stdout.log"
            try:
                terminal = console.Terminal.start(stdio.master, out_log, bundle_dir)
            except OSError:
                log.exception("cannot log the terminal of %s", container.id[:12])
                stdio.close()  # hangs the terminal up
                return
            stdio.master = -1
            self._keep_terminal(container, terminal)
        with self._lock:
            stdin = self._stdins.get(container.id)
        if stdin is not None and stdio.stdin >= 0:
            stdin.feed(stdio.stdin, f"cnm-stdin-{container.id[:12]}")
            stdio.stdin = -1
        stdio.close()

    def _keep_terminal(self, container: Container, terminal: console.Terminal) -> None:
        with self._lock:
            self._terminals[container.id] = terminal
            stdin = self._stdins.get(container.id)
        if stdin is not None:
            stdin.feed(terminal.input_fd(), f"cnm-stdin-{container.id[:12]}")

    def _attach_networks(self, container: Container, txn: Transaction) -> Sandbox:
        if self._shares_sandbox(container):
            target = self._current(container.host_config.network_mode.removeprefix("container:"))
            if not target.state.running or not target.sandbox_id:
                raise Conflict(f"cannot join network of a non running container: {target.id}")
            return self.controller.sandbox(target.sandbox_id)
        host = container.host_config
        sandbox = self.controller.create_sandbox(
            SandboxOptions(
                container_id=container.id,
                hostname=container.config.hostname or None,
                domainname=container.config.domainname,
                use_host_network=host.network_mode == "host",
                dns=list(host.dns),
                dns_search=list(host.dns_search),
                dns_options=list(host.dns_options),
                extra_hosts=list(host.extra_hosts),
                # Docker's rule: the embedded resolver for a user-defined network mode (the
                # mode is stored as the network's name; the predefined ones are these three).
                embedded_dns=host.network_mode not in ("bridge", "host", "none"),
            )
        )
        txn.on_failure("sandbox", lambda: self.controller.delete_sandbox(sandbox.id))
        for network, request in container.networks.items():
            self.controller.connect(network, sandbox.id, self._endpoint_options(container, request))
        requests = _port_requests(container.config, host)
        if requests and host.network_mode not in ("host", "none"):
            self.controller.publish(sandbox.id, requests)
        return self.controller.sandbox(sandbox.id)

    @staticmethod
    def _endpoint_options(container: Container, request: EndpointRequest) -> EndpointOptions:
        return EndpointOptions(
            name=container.name,
            ipv4_address=request.ipv4_address or None,
            ipv6_address=request.ipv6_address or None,
            mac_address=request.mac_address or None,
            aliases=list(request.aliases),
        )

    def _sandbox_files(self, sandbox: Sandbox) -> dict[str, Path]:
        return {
            f"/etc/{name}": self.controller.sandbox_file(sandbox.id, name)
            for name in ("hosts", "resolv.conf", "hostname")
        }

    @staticmethod
    def _process_env(container: Container, hostname: str) -> list[str]:
        env = list(container.config.env)
        keys = {entry.partition("=")[0] for entry in env}
        if "PATH" not in keys:
            env.insert(0, bundle.DEFAULT_PATH)
        if "HOSTNAME" not in keys:
            env.append(f"HOSTNAME={hostname}")
        if "HOME" not in keys:
            env.append("HOME=/root")
        if container.config.tty and "TERM" not in keys:
            env.append("TERM=xterm")  # as Docker
        return env

    @contextmanager
    def _logs(self, container_id: str) -> Iterator[tuple[IO[bytes], IO[bytes], int]]:
        """The log files opened for appending, and the size of stderr.log before the start (a
        failed start's own message is cut off again)."""
        state = self._state_dir(container_id)
        with open(state / "stdout.log", "ab") as out, open(state / "stderr.log", "ab") as err:
            yield out, err, err.tell()

    def _start_runc(
        self,
        container: Container,
        image: Image,
        sandbox: Sandbox,
        txn: Transaction,
        stdio: console.ProcessStdio,
    ) -> int:
        bundle_dir = self._bundle_dir(container.id)
        state = self._state_dir(container.id)
        rootfs = bundle_dir / "rootfs"
        bundle.mount_overlay(Path(image.rootfs), state / "upper", state / "work", rootfs)
        txn.on_failure("rootfs", lambda: bundle.unmount(rootfs))
        spec = bundle.oci_spec(
            container_id=container.id,
            args=[*container.config.entrypoint, *container.config.cmd],
            env=self._process_env(container, sandbox.hostname),
            cwd=container.config.working_dir,
            hostname=sandbox.hostname,
            rootfs=rootfs,
            netns=sandbox.key,
            files=self._sandbox_files(sandbox),
            terminal=container.config.tty,
            console_size=container.host_config.console_size,
        )
        bundle.write_spec(bundle_dir, spec)
        pid_file = bundle_dir / "init.pid"
        runc_log = bundle_dir / "runc.log"
        pid_file.unlink(missing_ok=True)
        runc_log.unlink(missing_ok=True)
        with self._runc_stdio(container, bundle_dir, stdio) as (stdin, console_socket):
            with self._logs(container.id) as (out, err, offset):
                done = REAPER.run(
                    [
                        *self._runc_command(),
                        "--log",
                        str(runc_log),
                        "--log-format",
                        "json",
                        "run",
                        "-d",
                        *(["--console-socket", console.SOCKET_NAME] if console_socket else []),
                        "--bundle",
                        str(bundle_dir),
                        "--pid-file",
                        str(pid_file),
                        container.id,
                    ],
                    stdin=stdin,
                    stdout=out,
                    stderr=err,
                    cwd=bundle_dir,  # where runc finds the console socket by its short name
                    timeout=RUNC_TIMEOUT_S,
                )
                if done.returncode != 0:
                    err.truncate(offset)
            if done.returncode != 0:
                self._runc_delete(container.id)
                raise _start_error(_runc_error(runc_log) or f"runc exited with {done.returncode}")
            txn.on_failure("runc container", lambda: self._runc_delete(container.id))
            if console_socket is not None:
                stdio.master = console_socket.receive()
        return int(pid_file.read_text())

    @staticmethod
    @contextmanager
    def _runc_stdio(
        container: Container, bundle_dir: Path, stdio: console.ProcessStdio
    ) -> Iterator[tuple[int, console.ConsoleSocket | None]]:
        """For the time of ``runc run``: its stdin (the read end of the container's stdin
        pipe, whose write end goes to ``stdio``; else /dev/null) and, with a terminal, the
        console socket runc sends the master to."""
        if container.config.tty:
            with console.ConsoleSocket(bundle_dir) as console_socket:
                yield subprocess.DEVNULL, console_socket
            return
        if not container.config.open_stdin:
            yield subprocess.DEVNULL, None
            return
        stdin, stdio.stdin = os.pipe()
        try:
            yield stdin, None
        finally:
            os.close(stdin)

    def _start_host(
        self,
        container: Container,
        sandbox: Sandbox,
        txn: Transaction,
        stdio: console.ProcessStdio,
    ) -> int:
        status_r, status_w = os.pipe()
        stdin: int = subprocess.DEVNULL
        slave = -1
        if container.config.tty:
            stdio.master, slave = os.openpty()
            console.set_size(slave, *container.host_config.console_size)
        elif container.config.open_stdin:
            stdin, stdio.stdin = os.pipe()
        args = [
            sys.executable,
            "-I",
            "-m",
            "cnm.runtime.hostinit",
            f"--status-fd={status_w}",
            f"--netns={sandbox.key}",
            f"--hostname={sandbox.hostname}",
            f"--unmount-under={self.config.exec_root}",
            f"--cwd={container.config.working_dir or '/'}",
            *(
                f"--bind={source}:{inside}"
                for inside, source in self._sandbox_files(sandbox).items()
            ),
            "--",
            *container.config.entrypoint,
            *container.config.cmd,
        ]
        env = dict(e.partition("=")[::2] for e in self._process_env(container, sandbox.hostname))
        try:
            with self._logs(container.id) as (out, err, offset):
                streams: tuple[int | IO[bytes], ...] = (stdin, out, err)
                if slave >= 0:
                    streams = (slave, slave, slave)  # hostinit makes it the controlling terminal
                child = REAPER.spawn(
                    args,
                    stdin=streams[0],
                    stdout=streams[1],
                    stderr=streams[2],
                    env=env,
                    pass_fds=(status_w,),
                    start_new_session=True,
                    on_exit=lambda pid, rc: self._on_exit(container.id, pid, rc),
                )
                os.close(status_w)
                status_w = -1
                failure = _read_until_eof(status_r, RUNC_TIMEOUT_S)
                if failure:
                    child.wait(RUNC_TIMEOUT_S)
                    err.truncate(offset)
        finally:
            for fd in (status_w, stdin, slave):
                if fd >= 0:
                    os.close(fd)
            os.close(status_r)
        if failure:
            raise _start_error(failure)
        txn.on_failure("process", lambda: _kill_group(child.pid))
        return child.pid

    # ------------------------------------------------------------------ exits

    def _on_exit(self, container_id: str, pid: int, returncode: int) -> None:
        """From the reaper thread: hand the teardown to a thread of its own."""
        threading.Thread(
            target=self._handle_exit,
            args=(container_id, pid, _exit_code(returncode)),
            name=f"cnm-exit-{container_id[:12]}",
            daemon=True,
        ).start()

    def _on_restored_exit(self, container_id: str, pid: int, started: int) -> None:
        threading.Thread(
            target=lambda: self._handle_exit(container_id, pid, self._lost_exit_code(pid, started)),
            name=f"cnm-exit-{container_id[:12]}",
            daemon=True,
        ).start()

    def _handle_exit(self, container_id: str, pid: int, code: int) -> None:
        if self._closed:
            return
        with self._container_lock(container_id):
            with self._lock:
                container = self._containers.get(container_id)
            if container is None or not container.state.running or container.state.pid != pid:
                return
            self._finish(container, code)
        self._after_exit(container)

    def _finish(self, container: Container, code: int) -> None:
        """Tear a container down after its process ended and record the exit (the caller
        holds the container's lock)."""
        self._teardown(container)
        self._new_stdin(container)
        container.state = ContainerState(
            status="exited",
            exit_code=code,
            started_at=container.state.started_at,
            finished_at=now_rfc3339(),
        )
        self._save(container)
        with self._changed:
            self._exits[container.id] = self._exits.get(container.id, 0) + 1
            self._changed.notify_all()
        log.info("container exited id=%s code=%d", container.id[:12], code)

    def _after_exit(self, container: Container) -> None:
        for listener in self._listeners:
            try:
                listener(container.id, container.state.exit_code)
            except Exception:
                log.exception("exit listener failed")
        if container.host_config.auto_remove:
            with suppress(NotFound, Conflict):
                self._remove(container.id)

    def _teardown(self, container: Container) -> None:
        with self._lock:
            pidfd = self._pidfds.pop(container.id, None)
            terminal = self._terminals.pop(container.id, None)
            stdin = self._stdins.pop(container.id, None)
        if stdin is not None:
            stdin.stop()
        if pidfd is not None:
            self._watcher.unwatch(pidfd)
            os.close(pidfd)
        if container.image_id:
            self._runc_delete(container.id)
            try:
                bundle.unmount(self._bundle_dir(container.id) / "rootfs")
            except OSError:
                log.exception("unmounting the rootfs of %s", container.id[:12])
        else:
            _kill_group(container.state.pid)
        if terminal is not None:  # its last output is logged before the exit is reported
            terminal.finish(TERMINAL_DRAIN_S)
        if container.sandbox_id and not self._shares_sandbox(container):
            try:
                if not container.image_id or self._borrowed(container):
                    self._detach_endpoints(container.sandbox_id)
                self.controller.delete_sandbox(container.sandbox_id)
            except NotFound:
                pass
            except CnmError:
                log.exception("deleting the sandbox of %s", container.id[:12])
        container.sandbox_id = None

    def _borrowed(self, container: Container) -> bool:
        """Another running container shares this one's sandbox (network mode container:)."""
        with self._lock:
            return any(
                other.state.running and other.sandbox_id == container.sandbox_id
                for other in self._containers.values()
                if other.id != container.id
            )

    def _detach_endpoints(self, sandbox_id: str) -> None:
        """Take the interfaces out of a namespace that may outlive its sandbox: a process that
        still holds it (a sidecar, a host container's exec) would otherwise keep the veth pair
        alive on the bridge, with the released address still configured inside."""
        for endpoint in self.controller.endpoints():
            if endpoint.sandbox_id == sandbox_id:
                self.controller.disconnect(endpoint.network_id, sandbox_id)

    # ------------------------------------------------------------------ stop / kill / wait

    def _signal(self, container: Container, signum: int, group: bool = False) -> None:
        with self._lock:
            pidfd = self._pidfds.get(container.id)
        if pidfd is not None:
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signum)
        if group and not container.image_id:
            _kill_group(container.state.pid, signum)

    def _await_exit(self, container_id: str, seen: int, timeout: float | None) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: (
                    self._exits.get(container_id, 0) > seen or container_id not in self._containers
                ),
                timeout,
            )

    def stop_container(self, ref: str, timeout: int | None = DEFAULT_STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (None: 10; negative: no SIGKILL);
        returns once the container is torn down. NotModified if it is not running."""
        container_id = self._resolve(ref).id
        with self._container_lock(container_id):
            container = self._current(container_id)
            if not container.state.running:
                raise NotModified(f"container {container_id} is already stopped")
            with self._lock:
                seen = self._exits.get(container_id, 0)
            self._signal(container, signal.SIGTERM)
        grace = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        if self._await_exit(container_id, seen, None if grace < 0 else grace):
            return
        self._signal(container, signal.SIGKILL, group=True)
        if not self._await_exit(container_id, seen, KILL_WAIT_S):
            raise CnmError(f"container {container_id} did not stop after SIGKILL")

    def kill_container(self, ref: str, signal: str | int = "SIGKILL") -> None:
        """Send a signal to the container's first process; for SIGKILL, wait until it is torn
        down (as Docker does)."""
        signum = _parse_signal(signal)
        container_id = self._resolve(ref).id
        with self._container_lock(container_id):
            container = self._current(container_id)
            if not container.state.running:
                raise Conflict(f"Container {container_id} is not running")
            with self._lock:
                seen = self._exits.get(container_id, 0)
            self._signal(container, signum, group=signum == _SIGKILL)
        if signum == _SIGKILL and not self._await_exit(container_id, seen, KILL_WAIT_S):
            raise CnmError(f"container {container_id} did not stop after SIGKILL")

    def restart_container(self, ref: str, timeout: int | None = DEFAULT_STOP_TIMEOUT) -> None:
        with suppress(NotModified):
            self.stop_container(ref, timeout)
        self.start_container(ref)

    def wait_container(
        self, ref: str, condition: str = "not-running", timeout: float | None = None
    ) -> int:
        """Block until ``condition`` holds and return the exit code; TimeoutError after
        ``timeout`` seconds."""
        if condition not in WAIT_CONDITIONS:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        container_id = self._resolve(ref).id
        with self._changed:
            seen = self._exits.get(container_id, 0)

            def done() -> bool:
                container = self._containers.get(container_id)
                if container is None:
                    return True
                if condition == "removed":
                    return False
                if condition == "next-exit":
                    return self._exits.get(container_id, 0) > seen
                return not container.state.running

            if not self._changed.wait_for(done, timeout):
                raise TimeoutError(f"container {container_id} did not reach {condition}")
            container = self._containers.get(container_id)
            if container is None:
                return self._removed.get(container_id, 0)
            return container.state.exit_code

    # ------------------------------------------------------------------ remove / rename

    def remove_container(self, ref: str, force: bool = False) -> None:
        container = self._resolve(ref)
        if container.state.running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {container.id}. Stop the container "
                    "before attempting removal or force remove"
                )
            with suppress(Conflict):  # it ended meanwhile
                self.kill_container(container.id, "SIGKILL")
        self._remove(container.id)

    def _remove(self, container_id: str) -> None:
        with self._container_lock(container_id):
            container = self._current(container_id)
            if container.state.running:
                raise Conflict(
                    f"You cannot remove a running container {container_id}. Stop the container "
                    "before attempting removal or force remove"
                )
            self.store.delete(f"container/{container_id}")  # files left by a crash: see start
            bundle_dir = self._bundle_dir(container_id)
            bundle.unmount(bundle_dir / "rootfs")
            shutil.rmtree(bundle_dir, ignore_errors=True)
            shutil.rmtree(self._state_dir(container_id), ignore_errors=True)
            with self._changed:
                del self._containers[container_id]
                self._exits.pop(container_id, None)
                self._stdins.pop(container_id, None)
                self._removed[container_id] = container.state.exit_code
                for exec_id in [
                    e.id for e in self._execs.values() if e.container_id == container_id
                ]:
                    del self._execs[exec_id]
                self._changed.notify_all()
        with self._lock:
            self._container_locks.pop(container_id, None)
        log.info("container removed id=%s", container_id[:12])

    def rename_container(self, ref: str, new_name: str) -> None:
        name = validate.container_name(new_name)
        container_id = self._resolve(ref).id
        with self._container_lock(container_id):
            with self._lock:
                container = self._current(container_id)
                if container.name == name:
                    raise InvalidParameter(
                        "Renaming a container with the same name as its current name"
                    )
                self._check_name_free(name)
                old_name, container.name = container.name, name
            # A running container's endpoints carry its name, and with them its DNS records.
            sandbox_id = None
            if container.state.running and not self._shares_sandbox(container):
                sandbox_id = container.sandbox_id
            try:
                if sandbox_id:
                    self.controller.rename_endpoints(sandbox_id, name)
                self._save(container)
            except BaseException:
                with self._lock:
                    container.name = old_name
                if sandbox_id:
                    with suppress(CnmError):
                        self.controller.rename_endpoints(sandbox_id, old_name)
                raise

    # ------------------------------------------------------------------ stdin, terminal

    def write_stdin(self, ref: str, data: bytes) -> None:
        """Input for the container's stdin, kept until its process reads it (that of its next
        run if it is not running). Dropped without OpenStdin, after ``close_stdin``, and while
        a run's stdin is lost to a daemon restart."""
        container_id = self._resolve(ref).id
        with self._lock:
            stdin = self._stdins.get(container_id)
        if stdin is not None:
            stdin.write(data)

    def close_stdin(self, ref: str) -> None:
        """The end of the input: the process reads EOF after the rest (Docker's StdinOnce)."""
        container_id = self._resolve(ref).id
        with self._lock:
            stdin = self._stdins.get(container_id)
        if stdin is not None:
            stdin.close()

    def resize_container(self, ref: str, height: int, width: int) -> None:
        """Set the size of a running container's terminal (nothing to do without a Tty)."""
        _check_size(height, width)
        container = self._resolve(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        with self._lock:
            terminal = self._terminals.get(container.id)
        if terminal is not None:
            terminal.resize(height, width)

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """Set the size of a running exec's terminal (nothing to do without one)."""
        _check_size(height, width)
        record = self._exec(exec_id)
        if not self._current(record.container_id).state.running:
            raise Conflict(f"Container {record.container_id} is not running")
        with record.console_lock:
            if record.console >= 0:
                console.set_size(record.console, height, width)

    # ------------------------------------------------------------------ exec

    def exec_create(
        self,
        ref: str,
        cmd: list[str],
        env: list[str],
        tty: bool,
        workdir: str = "",
        open_stdin: bool = False,
        console_size: tuple[int, int] = (0, 0),
    ) -> str:
        container = self._resolve(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        if not cmd:
            raise InvalidParameter("No exec command specified")
        _check_size(*console_size)
        exec_id = secrets.token_hex(32)
        with self._lock:
            self._execs[exec_id] = _Exec(
                exec_id, container.id, list(cmd), list(env), tty, workdir, open_stdin, console_size
            )
        return exec_id

    def _exec(self, exec_id: str) -> _Exec:
        with self._lock:
            record = self._execs.get(exec_id)
        if record is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return record

    def exec_start(self, exec_id: str) -> subprocess.Popen[bytes]:
        """Start an exec's process. Its stdin/stdout/stderr are pipes; with a tty, stdin and
        stdout both use the master side of a pseudo-terminal and stderr is None (the terminal
        merges the streams). Wait on it with the Popen methods only (never os.waitpid)."""
        record = self._exec(exec_id)
        container = self._current(record.container_id)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        with self._lock:
            if record.started:
                raise Conflict(f"Exec {exec_id} has already been started")
            record.started = True
        if container.image_id:
            args = [*self._runc_command(), "exec"]
            args += [f"--env={entry}" for entry in record.env]
            if record.workdir:
                args.append(f"--cwd={record.workdir}")
            if record.tty:
                args.append("--tty")
            args += [container.id, *record.cmd]
            env = None
        else:
            args = ["nsenter", "-t", str(container.state.pid), "--net", "--mount", "--uts", "--ipc"]
            args += [f"--wd={record.workdir or container.config.working_dir or '/'}", "--"]
            args += record.cmd
            env_list = _merge_env(
                self._process_env(container, container.config.hostname), record.env
            )
            env = dict(e.partition("=")[::2] for e in env_list)

        def ended(pid: int, returncode: int) -> None:
            with record.console_lock:
                record.exit_code = _exit_code(returncode)
                record.running = False
                if record.console >= 0:
                    os.close(record.console)
                    record.console = -1

        record.running = True
        try:
            if record.tty:
                child = self._spawn_on_terminal(args, env, ended, record.console_size)
                assert child.stdout is not None
                with record.console_lock:
                    if record.running:
                        record.console = os.dup(child.stdout.fileno())
            else:
                child = REAPER.spawn(
                    args,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    on_exit=ended,
                )
        except OSError as err:
            record.running = False
            raise CnmError(f"cannot start exec {exec_id}: {err}") from err
        record.pid = child.pid
        return child

    @staticmethod
    def _spawn_on_terminal(
        args: list[str],
        env: dict[str, str] | None,
        ended: Callable[[int, int], None],
        size: tuple[int, int],
    ) -> Child:
        """runc exec --tty needs a controlling terminal: give the process a pseudo-terminal in
        a session of its own (setsid --ctty), and hand back the master side as its stdio. runc
        gives the container's terminal the size of this one, at start and on SIGWINCH."""
        master, slave = os.openpty()
        try:
            console.set_size(master, *size)
            child = REAPER.spawn(
                ["setsid", "--wait", "--ctty", *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                on_exit=ended,
            )
        finally:
            os.close(slave)
        child.stdin = open(master, "wb", buffering=0)  # noqa: SIM115 - owned by the Popen
        child.stdout = open(os.dup(master), "rb", buffering=0)  # noqa: SIM115
        return child

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        record = self._exec(exec_id)
        return {
            "ID": record.id,
            "Running": record.running,
            "ExitCode": None if record.running or not record.started else record.exit_code,
            "ProcessConfig": {
                "tty": record.tty,
                "entrypoint": record.cmd[0],
                "arguments": record.cmd[1:],
                "privileged": False,
                "user": "",
            },
            "OpenStdin": record.open_stdin,
            "OpenStderr": True,
            "OpenStdout": True,
            "CanRemove": False,
            "ContainerID": record.container_id,
            "DetachKeys": "",
            "Pid": record.pid,
        }

    # ------------------------------------------------------------------ networks

    def connect(self, ref: str, network_ref: str, request: EndpointRequest) -> None:
        """Attach to a network: at once if running (the interface appears inside), else at the
        next start. Forbidden for a container sharing another's or the host's namespace."""
        container_id = self._resolve(ref).id
        with self._container_lock(container_id):
            container = self._current(container_id)
            mode = container.host_config.network_mode
            if self._shares_sandbox(container):
                raise Forbidden(SHARED_NETWORK)
            network = self.controller.network(network_ref)
            if mode == "host" or network.driver == "host":
                raise Forbidden(HOST_NETWORK)
            if network.name in container.networks:
                raise Forbidden(
                    f"endpoint with name {container.name} already exists in network {network.name}"
                )
            if "none" in container.networks or network.driver == "null":
                raise Forbidden(NONE_NETWORK)
            self._check_request(network, request)
            if container.state.running and container.sandbox_id:
                self.controller.connect(
                    network.id, container.sandbox_id, self._endpoint_options(container, request)
                )
            with self._lock:
                container.networks[network.name] = copy.deepcopy(request)
            try:
                self._save(container)
            except BaseException:
                with self._lock:
                    del container.networks[network.name]
                if container.state.running and container.sandbox_id:
                    self.controller.disconnect(network.id, container.sandbox_id)
                raise

    def disconnect(self, ref: str, network_ref: str, force: bool = False) -> None:
        container_id = self._resolve(ref).id
        with self._container_lock(container_id):
            container = self._current(container_id)
            if self._shares_sandbox(container):
                raise Forbidden(SHARED_NETWORK)
            if container.host_config.network_mode == "host":
                raise Forbidden(HOST_NETWORK)
            network: Network | None = None
            try:
                network = self.controller.network(network_ref)
                name = network.name
            except NotFound:
                if not force:
                    raise
                name = network_ref
            if name not in container.networks:
                raise Forbidden(f"container {container.id} is not connected to network {name}")
            if network is not None and container.state.running and container.sandbox_id:
                try:
                    self.controller.disconnect(network.id, container.sandbox_id)
                except NotFound:
                    if not force:
                        raise
            with self._lock:
                request = container.networks.pop(name)
            try:
                self._save(container)
            except BaseException:
                with self._lock:
                    container.networks[name] = request
                raise

    def network_settings(self, container: Container) -> dict[str, Any]:
        """Docker's NetworkSettings: live values while running, empty strings once stopped."""
        sandbox = None
        if container.state.running and container.sandbox_id and not self._shares_sandbox(container):
            try:
                sandbox = self.controller.sandbox(container.sandbox_id)
            except NotFound:
                sandbox = None
        joined = {}
        if sandbox is not None:
            joined = {
                e.network_id: e for e in self.controller.endpoints() if e.sandbox_id == sandbox.id
            }
        networks: dict[str, dict[str, Any]] = {}
        for name, request in container.networks.items():
            try:
                network: Network | None = self.controller.network(name)
            except NotFound:
                network = None
            endpoint = joined.get(network.id) if network else None
            networks[name] = _endpoint_settings(container, network, endpoint, request)
        ports: dict[str, list[dict[str, str]] | None] = {}
        if container.state.running:
            for port in [*container.config.exposed_ports, *container.host_config.port_bindings]:
                ports.update(dict.fromkeys(_port_keys(port)))
        for mapping in self.controller.published(sandbox.id) if sandbox else []:
            bound = ports.get(mapping.key) or []
            bound.append({"HostIp": str(mapping.host_ip), "HostPort": str(mapping.host_port)})
            ports[mapping.key] = bound
        legacy = networks.get("bridge", {})
        return {
            "Bridge": "",
            "SandboxID": sandbox.id if sandbox else "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SandboxKey": sandbox.key if sandbox else "",
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": legacy.get("EndpointID", ""),
            "Gateway": legacy.get("Gateway", ""),
            "GlobalIPv6Address": legacy.get("GlobalIPv6Address", ""),
            "GlobalIPv6PrefixLen": legacy.get("GlobalIPv6PrefixLen", 0),
            "IPAddress": legacy.get("IPAddress", ""),
            "IPPrefixLen": legacy.get("IPPrefixLen", 0),
            "IPv6Gateway": legacy.get("IPv6Gateway", ""),
            "MacAddress": legacy.get("MacAddress", ""),
            "Networks": networks,
        }

    # ------------------------------------------------------------------ runc

    def _runc_command(self) -> list[str]:
        return [self.config.runc, "--root", str(self._runc_root)]

    def _runc_delete(self, container_id: str) -> None:
        done = REAPER.run(
            [*self._runc_command(), "delete", "--force", container_id], timeout=RUNC_TIMEOUT_S
        )
        if done.returncode != 0:
            log.warning("runc delete %s: %s", container_id[:12], done.stderr.decode().strip())


_SIGKILL = signal.SIGKILL


def _endpoint_settings(
    container: Container, network: Network | None, endpoint: Any, request: EndpointRequest
) -> dict[str, Any]:
    def split(text: str | None) -> tuple[str, int]:
        if not text:
            return "", 0
        interface = ipaddress.ip_interface(text)
        return str(interface.ip), interface.network.prefixlen

    def gateway(text: str | None) -> str:
        return str(ipaddress.ip_interface(text).ip) if text else ""

    ipv4, ipv4_len = split(endpoint.ipv4_address if endpoint else None)
    ipv6, ipv6_len = split(endpoint.ipv6_address if endpoint else None)
    ipam = None
    if request.ipv4_address or request.ipv6_address:
        ipam = {
            "IPv4Address": request.ipv4_address or "",
            "IPv6Address": request.ipv6_address or "",
        }
    user_defined = network is not None and not network.predefined
    return {
        "IPAMConfig": ipam,
        "Links": None,
        "Aliases": list(request.aliases) or None,
        "MacAddress": (endpoint.mac_address or "") if endpoint else "",
        "DriverOpts": None,
        "NetworkID": network.id if network else "",
        "EndpointID": endpoint.id if endpoint else "",
        "Gateway": gateway(endpoint.gateway_v4) if endpoint else "",
        "IPAddress": ipv4,
        "IPPrefixLen": ipv4_len,
        "IPv6Gateway": gateway(endpoint.gateway_v6) if endpoint else "",
        "GlobalIPv6Address": ipv6,
        "GlobalIPv6PrefixLen": ipv6_len,
        "DNSNames": [container.name, *request.aliases, container.id[:12]]
        if user_defined and endpoint
        else None,
    }


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def _kill_group(pgid: int, signum: int = signal.SIGKILL) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _read_until_eof(fd: int, timeout: float) -> str:
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise CnmError("the container's process did not start in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks).decode(errors="replace")
        chunks.append(chunk)


def _runc_error(log_path: Path) -> str:
    """The last error runc logged (its --log-format json lines)."""
    message = ""
    try:
        lines = log_path.read_text().splitlines()
    except FileNotFoundError:
        return ""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal"):
            message = str(entry.get("msg", ""))
    return message


def _start_exit_code(message: str) -> int:
    """Docker's exit codes for a failed start: 127 no such command, 126 cannot run it."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message:
        return 126
    return 128


def _start_error(message: str) -> CnmError:
    """Docker's classes: a command that cannot be found or run is the user's error (400)."""
    text = f"failed to create task for container: OCI runtime create failed: {message}: unknown"
    if "executable file not found" in message or "no such file or directory" in message:
        return InvalidParameter(text)
    if "permission denied" in message:
        return InvalidParameter(text)
    return CnmError(text)
