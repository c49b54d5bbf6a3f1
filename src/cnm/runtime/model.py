"""Records of the container side: images and containers, and the views of a running
container's network stack and of its exec sessions that the runtime hands its callers.

A container is what a user runs; its network stack is a controller sandbox, made at start and
removed at stop (Docker releases a stopped container's endpoints and addresses). What the user
asked for (networks, aliases, static addresses, published ports, mounts, resources, restart
policy, log driver) is kept in the container record so a restart runs it the same way again.

Records are stored as JSON (``to_json``) and read back by ``from_json``, which builds the nested
records from their type hints and gives fields that an older record lacks their defaults, so
records written before a field existed still load.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cnm.model import Endpoint, Network, PortMapping

T = TypeVar("T")


def from_dict(cls: type[T], data: Any) -> T:
    """A record of ``cls`` from its ``dataclasses.asdict`` form: nested records, lists and
    dicts of them built from the type hints; unknown keys ignored, missing ones defaulted."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: _value(hints[k], v) for k, v in data.items() if k in known})


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_value(item, v) for v in value]
    if origin is dict:
        _, item = typing.get_args(hint)
        return {k: _value(item, v) for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value)
    return value


def _to_json(record: Any) -> bytes:
    return json.dumps(dataclasses.asdict(record), separators=(",", ":")).encode()


@dataclass
class Image:
    id: str  # "sha256:<64 hex>" of the imported tarball
    repo_tags: list[str] = field(default_factory=list)  # ["busybox:local"]
    created: str = ""  # RFC 3339
    size: int = 0  # bytes of the unpacked root filesystem
    rootfs: str = ""  # path of the unpacked tree (the overlay lower directory)
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)  # ["80/tcp"]
    volumes: list[str] = field(default_factory=list)  # paths inside that get a volume
    stop_signal: str = ""
    comment: str = ""
    author: str = ""
    parent: str = ""  # the image a commit was made from
    container: str = ""  # the container a commit was made from
    container_config: ContainerConfig | None = None  # that container's config, as committed

    def to_json(self) -> bytes:
        return _to_json(self)

    @classmethod
    def from_json(cls, raw: bytes) -> Image:
        return from_dict(cls, json.loads(raw))


@dataclass
class PortBinding:
    host_ip: str = ""
    host_port: str = ""


@dataclass
class EndpointRequest:
    """A network the container asked to be on, with its per-endpoint options."""

    aliases: list[str] = field(default_factory=list)
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    mac_address: str | None = None
    links: list[str] = field(default_factory=list)  # "name:alias", as given (--link)
    link_local_ips: list[str] = field(default_factory=list)  # --link-local-ip
    driver_opts: dict[str, str] = field(default_factory=dict)  # --driver-opt, for the driver


@dataclass
class ContainerConfig:
    """What `docker create` says about the process (Docker's Config)."""

    image: str  # as the user named it ("busybox:local"); HOST_IMAGE for the host filesystem
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    hostname: str = ""
    domainname: str = ""
    # Config.MacAddress (API < 1.44): the MAC of the endpoint on the network mode's network,
    # whenever it joins (Compose disconnects and reconnects that network before the start).
    mac_address: str = ""
    working_dir: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False  # the first attached client's end of input closes the stdin
    exposed_ports: list[str] = field(default_factory=list)  # ["80/tcp"]
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""  # "name", "uid", "name:group", "uid:gid" (resolved in the container)
    volumes: list[str] = field(default_factory=list)  # paths that get an anonymous volume
    stop_signal: str = ""  # "" is SIGTERM
    stop_timeout: int | None = None  # seconds; None is the daemon's 10


@dataclass
class RestartPolicy:
    """Docker's restart policies: no, always, unless-stopped, on-failure[:N]."""

    name: str = "no"
    maximum_retry_count: int = 0


@dataclass
class LogConfig:
    """The container's log driver (json-file, local or none) and its options."""

    type: str = "json-file"
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class MountRequest:
    """One entry of ``HostConfig.Mounts`` (``--mount``), as given."""

    type: str  # bind, volume, tmpfs
    target: str
    source: str = ""
    read_only: bool = False
    consistency: str = ""
    bind_propagation: str = ""  # BindOptions.Propagation
    bind_non_recursive: bool = False
    volume_no_copy: bool = False
    volume_labels: dict[str, str] = field(default_factory=dict)
    volume_driver: str = ""
    volume_driver_options: dict[str, str] = field(default_factory=dict)
    tmpfs_size: int = 0  # bytes; 0 is the kernel's default (half the memory)
    tmpfs_mode: int = 0  # 0 is 1777


@dataclass
class MountPoint:
    """A mount of the container's, resolved at create: what its process gets at start."""

    type: str  # bind, volume, tmpfs
    destination: str
    source: str = ""  # bind: the host path; volume: the volume's directory; tmpfs: ""
    name: str = ""  # volume: its name
    driver: str = ""  # volume: "local"
    mode: str = ""  # as the user gave it (Docker's Mode): "ro", "z", "rw,rshared"...
    read_only: bool = False
    propagation: str = ""  # bind: rprivate unless given
    copy_image_data: bool = False  # volume: fill an empty volume from the image (not nocopy)
    anonymous: bool = False  # volume: made for this container (removed with ``rm -v``)
    options: list[str] = field(default_factory=list)  # tmpfs: size=, mode=...; bind: recursive
    spec: str = "binds"  # where the user asked for it: binds, mounts, tmpfs, volumes, image


@dataclass
class WeightDevice:
    path: str
    weight: int


@dataclass
class ThrottleDevice:
    path: str
    rate: int


@dataclass
class DeviceMapping:
    path_on_host: str
    path_in_container: str
    cgroup_permissions: str = "rwm"


@dataclass
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass
class Resources:
    """Docker's Resources: what ``docker create`` and ``docker update`` set through cgroups.
    Zero (and None, where Docker has null) means "not set"."""

    memory: int = 0
    memory_swap: int = 0  # memory + swap; -1 unlimited
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool | None = None
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    blkio_weight: int = 0
    blkio_weight_device: list[WeightDevice] = field(default_factory=list)
    blkio_device_read_bps: list[ThrottleDevice] = field(default_factory=list)
    blkio_device_write_bps: list[ThrottleDevice] = field(default_factory=list)
    blkio_device_read_iops: list[ThrottleDevice] = field(default_factory=list)
    blkio_device_write_iops: list[ThrottleDevice] = field(default_factory=list)
    devices: list[DeviceMapping] = field(default_factory=list)
    device_cgroup_rules: list[str] = field(default_factory=list)
    ulimits: list[Ulimit] = field(default_factory=list)


@dataclass
class HostConfig:
    """What `docker create` says about the container's surroundings (Docker's HostConfig)."""

    network_mode: str = "bridge"  # a network name/id, "host", "none", "container:<ref>"
    port_bindings: dict[str, list[PortBinding]] = field(default_factory=dict)  # "80/tcp"
    publish_all_ports: bool = False
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # "name:ip"
    links: list[str] = field(default_factory=list)  # "name:alias", as given (--link)
    auto_remove: bool = False
    console_size: list[int] = field(default_factory=lambda: [0, 0])  # the terminal's [rows, cols]
    binds: list[str] = field(default_factory=list)  # "src:dst[:opts]", as given (-v)
    mounts: list[MountRequest] = field(default_factory=list)  # --mount
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> options (--tmpfs)
    volumes_from: list[str] = field(default_factory=list)  # "container[:ro|rw]", as given
    volume_driver: str = ""
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    log_config: LogConfig = field(default_factory=LogConfig)
    resources: Resources = field(default_factory=Resources)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    pid_mode: str = ""  # "", "host", "container:<id>"
    uts_mode: str = ""  # "", "host"
    ipc_mode: str = "private"  # private, shareable, host, none, container:<id>
    cgroupns_mode: str = "host"  # host, private (Docker's default on cgroup v1 is host)
    init: bool | None = None  # --init: docker-init (tini) as the first process
    group_add: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    readonly_rootfs: bool = False
    shm_size: int = 64 << 20
    oom_score_adj: int = 0
    isolation: str = ""
    runtime: str = "runc"
    masked_paths: list[str] | None = None  # None: Docker's defaults
    readonly_paths: list[str] | None = None


@dataclass
class ContainerState:
    status: str = "created"  # created, running, paused, restarting, exited, removing, dead
    pid: int = 0
    exit_code: int = 0
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    error: str = ""
    oom_killed: bool = False
    pid_start_time: int = 0  # /proc/<pid>/stat starttime: tells our pid from a reused one
    manually_stopped: bool = False  # by stop or kill: no restart until the next start

    @property
    def running(self) -> bool:
        """Running, also while paused (Docker's State.Running)."""
        return self.status in ("running", "paused")

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    @property
    def restarting(self) -> bool:
        return self.status == "restarting"


@dataclass
class Container:
    id: str  # 64 hex
    name: str  # without the leading "/"
    created: str
    image_id: str
    config: ContainerConfig
    host_config: HostConfig
    networks: dict[str, EndpointRequest] = field(default_factory=dict)  # by network name
    state: ContainerState = field(default_factory=ContainerState)
    sandbox_id: str | None = None  # while running; the sandbox of the container it shares
    restart_count: int = 0
    mount_points: list[MountPoint] = field(default_factory=list)  # resolved at create
    links: dict[str, str] = field(default_factory=dict)  # legacy --link: alias -> container id

    def to_json(self) -> bytes:
        return _to_json(self)

    @classmethod
    def from_json(cls, raw: bytes) -> Container:
        return from_dict(cls, json.loads(raw))


@dataclass(frozen=True)
class NetworkAttachment:
    """One network a container asked to be on, and its endpoint there while it runs."""

    name: str
    request: EndpointRequest
    network: Network | None  # None: the network is gone
    endpoint: Endpoint | None  # None: not running, or joined through another's sandbox


@dataclass(frozen=True)
class ContainerNetworkState:
    """A container's network stack as it is now; empty values once it stopped."""

    sandbox_id: str = ""
    sandbox_key: str = ""  # the namespace's path (Docker's SandboxKey)
    networks: dict[str, NetworkAttachment] = field(default_factory=dict)  # in join order
    ports: list[str] = field(default_factory=list)  # "80/tcp": exposed or bound, while running
    published: list[PortMapping] = field(default_factory=list)  # as bound on the host


@dataclass(frozen=True)
class HostSupport:
    """What the container side of this machine has, as ``docker info`` reports it."""

    runtime_path: str  # runc's path ("" if it is missing)
    log_drivers: list[str]
    volume_drivers: list[str]
    memory_limit: bool
    swap_limit: bool
    cpu_cfs: bool
    cpu_shares: bool
    cpuset: bool
    pids_limit: bool
    oom_kill_disable: bool


@dataclass(frozen=True)
class ExecInfo:
    """An exec as inspect shows it."""

    id: str
    container_id: str
    cmd: list[str]
    tty: bool
    open_stdin: bool
    running: bool
    exit_code: int | None  # None until the process has ended
    pid: int  # 0 until it started
    user: str = ""
    privileged: bool = False
    detach_keys: str = ""  # as the client gave them
