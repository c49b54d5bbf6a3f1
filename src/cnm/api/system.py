"""``/_ping``, ``/version`` and ``/info`` in Docker's shapes.

The docker CLI decodes these into Go structs, so every field carries the JSON type Go expects
(a string where Docker has a string, an empty list rather than a missing one where the CLI
iterates). Container and image counts come from the runtime; storage reports an empty engine.
"""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cnm import __version__
from cnm.api import API_VERSION, MIN_API_VERSION
from cnm.api.common import (
    Backend,
    DaemonInfo,
    add_route,
    backend,
    json_response,
    machine_memory,
)

if TYPE_CHECKING:
    from cnm.controller.cluster import ClusterStatus
    from cnm.runtime.model import HostSupport

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def go_arch() -> str:
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)


def _os_release() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip().strip('"')
    return fields


def version_json() -> dict[str, Any]:
    details = {
        "ApiVersion": API_VERSION,
        "Arch": go_arch(),
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "KernelVersion": platform.release(),
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    return {
        "Platform": {"Name": f"cnm {__version__}"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": details["GoVersion"],
        "Os": "linux",
        "Arch": details["Arch"],
        "KernelVersion": details["KernelVersion"],
        "BuildTime": "",
    }


def info_json(
    info: DaemonInfo,
    network_drivers: list[str],
    container_states: Sequence[str] = (),
    images: int = 0,
    cluster: ClusterStatus | None = None,
) -> dict[str, Any]:
    """``container_states``: the status of each container ("running", "exited"...).
    ``cluster``: with a cluster store, Docker 20.10's ``ClusterStore``/``ClusterAdvertise``,
    and a warning while the store is out of reach."""
    warnings = None
    if cluster is not None and cluster.degraded is not None:
        warnings = [f"WARNING: the cluster store is out of reach (degraded): {cluster.degraded}"]
    running = sum(1 for state in container_states if state in ("running", "restarting"))
    paused = sum(1 for state in container_states if state == "paused")
    os_release = _os_release()
    now = datetime.now(UTC)
    no_commit = {"ID": "", "Expected": ""}
    return {
        "ID": info.engine_id,
        "Containers": len(container_states),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(container_states) - running - paused,
        "Images": images,
        "Driver": "none",
        "DriverStatus": [],
        "Plugins": {
            "Volume": [],
            "Network": network_drivers,
            "Authorization": None,
            "Log": [],
        },
        "MemoryLimit": False,
        "SwapLimit": False,
        "CpuCfsPeriod": False,
        "CpuCfsQuota": False,
        "CPUShares": False,
        "CPUSet": False,
        "PidsLimit": False,
        "IPv4Forwarding": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1",
        "BridgeNfIptables": False,
        "BridgeNfIp6tables": False,
        "Debug": info.debug,
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False,
        "NGoroutines": 0,
        "SystemTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z",
        "LoggingDriver": "none",
        "CgroupDriver": "none",
        "CgroupVersion": "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1",
        "NEventsListener": 0,
        "KernelVersion": platform.release(),
        "OperatingSystem": os_release.get("PRETTY_NAME", "Linux"),
        "OSVersion": os_release.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": [],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": os.cpu_count() or 1,
        "MemTotal": machine_memory(),
        "GenericResources": None,
        "DockerRootDir": info.data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": socket.gethostname(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": {},
        "DefaultRuntime": "",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": no_commit,
        "RuncCommit": no_commit,
        "InitCommit": no_commit,
        "SecurityOptions": [],
        "DefaultAddressPools": [
            {"Base": base, "Size": size} for base, size in info.default_address_pools
        ],
        "ClusterStore": cluster.store if cluster else "",
        "ClusterAdvertise": cluster.advertise_address if cluster else "",
        "Warnings": warnings,
    }


async def ping(request: web.Request) -> web.Response:
    return web.Response(
        text="OK",
        headers={
            "Builder-Version": "1",
            "Swarm": "inactive",
            "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache",
        },
    )


async def version(request: web.Request) -> web.Response:
    return json_response(version_json())


def _info(backend_: Backend, drivers: list[str]) -> dict[str, Any]:
    runtime = backend_.runtime
    cluster = backend_.controller.cluster_status()
    if runtime is None:
        return info_json(backend_.info, drivers, cluster=cluster)
    states = [c.state.status for c in runtime.containers(all=True)]
    data = info_json(backend_.info, drivers, states, len(runtime.images()), cluster)
    support = runtime.host_support()
    data.update(container_support_json(support))
    data["Plugins"]["Volume"] = list(support.volume_drivers)
    data["Plugins"]["Log"] = list(support.log_drivers)
    return data


def container_support_json(support: HostSupport) -> dict[str, Any]:
    """The fields of ``/info`` that the container side knows (issue 11): the limits this
    machine's cgroups allow, the storage and log drivers, runc (its drivers go under
    ``Plugins``)."""
    return {
        "Driver": "overlay",
        "MemoryLimit": support.memory_limit,
        "SwapLimit": support.swap_limit,
        "CpuCfsPeriod": support.cpu_cfs,
        "CpuCfsQuota": support.cpu_cfs,
        "CPUShares": support.cpu_shares,
        "CPUSet": support.cpuset,
        "PidsLimit": support.pids_limit,
        "OomKillDisable": support.oom_kill_disable,
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "Runtimes": {"runc": {"path": support.runtime_path or "runc"}},
        "DefaultRuntime": "runc",
    }


async def info(request: web.Request) -> web.Response:
    backend_ = backend(request)
    drivers = backend_.controller.driver_names()
    return json_response(await backend_.run(_info, backend_, drivers))


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/_ping", ping)
    add_route(app, "HEAD", "/_ping", ping)
    add_route(app, "GET", "/version", version)
    add_route(app, "GET", "/info", info)
