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
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cnm import validate
from cnm.controller import Controller
from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.runtime import console, pidwatch
from cnm.runtime.checks import CreateChecks
from cnm.runtime.execs import ExecProcess, ExecSessions
from cnm.runtime.files import ContainerFiles
from cnm.runtime.hostcontainers import HostContainers
from cnm.runtime.imagecontainers import ImageContainers
from cnm.runtime.images import HOST_IMAGE, ImageStore, is_host_image, now_rfc3339
from cnm.runtime.model import (
    Container,
    ContainerConfig,
    ContainerNetworkState,
    ContainerState,
    EndpointRequest,
    ExecInfo,
    HostConfig,
    Image,
)
from cnm.runtime.names import generate_name
from cnm.runtime.networking import ContainerNetworking, shares_sandbox
from cnm.runtime.process import (
    ContainerProcesses,
    ExecRequest,
    exit_code,
    merge_env,
    parse_signal,
)
from cnm.runtime.reaper import REAPER
from cnm.runtime.runc import Runc, start_exit_code
from cnm.store.api import Store
from cnm.transaction import transaction

__all__ = ["HOST_IMAGE", "NotModified", "Runtime", "RuntimeConfig"]

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT_S = 10.0
UNKNOWN_EXIT_CODE = 137
TERMINAL_DRAIN_S = 2.0  # after an exit, for the last output of a terminal's holders
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


class Runtime:
    def __init__(self, config: RuntimeConfig, store: Store, controller: Controller) -> None:
        self.config = config
        self.store = store
        self.controller = controller
        self._files = ContainerFiles(config.data_root, config.exec_root)
        self._images = ImageStore(store, config.data_root / "images")
        self._image_containers = ImageContainers(
            Runc(config.runc, self._files.runc_root), self._files
        )
        self._host_containers = HostContainers(self._files)
        self._checks = CreateChecks(controller)
        self._networking = ContainerNetworking(controller)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._containers: dict[str, Container] = {}
        self._container_locks: dict[str, threading.Lock] = {}
        self._execs = ExecSessions()
        self._exits: dict[str, int] = {}  # exits seen per container: wakes next-exit waiters
        self._removed: dict[str, int] = {}  # removed container -> its last exit code
        self._pidfds: dict[str, int] = {}  # running container -> pidfd of its first process
        self._terminals: dict[str, console.Terminal] = {}  # running container with a Tty
        self._stdins: dict[str, console.Stdin] = {}  # OpenStdin container -> this run's input
        self._watcher = pidwatch.PidWatcher()
        self._listeners: list[ExitListener] = []
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ start / close

    def start(self) -> None:
        """Restore images and containers. Containers still running keep running and are
        watched again; those that ended while we were away are torn down as exited."""
        self._files.prepare()
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
        self._image_containers.remove_unknown(set(containers))
        self._files.remove_unknown(set(containers))
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
        terminal = console.Terminal.recover(self._files.bundle_dir(container.id))
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
                return exit_code(returncode)
            if attempt == 0:
                time.sleep(0.02)  # the reaper may be between waitpid and filing the status
        return UNKNOWN_EXIT_CODE

    def _reconcile_stopped(self, container: Container) -> None:
        """Remove what a crash in the middle of a stop may have left."""
        self._networking.clean_up_stopped(container)
        if container.sandbox_id:
            container.sandbox_id = None
            self._save(container)
        self._image_containers.clean_up_stopped(container.id)

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

    def log_paths(self, ref: str) -> tuple[Path, Path]:
        return self._files.log_paths(self._resolve(ref).id)

    def _processes(self, container: Container) -> ContainerProcesses:
        return self._image_containers if container.image_id else self._host_containers

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
            config.env = merge_env(image.env, config.env)
            config.working_dir = config.working_dir or image.working_dir
        if not config.entrypoint and not config.cmd:
            raise InvalidParameter("no command specified")
        host_config.network_mode = self._checks.network_mode(config, host_config, self._resolve)
        wanted = self._checks.networks(host_config.network_mode, networks)
        self._checks.sandbox_options(host_config)
        container_id = secrets.token_hex(32)
        self._checks.ports(config, host_config, list(wanted))
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
        self._files.create(container_id)
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
                container.state.exit_code = start_exit_code(str(err))
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
            lender = None
            if shares_sandbox(container):
                lender = self._current(
                    container.host_config.network_mode.removeprefix("container:")
                )
            sandbox = self._networking.attach(container, txn, lender)
            txn.on_failure("stdio", stdio.close)
            files = self._networking.sandbox_files(sandbox)
            if image is None:
                pid = self._host_containers.start(
                    container,
                    sandbox,
                    files,
                    stdio,
                    txn,
                    lambda child, rc: self._on_exit(container.id, child, rc),
                )
            else:
                pid = self._image_containers.start(container, image, sandbox, files, stdio, txn)
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
            bundle_dir = self._files.bundle_dir(container.id)
            bundle_dir.mkdir(parents=True, exist_ok=True)  # a host container has no bundle
            out_log = self._files.log_paths(container.id)[0]
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

    # ------------------------------------------------------------------ exits

    def _on_exit(self, container_id: str, pid: int, returncode: int) -> None:
        """From the reaper thread: hand the teardown to a thread of its own."""
        threading.Thread(
            target=self._handle_exit,
            args=(container_id, pid, exit_code(returncode)),
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
        self._processes(container).end(container)
        if terminal is not None:  # its last output is logged before the exit is reported
            terminal.finish(TERMINAL_DRAIN_S)
        # A host container's exec, or a sidecar, may still hold the namespace.
        detach = not container.image_id or self._borrowed(container)
        self._networking.release(container, detach)
        container.sandbox_id = None

    def _borrowed(self, container: Container) -> bool:
        """Another running container shares this one's sandbox (network mode container:)."""
        with self._lock:
            return any(
                other.state.running and other.sandbox_id == container.sandbox_id
                for other in self._containers.values()
                if other.id != container.id
            )

    # ------------------------------------------------------------------ stop / kill / wait

    def _signal(self, container: Container, signum: int, everyone: bool = False) -> None:
        """``signum`` to the container's first process, and with ``everyone`` to the rest."""
        with self._lock:
            pidfd = self._pidfds.get(container.id)
        if pidfd is not None:
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signum)
        if everyone:
            self._processes(container).signal_all(container, signum)

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
        self._signal(container, signal.SIGKILL, everyone=True)
        if not self._await_exit(container_id, seen, KILL_WAIT_S):
            raise CnmError(f"container {container_id} did not stop after SIGKILL")

    def kill_container(self, ref: str, signal: str | int = "SIGKILL") -> None:
        """Send a signal to the container's first process; for SIGKILL, wait until it is torn
        down (as Docker does)."""
        signum = parse_signal(signal)
        container_id = self._resolve(ref).id
        with self._container_lock(container_id):
            container = self._current(container_id)
            if not container.state.running:
                raise Conflict(f"Container {container_id} is not running")
            with self._lock:
                seen = self._exits.get(container_id, 0)
            self._signal(container, signum, everyone=signum == _SIGKILL)
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
            self._files.remove(container_id)
            with self._changed:
                del self._containers[container_id]
                self._exits.pop(container_id, None)
                self._stdins.pop(container_id, None)
                self._removed[container_id] = container.state.exit_code
                self._changed.notify_all()
            self._execs.forget_container(container_id)
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
            try:
                self._networking.rename(container, name)
                self._save(container)
            except BaseException:
                with self._lock:
                    container.name = old_name
                with suppress(CnmError):
                    self._networking.rename(container, old_name)
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
        console.check_size(height, width)
        container = self._resolve(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        with self._lock:
            terminal = self._terminals.get(container.id)
        if terminal is not None:
            terminal.resize(height, width)

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """Set the size of a running exec's terminal (nothing to do without one)."""
        console.check_size(height, width)
        session = self._execs.get(exec_id)
        if not self._current(session.container_id).state.running:
            raise Conflict(f"Container {session.container_id} is not running")
        session.resize(height, width)

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
        """A new exec session in a running container; its id."""
        container = self._resolve(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        request = ExecRequest(list(cmd), list(env), workdir, tty)
        return self._execs.create(container.id, request, open_stdin, console_size).id

    def exec_start(self, exec_id: str) -> ExecProcess:
        """Start an exec's process; its streams and exit code."""
        session = self._execs.get(exec_id)
        container = self._current(session.container_id)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        return session.start(self._processes(container).exec_command(container, session.request))

    def exec_inspect(self, exec_id: str) -> ExecInfo:
        return self._execs.get(exec_id).info()

    # ------------------------------------------------------------------ networks

    def connect(self, ref: str, network_ref: str, request: EndpointRequest) -> None:
        """Attach to a network: at once if running (the interface appears inside), else at the
        next start. Forbidden for a container sharing another's or the host's namespace."""
        container_id = self._resolve(ref).id
        with self._container_lock(container_id):
            container = self._current(container_id)
            network, checked = self._networking.connect(container, network_ref, request)
            with self._lock:
                container.networks[network.name] = checked
            try:
                self._save(container)
            except BaseException:
                with self._lock:
                    del container.networks[network.name]
                self._networking.undo_connect(container, network)
                raise

    def disconnect(self, ref: str, network_ref: str, force: bool = False) -> None:
        container_id = self._resolve(ref).id
        with self._container_lock(container_id):
            container = self._current(container_id)
            name = self._networking.disconnect(container, network_ref, force)
            with self._lock:
                request = container.networks.pop(name)
            try:
                self._save(container)
            except BaseException:
                with self._lock:
                    container.networks[name] = request
                raise

    def network_state(self, container: Container) -> ContainerNetworkState:
        """The container's sandbox, endpoints and published ports as they are now."""
        return self._networking.state(container)


_SIGKILL = signal.SIGKILL


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None
