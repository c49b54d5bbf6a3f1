"""The container runtime: containers' lifecycle on top of the controller's sandboxes.

A container is a record (store key ``container/<id>``, kept by ``table``) until it starts.
Start asks the controller for a sandbox and connects it to the container's networks
(``networking``), then runs the process: under runc from an OCI bundle (``imagecontainers``),
or, for the reserved image ``cnm/host``, on the host's filesystem through hostinit
(``hostcontainers``). Any failure undoes every step. When the process ends (``exits``) the
container is torn down: what is left of the run, then the sandbox, so a stopped container holds
no endpoint and no address (Docker does this at stop); the record keeps what it asked for
(networks, aliases, static addresses), so a start attaches it the same way again.

This class composes the parts and orders their calls; each part owns its own state. Create's
checks are ``checks``; a container's stdin and terminal ``stdio``; exec sessions ``execs``;
file locations ``files``; runc itself ``runc``; legacy links ``links``. What happens to
containers and images is told on ``events`` (``docker events``), after it is recorded. Nothing here speaks Docker's JSON: callers get
records (``Container``, ``ContainerNetworkState``, ``ExecInfo``, ``ExecProcess``) and the API
turns them into Docker's wire format.

Locking. The table's lock guards the records and is held briefly; waiters on exits and removals
wait on its condition. A lock per container (``table.lock_for``) serialises the container's
lifecycle operations: start, the teardown after an exit, the signal of stop and kill, connect,
disconnect, rename and removal. Stop and kill never hold it while waiting for an exit, since
the exit handler takes it. The parts' own locks guard only their own tables and are never held
while calling out.

Docker's 304 answers (start of a running container, stop of a stopped one) raise NotModified.

A store that fails (its disk full) fails the call that needed it, with its error; the state
converges once it works again. An exit is always recorded in memory and wakes its waiters, even
when its teardown or its record cannot be written: the process is gone whatever the store says.
A sandbox the teardown could not delete stays named by the container (``sandbox_id`` of a
container that is not running), and the container's next start or its removal deletes it
first; a record that could not be saved is written whole at the container's next change, and a
restart finds the process gone and records the exit.
"""

from __future__ import annotations

import copy
import logging
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from cnm import validate
from cnm.controller import Controller
from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.events import EventBus
from cnm.osl.reaper import REAPER
from cnm.runtime import bundle, cgroups, console, hostsettings, links, logdriver, users
from cnm.runtime import changes as changes_module
from cnm.runtime import resources as resources_module
from cnm.runtime import stats as stats_module
from cnm.runtime.archive import ArchiveStream, ContainerArchives, PathStat, Readable
from cnm.runtime.checks import CreateChecks
from cnm.runtime.commit import apply_changes, tar_writer
from cnm.runtime.events import ContainerEvent, ImageEvent, RuntimeEvent
from cnm.runtime.execs import ExecProcess, ExecSessions
from cnm.runtime.exits import ExitWatcher, lost_exit_code
from cnm.runtime.files import ContainerFiles
from cnm.runtime.hostcontainers import HostContainers
from cnm.runtime.imagecontainers import ImageContainers, SharedNamespaces
from cnm.runtime.images import (
    HOST_IMAGE,
    ImageStore,
    is_host_image,
    normalize_reference,
    now_rfc3339,
)
from cnm.runtime.logdriver import LogFile, LogMessage
from cnm.runtime.model import (
    Container,
    ContainerConfig,
    ContainerNetworkState,
    ContainerState,
    EndpointRequest,
    ExecInfo,
    HostConfig,
    HostSupport,
    Image,
    MountPoint,
    Resources,
    RestartPolicy,
)
from cnm.runtime.mounts import MountResolver
from cnm.runtime.networking import ContainerNetworking, shares_sandbox
from cnm.runtime.outputs import Notify, OutputHub, Subscription
from cnm.runtime.process import ContainerProcesses, ExecRequest, merge_env, parse_signal
from cnm.runtime.restarts import RestartManager, due_at_start
from cnm.runtime.runc import Runc, start_exit_code
from cnm.runtime.stdio import StdioTable
from cnm.runtime.table import ContainerTable
from cnm.runtime.volumes import Volume, VolumeStore
from cnm.store.api import Store
from cnm.transaction import transaction

__all__ = ["HOST_IMAGE", "NotModified", "Runtime", "RuntimeConfig"]

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10  # seconds, unless the container sets StopTimeout
KILL_WAIT_S = 10.0
TERMINAL_DRAIN_S = 2.0  # after an exit, for the last output of a terminal's holders

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
        self.controller = controller
        self._files = ContainerFiles(config.data_root, config.exec_root)
        self._images = ImageStore(store, config.data_root / "images")
        self._table = ContainerTable(store)
        self._checks = CreateChecks(controller)
        self._networking = ContainerNetworking(controller)
        self._image_containers = ImageContainers(
            Runc(config.runc, self._files.runc_root), self._files
        )
        self._host_containers = HostContainers(self._files)
        self._stdio = StdioTable(self._files)
        self._outputs = OutputHub(self._files.bundle_dir)
        self._volumes = VolumeStore(store, config.data_root / "volumes")
        self._mounts = MountResolver(self._volumes, self._mounts_of)
        self._archives = ContainerArchives(self._files)
        self._restarts = RestartManager(self._restart_due)
        self._exits = ExitWatcher(self._handle_exit)
        self._execs = ExecSessions()
        self._listeners: list[ExitListener] = []
        self.events: EventBus[RuntimeEvent] = EventBus()  # what `docker events` reports
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ start / close

    def start(self) -> None:
        """Restore images and containers. Containers still running keep running and are
        watched again; those that ended while we were away are torn down as exited. Then every
        sandbox made for one of our containers that no running container holds is deleted with
        its endpoints, addresses and host ports: a start records its sandbox before the
        container's record names it, so a crash in between leaves a sandbox only this finds.
        (Sandboxes of others, CNI's attachments, are theirs to reconcile.)"""
        self._files.prepare()
        REAPER.acquire()
        self._started = True
        self._images.load()
        self._volumes.load()
        self._outputs.start()
        containers = self._table.load()
        for container in containers:
            self._configure_output(container)
            if container.state.running:
                self._restore_running(container)
            else:
                self._reconcile_stopped(container)
                self._stdio.new_run(container)
        self._networking.remove_unheld_sandboxes(
            {c.id for c in containers},
            {c.sandbox_id for c in containers if c.state.running and c.sandbox_id},
        )
        known = {c.id for c in containers}
        self._image_containers.remove_unknown(known)
        self._files.remove_unknown(known)
        for container in containers:
            # An exit recorded, its --rm not done yet: a crash came between the two (Docker
            # removes such containers at start too).
            if container.host_config.auto_remove and container.state.status == "exited":
                with suppress(NotFound, Conflict):
                    self._remove(container.id)
        log.info(
            "runtime restored images=%d containers=%d", len(self._images.list()), len(containers)
        )
        if shutil.which(self.config.runc) is None:
            log.warning(
                "the container runtime %r is not installed: containers of images cannot start "
                "(install Debian's runc package; scripts/setup.sh does)",
                self.config.runc,
            )
        for container in containers:
            try:
                current = self._table.current(container.id)
            except NotFound:  # removed above, or by its --rm when its exit was found
                continue
            if not current.state.running and due_at_start(current):
                with self._table.lock:  # Docker counts this start as a restart too
                    current.restart_count += 1
                self._table.save(current)
                self._restarts.schedule(container.id, 0)

    def close(self) -> None:
        """Stop watching; containers keep running (live restore)."""
        if not self._started or self._closed:
            return
        self._closed = True
        self._restarts.close()
        self._exits.close()
        self._stdio.close()
        self._outputs.close()
        REAPER.release()

    def subscribe_exit(self, callback: ExitListener) -> None:
        self._listeners.append(callback)

    def _emit(self, action: str, container: Container, **attributes: str) -> None:
        self.events.emit(ContainerEvent(action, copy.deepcopy(container), attributes))

    def _restore_running(self, container: Container) -> None:
        pid, started = container.state.pid, container.state.pid_start_time
        self._outputs.resume(container.id, container.config.tty)
        if self._exits.adopt(container.id, pid, started):
            if container.config.tty:
                self._stdio.recover_terminal(container)
            # A connect, disconnect or rename records before it changes the sandbox: a crash
            # between the two is completed here.
            self._networking.reconcile(container)
            self._exits.watch_adopted(container.id)
            return
        with self._table.lock_for(container.id):
            self._finish(container, lost_exit_code(pid, started))
        self._after_exit(container)

    def _reconcile_stopped(self, container: Container) -> None:
        """Remove what a crash in the middle of a stop may have left; a restart that was due
        is the start-up's business now (``restarts.due_at_start``)."""
        self._networking.clean_up_stopped(container)
        if container.sandbox_id or container.state.restarting:
            container.sandbox_id = None
            if container.state.restarting:
                container.state.status = "exited"
            self._table.save(container)
        self._image_containers.clean_up_stopped(container.id)

    def _configure_output(self, container: Container) -> None:
        """Where the container's output is logged, by its log driver."""
        config = container.host_config.log_config
        log_file = None
        if config.type != "none":
            path = self._files.log_path(container.id, config.type)
            log_file = LogFile(path, logdriver.rotation(config))
        attrs = logdriver.attributes(config, container.config.labels, container.config.env)
        self._outputs.configure(container, log_file, attrs)

    # ------------------------------------------------------------------ images

    def import_image(
        self,
        stream: BinaryIO,
        reference: str | None,
        progress: Callable[[str], None] | None = None,
        template: Image | None = None,
    ) -> Image:
        """``docker import``; ``template`` gives the image its config (``--change``)."""
        image = self._images.import_(stream, reference, progress, template)
        if reference:
            self.events.emit(ImageEvent("tag", image.id, normalize_reference(reference)))
        self.events.emit(ImageEvent("import", image.id, image.id))
        return image

    def images(self) -> list[Image]:
        return self._images.list()

    def image(self, ref: str) -> Image:
        return self._images.get(ref)

    def tag_image(self, ref: str, reference: str) -> None:
        self._images.tag(ref, reference)
        image_id = self._images.get(ref).id
        self.events.emit(ImageEvent("tag", image_id, normalize_reference(reference)))

    def remove_image(self, ref: str, force: bool = False) -> list[str]:
        """``docker rmi``: returns "Untagged: <name:tag>" and "Deleted: <id>" lines. A running
        container's image cannot be deleted even with force (as Docker)."""

        def users(image_id: str) -> list[tuple[str, bool]]:
            return [
                (c.id, c.state.running)
                for c in self._table.containers(all=True)
                if c.image_id == image_id
            ]

        image_id = self._images.get(ref).id
        lines = self._images.remove(ref, force, users)
        for line in lines:  # Docker names the image by its id in both
            action = "untag" if line.startswith("Untagged: ") else "delete"
            self.events.emit(ImageEvent(action, image_id, image_id))
        return lines

    # ------------------------------------------------------------------ lookups

    def containers(self, all: bool = False) -> list[Container]:
        """Copies, newest first; the running ones only unless ``all``."""
        return self._table.containers(all)

    def container(self, ref: str) -> Container:
        """A copy of the container with that id, name or id prefix."""
        return self._table.copy(ref)

    def log_path(self, ref: str) -> Path:
        """The file the container's log driver writes (Docker's LogPath)."""
        container = self._table.resolve(ref)
        return self._files.log_path(container.id, container.host_config.log_config.type)

    # ------------------------------------------------------------------ output

    def read_logs(
        self, ref: str, since_ns: int = 0, until_ns: int = 0, tail: int | None = None
    ) -> list[LogMessage]:
        """The container's logged output with Docker's filters; NotSupported for none."""
        container = self._table.resolve(ref)
        _check_readable(container)
        return self._outputs.read(container.id, since_ns, until_ns, tail)

    def follow_output(
        self,
        ref: str,
        mode: str,
        streams: frozenset[int],
        notify: Notify,
        history: bool = False,
        this_run: bool = False,
    ) -> tuple[Subscription, list[tuple[IO[bytes], int]]]:
        """Follow the container's output (``outputs.OutputHub.subscribe``); with
        ``history`` the log as it is now, to read first (refused for the none driver). With
        ``this_run`` only the current run's (``logs -f``): the follower is ended at once if
        none runs. Decided under the container's lock, which an exit holds from the end of
        the output until the state says so: a follower that came in between would otherwise
        wait for the next run."""
        container = self._table.resolve(ref)
        if history:
            _check_readable(container)
        if not this_run:
            return self._outputs.subscribe(container.id, mode, streams, notify, history)
        with self._table.lock_for(container.id):
            subscription, snapshot = self._outputs.subscribe(
                container.id, mode, streams, notify, history
            )
            if not self._table.current(container.id).state.running:
                subscription.end()
        return subscription, snapshot

    def host_support(self) -> HostSupport:
        """What containers can have here: runc, the log and volume drivers, the cgroup
        files behind the limits (``docker info``)."""
        supports = cgroups.supports
        return HostSupport(
            runtime_path=shutil.which(self.config.runc) or "",
            log_drivers=list(logdriver.DRIVERS),
            volume_drivers=["local"],
            memory_limit=supports("memory", "memory.limit_in_bytes"),
            swap_limit=supports("memory", "memory.memsw.limit_in_bytes"),
            cpu_cfs=supports("cpu", "cpu.cfs_quota_us"),
            cpu_shares=supports("cpu", "cpu.shares"),
            cpuset=supports("cpuset", "cpuset.cpus"),
            pids_limit=supports("pids", "pids.max"),
            oom_kill_disable=supports("memory", "memory.oom_control"),
        )

    def network_state(self, container: Container) -> ContainerNetworkState:
        """The container's sandbox, endpoints and published ports as they are now."""
        return self._networking.state(container)

    def _processes(self, container: Container) -> ContainerProcesses:
        return self._image_containers if container.image_id else self._host_containers

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
        image: Image | None = None
        if not is_host_image(config.image):
            image = self._images.get(config.image)
            image_id = image.id
            _apply_image_defaults(config, image)
        if not config.entrypoint and not config.cmd:
            raise InvalidParameter("no command specified")
        self._checks.process(config)
        mode = self._checks.network_mode(config, host_config, self._table.resolve)
        host_config.network_mode = mode
        wanted = self._checks.networks(mode, networks, host_config.links)
        legacy_links = {}
        if links.is_legacy(mode) or mode == "none":
            legacy_links = links.resolve(host_config.links, mode, self._table.resolve)
        self._checks.sandbox_options(host_config)
        self._checks.mac_address(config)
        container_id = secrets.token_hex(32)
        self._checks.ports(config, host_config)
        host_config = hostsettings.check(config, host_config, self._table.resolve, image is None)
        if not config.hostname:
            host_name = mode == "host" or host_config.uts_mode == "host"
            config.hostname = socket.gethostname() if host_name else container_id[:12]
        mount_points, made = self._mounts.resolve(config, host_config, image)

        def make(chosen: str) -> Container:
            return Container(
                id=container_id,
                name=chosen,
                created=now_rfc3339(),
                image_id=image_id,
                config=config,
                host_config=host_config,
                networks=wanted,
                mount_points=mount_points,
                links=legacy_links,
            )

        try:
            container = self._table.add(name, make)
        except BaseException:
            for volume in made:
                self._volumes.remove(volume, lambda _: [], force=True)
            raise
        self._stdio.new_run(container)
        self._files.create(container_id)
        if image is not None:
            self._image_containers.prepare_init_layer(container, image)
        self._configure_output(container)
        log.info("container created id=%s name=%s", container_id[:12], container.name)
        self._emit("create", container)
        return copy.deepcopy(container)

    # ------------------------------------------------------------------ start

    def start_container(self, ref: str) -> None:
        """Start by a user: a restart policy counts from here again."""
        container_id = self._table.resolve(ref).id
        self._restarts.reset(container_id)
        self._start_locked(container_id, by_user=True)

    def _restart_due(self, container_id: str) -> None:
        """A restart policy's timer (or the daemon's start) says: start it again."""
        try:
            self._start_locked(container_id, by_user=False)
        except NotModified:
            pass
        except CnmError as err:
            log.warning("restarting %s failed: %s", container_id[:12], err)

    def _start_locked(self, container_id: str, by_user: bool) -> None:
        failed: CnmError | None = None
        with self._table.lock_for(container_id):
            try:
                container = self._table.current(container_id)
            except NotFound:
                if by_user:
                    raise
                return
            if container.state.running or (by_user and container.state.restarting):
                raise NotModified(f"container {container_id} is already running")
            if not by_user and not self._restarts.claim(container_id):
                return  # a stop, kill or removal came first
            if not by_user and container.state.status not in ("restarting", "exited", "created"):
                return
            if by_user:  # Docker's ResetRestartManager: the count starts again, failed or not
                with self._table.lock:
                    container.restart_count = 0
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
                with self._table.lock:
                    if container.state.restarting:
                        container.state.status = "exited"
                    container.state.error = str(err)
                    container.state.exit_code = start_exit_code(str(err))
                self._table.save(container)
                failed = err
        if failed is not None:
            # As Docker: the attached clients and waiters are let go, and --rm removes it.
            log.info("container failed to start id=%s: %s", container_id[:12], failed)
            self._after_exit(container)
            raise failed
        log.info("container started id=%s pid=%d", container_id[:12], container.state.pid)
        self._emit("start", container)
        self._relink_parents(container)

    def _shared(self, container: Container) -> SharedNamespaces:
        """The namespaces and /dev/shm a start takes from other containers or the host."""
        host = container.host_config
        namespaces: dict[str, str] = {}
        shm = "/dev/shm" if host.ipc_mode == "host" else ""
        for kind, mode in (("pid", host.pid_mode), ("ipc", host.ipc_mode)):
            if not mode.startswith("container:"):
                continue
            other = self._table.current(mode.removeprefix("container:"))
            if not other.state.running:
                raise Conflict(f"cannot join {kind.upper()} of a non running container: {other.id}")
            namespaces[kind] = f"/proc/{other.state.pid}/ns/{kind}"
            if kind == "ipc":
                if other.host_config.ipc_mode == "host":
                    shm = "/dev/shm"
                elif other.host_config.ipc_mode != "shareable":
                    raise Conflict(
                        f"cannot join IPC of container {other.id}: non-shareable IPC (hint: use "
                        "IpcMode:shareable for the donor container)"
                    )
                else:
                    shm = str(self._files.shm_dir(other.id))
        init = hostsettings.init_binary() if host.init else ""
        return SharedNamespaces(namespaces, shm, init)

    def _start(self, container: Container, image: Image | None) -> None:
        lender = None
        if shares_sandbox(container):
            lender = self._table.current(
                container.host_config.network_mode.removeprefix("container:")
            )
        shared = self._shared(container) if image is not None else SharedNamespaces()
        self._drop_stale_sandbox(container)
        link_hosts, link_env = self._networking.legacy_links(container, self._linked(container))
        process = _with_env(container, link_env)
        run = self._outputs.prepare(container.id, container.config.tty)
        stdio = console.ProcessStdio(output=dict(run.container_fds))
        with transaction() as txn:
            txn.on_failure("output", lambda: self._outputs.discard(container.id, run))
            sandbox = self._networking.attach(container, txn, lender, link_hosts)
            txn.on_failure("stdio", stdio.close)
            files = self._networking.sandbox_files(sandbox)
            if image is None:
                on_exit = self._exits.on_reaped(container.id)
                pid = self._host_containers.start(process, sandbox, files, stdio, txn, on_exit)
            else:
                pid = self._image_containers.start(
                    process, image, sandbox, files, stdio, txn, shared
                )
            started = self._exits.pin(container.id, pid)
            txn.on_failure("pidfd", lambda: self._exits.release(container.id))
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
            self._table.save(updated)
        with self._table.lock:
            container.state = state
            container.sandbox_id = sandbox.id
        self._stdio.keep(container, stdio)
        self._outputs.begin(container.id, run)
        if image is not None:  # a host container's process is our child: spawn watches it
            self._exits.watch_child(container.id, pid)

    def _linked(self, container: Container) -> dict[str, Container]:
        """The containers a starting container's legacy links name, by alias (copies)."""
        given = {validate.link(e)[1]: validate.link(e)[0] for e in container.host_config.links}
        linked = {}
        for alias, child_id in container.links.items():
            try:
                linked[alias] = self._table.copy(child_id)
            except NotFound:
                raise Conflict(
                    f"Cannot link to a non running container: /{given.get(alias, child_id)} "
                    f"AS /{container.name}/{alias}"
                ) from None
        return linked

    def _relink_parents(self, child: Container) -> None:
        """A container started: the running containers linking to it see its new address."""
        for parent in self._table.linking_to(child.id):
            aliases = [alias for alias, cid in parent.links.items() if cid == child.id]
            with suppress(CnmError):
                self._networking.relink(parent, aliases, self._table.copy(child.id))

    def legacy_links(self, container: Container) -> list[tuple[str, str]]:
        """A container's legacy links as (linked container's name, alias); a linked container
        that was removed keeps the name it was linked by."""
        given = {validate.link(e)[1]: validate.link(e)[0] for e in container.host_config.links}
        found = []
        for alias, child_id in container.links.items():
            try:
                name = self._table.copy(child_id).name
            except NotFound:
                name = given.get(alias, child_id)
            found.append((name, alias))
        return found

    def remove_link(self, path: str) -> None:
        """``docker rm --link web/alias``: the link of ``web`` named ``alias`` goes, and with
        it the hosts line (its environment stays until the next start, as in Docker)."""
        full = path if path.startswith("/") else f"/{path}"
        parent_ref, _, alias = full.rpartition("/")
        if not parent_ref:
            raise Conflict("Conflict, cannot remove the default link name of the container")
        try:
            parent_id = self._table.resolve(parent_ref.lstrip("/")).id
        except NotFound:
            raise NotFound(f"No such container: {path}") from None
        with self._table.lock_for(parent_id):
            parent = self._table.current(parent_id)
            if alias not in parent.links:
                raise NotFound(f"No such container: {path}")
            updated = copy.deepcopy(parent)
            del updated.links[alias]
            updated.host_config.links = [
                e for e in parent.host_config.links if validate.link(e)[1] != alias
            ]
            self._table.save(updated)
            with self._table.lock:
                parent.links, parent.host_config.links = updated.links, updated.host_config.links
            self._networking.relink(parent, [alias], None)

    # ------------------------------------------------------------------ exits

    def _handle_exit(self, container_id: str, pid: int, code: int) -> None:
        """The exit watcher's handler, in a thread of its own."""
        with self._table.lock_for(container_id):
            try:
                container = self._table.current(container_id)
            except NotFound:
                return
            if not container.state.running or container.state.pid != pid:
                return
            self._finish(container, code)
        self._after_exit(container)

    def _finish(self, container: Container, code: int) -> None:
        """Tear a container down after its process ended and record the exit, and whether
        its restart policy restarts it (the caller holds the container's lock). The exit is
        recorded in memory and its waiters woken whatever fails on the way (see the module
        docstring)."""
        self._emit("die", container, exitCode=str(code))
        oom_killed = self._image_containers.oom_killed(container) if container.image_id else False
        error = ""
        try:
            self._teardown(container)
        except CnmError as err:
            error = f"teardown failed: {err}"
            log.error("container teardown failed id=%s: %s", container.id[:12], err)
        self._stdio.new_run(container)
        now = now_rfc3339()
        ran = unix_seconds(now) - unix_seconds(container.state.started_at)
        delay = self._restarts.decide(container, code, ran)
        with self._table.lock:
            container.state = ContainerState(
                status="exited" if delay is None else "restarting",
                exit_code=code,
                started_at=container.state.started_at,
                finished_at=now,
                oom_killed=oom_killed,
                manually_stopped=container.state.manually_stopped,
                error=error,
            )
            if delay is not None:
                container.restart_count += 1
        try:
            self._table.save(container)
        except CnmError as err:
            log.error("cannot record the exit of container %s: %s", container.id[:12], err)
        self._table.record_exit(container.id)
        if delay is not None:
            self._restarts.schedule(container.id, delay)
        log.info("container exited id=%s code=%d", container.id[:12], code)

    def _drop_stale_sandbox(self, container: Container) -> None:
        """Delete the sandbox a failed teardown left to a container that is not running."""
        if container.sandbox_id and not container.state.running:
            self._networking.clean_up_stopped(container)
            with self._table.lock:
                container.sandbox_id = None

    def _after_exit(self, container: Container) -> None:
        for listener in self._listeners:
            try:
                listener(container.id, container.state.exit_code)
            except Exception:
                log.exception("exit listener failed")
        if container.host_config.auto_remove:
            try:
                with suppress(NotFound, Conflict):
                    self._remove(container.id, remove_volumes=True)
            except CnmError as err:
                log.error("cannot remove container %s (--rm): %s", container.id[:12], err)

    def _teardown(self, container: Container) -> None:
        self._exits.release(container.id)
        terminal = self._stdio.end_run(container.id)
        self._processes(container).end(container)
        if terminal is not None:  # its last output is logged before the exit is reported
            terminal.finish(TERMINAL_DRAIN_S)
        self._outputs.end(container.id)
        # A host container's exec, or a sidecar, may still hold the namespace.
        detach = not container.image_id or self._table.sandbox_borrowed(container)
        self._networking.release(container, detach)  # on failure the sandbox stays named
        with self._table.lock:
            container.sandbox_id = None

    # ------------------------------------------------------------------ stop / kill / wait

    def _signal(self, container: Container, signum: int, everyone: bool = False) -> None:
        """``signum`` to the container's first process, and with ``everyone`` to the rest; a
        paused container is thawed to receive it (as Docker does for stop and kill)."""
        self._emit("kill", container, signal=str(int(signum)))
        self._exits.signal(container.id, signum)
        if everyone:
            self._processes(container).signal_all(container, signum)
        if container.state.paused:
            self._image_containers.resume(container)
            with self._table.lock:
                container.state.status = "running"
            self._table.save(container)

    def _stopped_by_user(self, container: Container) -> bool:
        """A stop or kill by a user cancels the restart policy until the next start. False if
        the container was restarting: then nothing runs, and it is now simply exited."""
        self._restarts.cancel(container.id)
        with self._table.lock:
            container.state.manually_stopped = True
            restarting = container.state.restarting
            if restarting:
                container.state.status = "exited"
        try:
            self._table.save(container)
        except CnmError as err:  # the stop goes on; the exit records the state again
            log.error("cannot record the stop of container %s: %s", container.id[:12], err)
        return not restarting

    def stop_container(
        self, ref: str, timeout: int | None = None, signal_name: str | None = None
    ) -> None:
        """The stop signal (the container's, else SIGTERM), then SIGKILL after ``timeout``
        seconds (None: the container's stop timeout, else 10; negative: no SIGKILL);
        returns once the container is torn down. NotModified if it is not running."""
        container_id = self._table.resolve(ref).id
        with self._table.lock_for(container_id):
            container = self._table.current(container_id)
            if not (container.state.running or container.state.restarting):
                raise NotModified(f"container {container_id} is already stopped")
            if not self._stopped_by_user(container):
                return
            seen = self._table.exits_seen(container_id)
            signum = parse_signal(signal_name or container.config.stop_signal or "SIGTERM")
            self._signal(container, signum)
        grace = timeout
        if grace is None:
            configured = container.config.stop_timeout
            grace = DEFAULT_STOP_TIMEOUT if configured is None else configured
        if not self._table.await_exit(container_id, seen, None if grace < 0 else grace):
            self._signal(container, signal.SIGKILL, everyone=True)
            if not self._table.await_exit(container_id, seen, KILL_WAIT_S):
                raise CnmError(f"container {container_id} did not stop after SIGKILL")
        self._emit("stop", container)

    def kill_container(self, ref: str, signal_name: str | int = "SIGKILL") -> None:
        """Send a signal to the container's first process; for SIGKILL, wait until it is torn
        down (as Docker does). It cancels the restart policy unless the container has a stop
        signal of its own and this is another one (Docker's rule)."""
        signum = parse_signal(signal_name)
        container_id = self._table.resolve(ref).id
        with self._table.lock_for(container_id):
            container = self._table.current(container_id)
            own = container.config.stop_signal
            if not own or signum == signal.SIGKILL or parse_signal(own) == signum:
                if container.state.restarting:
                    self._stopped_by_user(container)
                    return
                if container.state.running:
                    self._stopped_by_user(container)
            container = _running(container)
            seen = self._table.exits_seen(container_id)
            self._signal(container, signum, everyone=signum == signal.SIGKILL)
        if signum == signal.SIGKILL and not self._table.await_exit(container_id, seen, KILL_WAIT_S):
            raise CnmError(f"container {container_id} did not stop after SIGKILL")

    def restart_container(self, ref: str, timeout: int | None = None) -> None:
        with suppress(NotModified):
            self.stop_container(ref, timeout)
        self.start_container(ref)
        self._emit("restart", self._table.copy(ref))

    def wait_container(
        self, ref: str, condition: str = "not-running", timeout: float | None = None
    ) -> int:
        """Block until ``condition`` (not-running, next-exit, removed) holds and return the
        exit code; TimeoutError after ``timeout`` seconds."""
        return self._table.wait(ref, condition, timeout)

    # ------------------------------------------------------------------ remove / rename

    def remove_container(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``docker rm``; with ``volumes`` (``-v``) its anonymous volumes go too."""
        container = self._table.resolve(ref)
        if force:
            self._restarts.cancel(container.id)  # a restart due now (or at start-up) is off
        for attempt in range(2):
            if container.state.running or container.state.restarting:
                if not force:
                    what = _RESTARTING if container.state.restarting else _RUNNING
                    raise Conflict(what.format(container.id))
                with suppress(Conflict):  # it ended meanwhile
                    self.kill_container(container.id, "SIGKILL")
            try:
                self._remove(container.id, volumes)
                return
            except Conflict:
                if not force or attempt:
                    raise
            container = self._table.resolve(container.id)  # a restart was starting it

    def _remove(self, container_id: str, remove_volumes: bool = False) -> None:
        with self._table.lock_for(container_id):
            container = self._table.current(container_id)
            if container.state.running:
                raise Conflict(_RUNNING.format(container_id))
            self._restarts.forget(container_id)
            self._drop_stale_sandbox(container)
            self._table.remove(container_id, lambda: self._files.remove(container_id))
            self._stdio.forget(container_id)
            self._outputs.forget(container_id)
            self._execs.forget_container(container_id)
        if remove_volumes:
            for point in container.mount_points:
                if point.anonymous and point.type == "volume":
                    try:
                        self._volumes.remove(point.name, self._volume_users)
                    except (Conflict, NotFound) as err:
                        log.info("kept volume %s: %s", point.name[:12], err)
        log.info("container removed id=%s", container_id[:12])
        self._emit("destroy", container)

    def rename_container(self, ref: str, new_name: str) -> None:
        name = validate.container_name(new_name)
        container_id = self._table.resolve(ref).id
        with self._table.lock_for(container_id):
            with self._table.lock:
                container = self._table.current(container_id)
                if container.name == name:
                    raise InvalidParameter(
                        "Renaming a container with the same name as its current name"
                    )
                self._table.check_name_free(name)
                old_name, container.name = container.name, name
            try:
                self._table.save(container)  # the record first (see ``_restore_running``)
                self._networking.rename(container, name)
            except BaseException:
                with self._table.lock:
                    container.name = old_name
                with suppress(CnmError):
                    self._table.save(container)
                    self._networking.rename(container, old_name)
                raise
        self._emit("rename", container, oldName=f"/{old_name}")

    # ------------------------------------------------------------------ pause, update

    def pause_container(self, ref: str) -> None:
        """Freeze every process (cgroup freezer, through runc)."""
        container_id = self._table.resolve(ref).id
        with self._table.lock_for(container_id):
            container = _running(self._table.current(container_id))
            if container.state.paused:
                raise Conflict(f"Container {container_id} is already paused")
            if not container.image_id:
                raise InvalidParameter(_HOST_ONLY.format("pause"))
            self._image_containers.pause(container)
            with self._table.lock:
                container.state.status = "paused"
            self._table.save(container)
        self._emit("pause", container)

    def unpause_container(self, ref: str) -> None:
        container_id = self._table.resolve(ref).id
        with self._table.lock_for(container_id):
            container = _running(self._table.current(container_id))
            if not container.state.paused:
                raise Conflict(f"Container {container_id} is not paused")
            self._image_containers.resume(container)
            with self._table.lock:
                container.state.status = "running"
            self._table.save(container)
        self._emit("unpause", container)

    def update_container(
        self,
        ref: str,
        resources: Resources,
        given: set[str],
        restart_policy: RestartPolicy | None = None,
    ) -> list[str]:
        """``docker update``: the ``given`` fields of ``resources`` (and the restart policy)
        replace the container's, applied at once through runc when it runs; warnings."""
        container_id = self._table.resolve(ref).id
        with self._table.lock_for(container_id):
            container = self._table.current(container_id)
            if given and not container.image_id:
                raise InvalidParameter(_HOST_ONLY.format("update"))
            merged = resources_module.merge_update(
                container.host_config.resources, resources, given
            )
            merged = resources_module.check(merged, created=False)
            policy = container.host_config.restart_policy
            if restart_policy is not None:
                policy = hostsettings.check_restart_policy(
                    restart_policy, container.host_config.auto_remove
                )
            if container.state.running and given:
                oci = resources_module.oci_resources(merged)
                self._image_containers.update(container, oci)
            with self._table.lock:
                container.host_config.resources = merged
                container.host_config.restart_policy = policy
            self._table.save(container)
        self._emit("update", container)
        return []

    # ------------------------------------------------------------------ stdin, terminal

    def write_stdin(self, ref: str, data: bytes) -> None:
        """Input for the container's stdin, kept until its process reads it (that of its next
        run if it is not running). Dropped without OpenStdin, after ``close_stdin``, and while
        a run's stdin is lost to a daemon restart."""
        self._stdio.write(self._table.resolve(ref).id, data)

    def close_stdin(self, ref: str) -> None:
        """The end of the input: the process reads EOF after the rest (Docker's StdinOnce)."""
        self._stdio.close_input(self._table.resolve(ref).id)

    def resize_container(self, ref: str, height: int, width: int) -> None:
        """Set the size of a running container's terminal (nothing to do without a Tty)."""
        console.check_size(height, width)
        self._stdio.resize(_running(self._table.resolve(ref)).id, height, width)

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
        user: str = "",
        privileged: bool = False,
        detach_keys: str = "",
    ) -> str:
        """A new exec session in a running container; its id."""
        container = _running(self._table.resolve(ref))
        if container.state.paused:
            raise Conflict(f"Container {container.id} is paused, unpause the container before exec")
        if (user or privileged) and not container.image_id:
            raise InvalidParameter(_HOST_ONLY.format("exec as another user or privileged in"))
        request = ExecRequest(
            list(cmd), list(env), workdir, tty, user, privileged, detach_keys, console_size
        )
        exec_id = self._execs.create(container.id, request, open_stdin, console_size).id
        self._emit(f"exec_create: {_exec_line(cmd)}", container, execID=exec_id)
        return exec_id

    def exec_start(self, exec_id: str) -> ExecProcess:
        """Start an exec's process; its streams and exit code. A command that cannot start
        (no such user) ends at once with 126 and the reason on its error stream, as in
        Docker; so does one runc cannot run (see ``ExecSession``)."""
        session = self._execs.get(exec_id)
        container = _running(self._table.current(session.container_id))

        def ended(code: int) -> None:
            self._emit("exec_die", container, execID=exec_id, exitCode=str(code))

        session.on_ended = ended
        try:
            command = self._processes(container).exec_command(container, session.request)
        except InvalidParameter as err:
            process = session.refuse(str(err))
        else:
            process = session.start(command)
        self._emit(f"exec_start: {_exec_line(session.request.cmd)}", container, execID=exec_id)
        return process

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """Set the size of a running exec's terminal (nothing to do without one)."""
        console.check_size(height, width)
        session = self._execs.get(exec_id)
        _running(self._table.current(session.container_id))
        session.resize(height, width)

    def exec_inspect(self, exec_id: str) -> ExecInfo:
        return self._execs.get(exec_id).info()

    # ------------------------------------------------------------------ filesystem

    def _layers(self, container: Container) -> tuple[Path, list[Path]]:
        """The container's upper directory and its lower layers (init layer, image)."""
        image = self._images.by_id(container.image_id) if container.image_id else None
        if image is None:
            raise InvalidParameter(_HOST_ONLY.format("show the changes of"))
        lowers = [self._files.init_layer(container.id), Path(image.rootfs)]
        return self._files.state_dir(container.id) / "upper", lowers

    def container_changes(self, ref: str) -> list[tuple[str, int]]:
        """``docker diff``: (path, kind) with Docker's kinds (0 changed, 1 added, 2 deleted)."""
        upper, lowers = self._layers(self._table.copy(ref))
        return changes_module.changes(upper, lowers)

    def container_size(self, ref: str) -> int:
        """The bytes of the container's own changes (Docker's SizeRw)."""
        container = self._table.copy(ref)
        return changes_module.size(self._files.state_dir(container.id) / "upper")

    def _archives_view(self, ref: str) -> tuple[Container, Image | None]:
        container = self._table.copy(ref)
        image = self._images.by_id(container.image_id) if container.image_id else None
        if container.image_id and image is None:
            raise NotFound(f"No such image: {container.config.image}")
        return container, image

    def stat_path(self, ref: str, path: str) -> PathStat:
        """``HEAD /containers/{id}/archive``: what is at ``path`` in the container."""
        container, image = self._archives_view(ref)
        return self._archives.stat(container, image, _absolute_path(path))

    def read_archive(self, ref: str, path: str) -> ArchiveStream:
        """``docker cp CONTAINER:PATH``: a tar of ``path``; close the stream when done."""
        container, image = self._archives_view(ref)
        return self._archives.get(container, image, _absolute_path(path))

    def write_archive(
        self,
        ref: str,
        path: str,
        source: Readable,
        no_overwrite_dir_non_dir: bool = False,
        copy_uid_gid: bool = False,
    ) -> None:
        """``docker cp ... CONTAINER:PATH``: extract a tar into the directory ``path``; with
        ``copy_uid_gid`` its files belong to the container's user."""
        container, image = self._archives_view(ref)
        owner = None
        if copy_uid_gid and image is not None:
            root = (
                Path(f"/proc/{container.state.pid}/root")
                if container.state.running
                else Path(image.rootfs)
            )
            identity = users.resolve(root, container.config.user, [])
            owner = (identity.uid, identity.gid)
        self._archives.put(
            container, image, _absolute_path(path), source, no_overwrite_dir_non_dir, owner
        )

    def commit_container(
        self,
        ref: str,
        reference: str | None,
        template: Image,
        changes: list[str],
        pause: bool = True,
    ) -> Image:
        """``docker commit``: a new image of the container's files. ``template`` carries the
        request's comment, author and config (empty fields: the container's)."""
        container = self._table.copy(ref)
        image = self._images.by_id(container.image_id) if container.image_id else None
        if image is None:
            raise InvalidParameter(_HOST_ONLY.format("commit"))
        config = container.config
        new = copy.deepcopy(template)
        new.cmd = template.cmd or list(config.cmd)
        new.entrypoint = template.entrypoint or list(config.entrypoint)
        new.env = template.env or list(config.env)
        new.working_dir = template.working_dir or config.working_dir
        new.user = template.user or config.user
        new.labels = template.labels or dict(config.labels)
        new.exposed_ports = template.exposed_ports or list(config.exposed_ports)
        new.volumes = template.volumes or sorted({*config.volumes, *image.volumes})
        new.stop_signal = template.stop_signal or config.stop_signal
        new.parent = image.id
        new.container = container.id
        new.container_config = copy.deepcopy(config)
        apply_changes(new, changes)
        if reference is not None:
            normalize_reference(reference)
        paused = False
        if pause and container.state.running and not container.state.paused:
            self.pause_container(container.id)
            paused = True
        try:
            with self._merged_view(container, image) as root:
                stream, done = tar_writer(root)
                try:
                    committed = self._images.import_(stream, reference, None, new)
                finally:
                    done()
        finally:
            if paused:
                with suppress(Conflict, CnmError):
                    self.unpause_container(container.id)
        log.info("container committed id=%s image=%s", container.id[:12], committed.id[7:19])
        self._emit("commit", container, imageID=committed.id)
        if reference is not None:
            self.events.emit(ImageEvent("tag", committed.id, normalize_reference(reference)))
        return committed

    @contextmanager
    def _merged_view(self, container: Container, image: Image) -> Iterator[Path]:
        """The container's files as one tree: its mounted rootfs while it runs, else a
        read-only overlay of its layers mounted for the time of the body."""
        mounted = self._files.bundle_dir(container.id) / "rootfs"
        if container.state.running and bundle.is_mounted(mounted):
            yield mounted
            return
        view = self._files.bundle_dir(container.id) / "commit-root"
        state = self._files.state_dir(container.id)
        (state / "upper").mkdir(parents=True, exist_ok=True)
        bundle.mount_overlay(
            [state / "upper", self._files.init_layer(container.id), Path(image.rootfs)],
            None,
            None,
            view,
        )
        try:
            yield view
        finally:
            bundle.unmount(view)

    # ------------------------------------------------------------------ processes, stats

    def container_top(self, ref: str, ps_args: str = "") -> tuple[list[str], list[list[str]]]:
        container = _running(self._table.copy(ref))
        if container.image_id:
            pids = self._image_containers.pids(container)
        else:
            pids = self._host_containers.pids(container)
        return stats_module.top(pids, ps_args)

    def container_stats(self, ref: str) -> stats_module.Sample:
        """One reading of a container's figures (zeros when it is not running)."""
        container = self._table.copy(ref)
        if not container.state.running or not container.image_id:
            return stats_module.Sample(read_ns=time.time_ns())
        groups = self._image_containers.cgroup_paths(container)
        state = self._networking.state(container)
        key = state.sandbox_key
        if not key and shares_sandbox(container) and container.sandbox_id:
            key = self.controller.sandbox(container.sandbox_id).key
        return stats_module.sample(groups, key)

    # ------------------------------------------------------------------ prune

    def prune_containers(self, keep: Callable[[Container], bool]) -> tuple[list[str], int]:
        """Remove every stopped container ``keep`` does not keep; (ids, bytes reclaimed)."""
        removed: list[str] = []
        reclaimed = 0
        for container in self._table.containers(all=True):
            if container.state.running or container.state.restarting or keep(container):
                continue
            size = changes_module.size(self._files.state_dir(container.id) / "upper")
            try:
                self._remove(container.id)
            except (Conflict, NotFound):
                continue
            removed.append(container.id)
            reclaimed += size
        return removed, reclaimed

    # ------------------------------------------------------------------ volumes

    def _volume_users(self, name: str) -> list[str]:
        return [
            c.id
            for c in self._table.containers(all=True)
            if any(p.type == "volume" and p.name == name for p in c.mount_points)
        ]

    def _mounts_of(self, ref: str) -> tuple[str, list[MountPoint]]:
        container = self._table.copy(ref)
        return container.id, container.mount_points

    def volumes(self) -> list[tuple[Volume, int]]:
        """Every volume with the number of containers that use it."""
        counts: dict[str, int] = {}
        for container in self._table.containers(all=True):
            for point in container.mount_points:
                if point.type == "volume":
                    counts[point.name] = counts.get(point.name, 0) + 1
        return [(v, counts.get(v.name, 0)) for v in self._volumes.list()]

    def volume(self, name: str) -> Volume:
        return self._volumes.get(name)

    def create_volume(
        self, name: str | None, driver: str, options: dict[str, str], labels: dict[str, str]
    ) -> Volume:
        return self._volumes.create(name, driver, options, labels)[0]

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._volumes.remove(name, self._volume_users, force)

    def volume_size(self, name: str) -> int:
        return self._volumes.size(name)

    def prune_volumes(self, keep: Callable[[Volume], bool]) -> tuple[list[str], int]:
        """Remove every unused volume ``keep`` does not keep; (names, bytes reclaimed)."""
        removed: list[str] = []
        reclaimed = 0
        for volume, used_by in self.volumes():
            if used_by or keep(volume):
                continue
            size = self._volumes.size(volume.name)
            try:
                self._volumes.remove(volume.name, self._volume_users)
            except (Conflict, NotFound):
                continue
            removed.append(volume.name)
            reclaimed += size
        return removed, reclaimed

    # ------------------------------------------------------------------ networks

    def connect(self, ref: str, network_ref: str, request: EndpointRequest) -> None:
        """Attach to a network: at once if running (the interface appears inside), else at the
        next start. Forbidden for a container sharing another's or the host's namespace."""
        container_id = self._table.resolve(ref).id
        with self._table.lock_for(container_id):
            container = self._table.current(container_id)
            network, checked = self._networking.check_connect(container, network_ref, request)
            with self._table.lock:
                container.networks[network.name] = checked
            try:
                self._table.save(container)  # the record first (see ``_restore_running``)
                self._networking.join(container, network, checked)
            except BaseException:
                with self._table.lock:
                    del container.networks[network.name]
                with suppress(CnmError):
                    self._table.save(container)
                raise

    def disconnect(self, ref: str, network_ref: str, force: bool = False) -> None:
        container_id = self._table.resolve(ref).id
        with self._table.lock_for(container_id):
            container = self._table.current(container_id)
            name, network = self._networking.check_disconnect(container, network_ref, force)
            with self._table.lock:
                request = container.networks.pop(name)
            try:
                self._table.save(container)  # the record first (see ``_restore_running``)
                self._networking.leave(container, network)
            except BaseException:
                with self._table.lock:
                    container.networks[name] = request
                with suppress(CnmError):
                    self._table.save(container)
                raise


_RUNNING = (
    "You cannot remove a running container {}. Stop the container before attempting removal "
    "or force remove"
)
_HOST_ONLY = "cnm cannot {} a container of the host's filesystem (cnm/host): it runs without runc"
_RESTARTING = (
    "You cannot remove a restarting container {}. Stop the container before attempting removal "
    "or force remove"
)


def _with_env(container: Container, link_env: list[str]) -> Container:
    """The container as its process is started: the legacy links' variables first, its own
    environment over them (Docker's order)."""
    if not link_env:
        return container
    process = copy.deepcopy(container)
    process.config.env = merge_env(link_env, container.config.env)
    return process


def _exec_line(cmd: list[str]) -> str:
    """An exec's command as Docker's event names it: the program, a space, its arguments."""
    return f"{cmd[0]} {' '.join(cmd[1:])}" if cmd else ""


def _running(container: Container) -> Container:
    if not container.state.running:
        raise Conflict(f"Container {container.id} is not running")
    return container


def _apply_image_defaults(config: ContainerConfig, image: Image) -> None:
    """What the container does not say, the image does: command, environment, directory,
    user, stop signal; labels and exposed ports are the image's and the container's."""
    if not config.entrypoint and not config.cmd:
        config.cmd = list(image.cmd)
    config.entrypoint = config.entrypoint or list(image.entrypoint)
    config.env = merge_env(image.env, config.env)
    config.working_dir = config.working_dir or image.working_dir
    config.user = config.user or image.user
    config.stop_signal = config.stop_signal or image.stop_signal
    config.labels = {**image.labels, **config.labels}
    config.exposed_ports = list(dict.fromkeys([*config.exposed_ports, *image.exposed_ports]))


def _absolute_path(path: str) -> str:
    """A path of the container's as Docker takes it: relative paths are from its root."""
    if not path:
        raise InvalidParameter("path is required")
    return path if path.startswith("/") else "/" + path


def unix_seconds(text: str) -> float:
    return logdriver.parse_time(text) / 1e9


def _check_readable(container: Container) -> None:
    if container.host_config.log_config.type == "none":
        raise logdriver.NotSupported("configured logging driver does not support reading")
