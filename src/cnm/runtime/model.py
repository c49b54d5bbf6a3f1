"""Records of the container side: images and containers, and the views of a running
container's network stack and of its exec sessions that the runtime hands its callers.

A container is what a user runs; its network stack is a controller sandbox, made at start and
removed at stop (Docker releases a stopped container's endpoints and addresses). What the user
asked for (networks, aliases, static addresses, published ports) is kept in the container record
so a restart attaches it the same way again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from cnm.model import Endpoint, Network, PortMapping


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

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Image:
        data = json.loads(raw)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


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


@dataclass
class ContainerState:
    status: str = "created"  # created, running, exited, removing, dead
    pid: int = 0
    exit_code: int = 0
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    error: str = ""
    oom_killed: bool = False
    pid_start_time: int = 0  # /proc/<pid>/stat starttime: tells our pid from a reused one

    @property
    def running(self) -> bool:
        return self.status == "running"


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
    links: dict[str, str] = field(default_factory=dict)  # legacy --link: alias -> container id

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Container:
        data: dict[str, Any] = json.loads(raw)
        data["config"] = ContainerConfig(**data["config"])
        host = data["host_config"]
        host["port_bindings"] = {
            port: [PortBinding(**b) for b in bindings]
            for port, bindings in host.get("port_bindings", {}).items()
        }
        data["host_config"] = HostConfig(**host)
        data["networks"] = {k: EndpointRequest(**v) for k, v in data.get("networks", {}).items()}
        data["state"] = ContainerState(**data.get("state", {}))
        return cls(**data)


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
