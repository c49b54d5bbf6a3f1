"""Docker's HostConfig and the container side of Config, both ways: requests (``create`` and
``update`` bodies) into the runtime's records, and the records back into inspect's JSON.

Read with Go's rules (``translate.JsonObject``): case-insensitive names, null is absent. A
field cnm cannot honour is refused here with the reason (``Capabilities``, ``CgroupParent``,
``StorageOpt``, ``DeviceRequests``, user namespaces, the Windows-only resources...); every other
one is kept in the record and applied by the runtime, and shown back the way Docker shows it:
``Tmpfs``, ``Sysctls`` and ``Init`` only when set, ``MemorySwappiness`` and ``PidsLimit`` null
unless set, a memory limit's swap as the daemon computed it.
"""

from __future__ import annotations

from typing import Any

from cnm.api.translate import JsonObject
from cnm.errors import InvalidParameter
from cnm.runtime.model import (
    ContainerConfig,
    DeviceMapping,
    HostConfig,
    LogConfig,
    MountPoint,
    MountRequest,
    Resources,
    RestartPolicy,
    ThrottleDevice,
    Ulimit,
    WeightDevice,
)
from cnm.runtime.security import MASKED_PATHS, READONLY_PATHS

# Resources fields by their Docker names, for create, update and inspect.
_INTEGERS = {
    "Memory": "memory",
    "MemorySwap": "memory_swap",
    "MemoryReservation": "memory_reservation",
    "NanoCpus": "nano_cpus",
    "CpuShares": "cpu_shares",
    "CpuPeriod": "cpu_period",
    "CpuQuota": "cpu_quota",
    "CpuRealtimePeriod": "cpu_realtime_period",
    "CpuRealtimeRuntime": "cpu_realtime_runtime",
    "BlkioWeight": "blkio_weight",
}
_THROTTLES = {
    "BlkioDeviceReadBps": "blkio_device_read_bps",
    "BlkioDeviceWriteBps": "blkio_device_write_bps",
    "BlkioDeviceReadIOps": "blkio_device_read_iops",
    "BlkioDeviceWriteIOps": "blkio_device_write_iops",
}
_UNSUPPORTED_NUMBERS = {
    "KernelMemory": "--kernel-memory (kernel memory limits are deprecated and this kernel "
    "does not apply them)",
    "KernelMemoryTCP": "--kernel-memory-tcp (kernel memory limits are deprecated)",
    "CpuCount": "CpuCount (Windows only)",
    "CpuPercent": "CpuPercent (Windows only)",
    "IOMaximumIOps": "IOMaximumIOps (Windows only)",
    "IOMaximumBandwidth": "IOMaximumBandwidth (Windows only)",
}


class Fields(JsonObject):
    """A JSON object with Go's integer fields too."""

    def integer(self, name: str) -> int | None:
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise InvalidParameter(f"{self._where(name)} must be an integer, not {value!r}")
        return int(value)

    def child(self, name: str) -> Fields | None:
        value = self._get(name)
        return None if value is None else Fields(value, self._where(name))

    def has(self, name: str) -> bool:
        return self._get(name) is not None

    def items(self, name: str) -> list[Fields]:
        return [
            Fields(item, f"{self._where(name)}[{i}]") for i, item in enumerate(self.array(name))
        ]


# ----------------------------------------------------------------------------- requests


def parse_config_extras(root: Fields, config: ContainerConfig) -> None:
    """The container-side Config fields: User, Volumes, StopSignal, StopTimeout."""
    config.user = root.string("User")
    volumes = root.child("Volumes")
    config.volumes = sorted(volumes) if volumes is not None else []
    config.stop_signal = root.string("StopSignal")
    config.stop_timeout = root.integer("StopTimeout")


def parse_resources(host: Fields) -> tuple[Resources, set[str]]:
    """The Resources fields of a HostConfig (or an update body) and which were given."""
    r = Resources()
    given: set[str] = set()
    for docker, name in _INTEGERS.items():
        value = host.integer(docker)
        if value is not None:
            setattr(r, name, value)
            if value:
                given.add(name)
    for docker, what in _UNSUPPORTED_NUMBERS.items():
        if host.integer(docker):
            raise InvalidParameter(f"{what} is not supported by cnm")
    swappiness = host.integer("MemorySwappiness")
    if swappiness is not None:
        r.memory_swappiness = swappiness
        given.add("memory_swappiness")
    if host.has("OomKillDisable"):
        r.oom_kill_disable = host.boolean("OomKillDisable")
        given.add("oom_kill_disable")
    if host.has("PidsLimit"):
        r.pids_limit = host.integer("PidsLimit")
        given.add("pids_limit")
    for docker, name in (("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        text = host.string(docker)
        if text:
            setattr(r, name, text)
            given.add(name)
    r.blkio_weight_device = [
        WeightDevice(e.string("Path"), e.integer("Weight") or 0)
        for e in host.items("BlkioWeightDevice")
    ]
    for docker, name in _THROTTLES.items():
        entries = [
            ThrottleDevice(e.string("Path"), e.integer("Rate") or 0) for e in host.items(docker)
        ]
        setattr(r, name, entries)
        if entries:
            given.add(name)
    if r.blkio_weight_device:
        given.add("blkio_weight_device")
    r.devices = [
        DeviceMapping(
            e.string("PathOnHost"),
            e.string("PathInContainer"),
            e.string("CgroupPermissions") or "rwm",
        )
        for e in host.items("Devices")
    ]
    r.device_cgroup_rules = host.strings("DeviceCgroupRules")
    r.ulimits = [
        Ulimit(e.string("Name"), e.integer("Soft") or 0, e.integer("Hard") or 0)
        for e in host.items("Ulimits")
    ]
    for name in ("devices", "device_cgroup_rules", "ulimits"):
        if getattr(r, name):
            given.add(name)
    if host.items("DeviceRequests"):
        raise InvalidParameter("device requests (--gpus) are not supported by cnm")
    return r, given


def _mount_request(entry: Fields) -> MountRequest:
    bind = entry.child("BindOptions")
    volume = entry.child("VolumeOptions")
    driver = volume.child("DriverConfig") if volume is not None else None
    tmpfs = entry.child("TmpfsOptions")
    return MountRequest(
        type=entry.string("Type"),
        target=entry.string("Target"),
        source=entry.string("Source"),
        read_only=bool(entry.boolean("ReadOnly")),
        consistency=entry.string("Consistency"),
        bind_propagation=bind.string("Propagation") if bind else "",
        bind_non_recursive=bool(bind.boolean("NonRecursive")) if bind else False,
        volume_no_copy=bool(volume.boolean("NoCopy")) if volume else False,
        volume_labels=volume.string_map("Labels") if volume else {},
        volume_driver=driver.string("Name") if driver else "",
        volume_driver_options=driver.string_map("Options") if driver else {},
        tmpfs_size=(tmpfs.integer("SizeBytes") or 0) if tmpfs else 0,
        tmpfs_mode=(tmpfs.integer("Mode") or 0) if tmpfs else 0,
    )


def _restart_policy(host: Fields) -> RestartPolicy:
    policy = host.child("RestartPolicy")
    if policy is None:
        return RestartPolicy()
    return RestartPolicy(policy.string("Name") or "no", policy.integer("MaximumRetryCount") or 0)


def parse_host_extras(host: Fields, host_config: HostConfig) -> None:
    """Every HostConfig field beyond networking into ``host_config``; refusals for what cnm
    cannot honour."""
    if host.items("Capabilities") or host.strings("Capabilities"):
        raise InvalidParameter(
            "HostConfig.Capabilities (a whole capability set) is not supported by cnm: use "
            "CapAdd and CapDrop"
        )
    for name, what in (
        ("CgroupParent", "--cgroup-parent"),
        ("Cgroup", "HostConfig.Cgroup"),
        ("UsernsMode", "--userns"),
    ):
        value = host.string(name)
        if value and not (name == "UsernsMode" and value == "host"):
            raise InvalidParameter(f"{what} {value!r} is not supported by cnm")
    if host.string_map("StorageOpt"):
        raise InvalidParameter(
            "--storage-opt is not supported: cnm's overlay has no per-container size limit"
        )
    if host.string_map("Annotations"):
        raise InvalidParameter("HostConfig.Annotations are not supported by cnm")
    host_config.binds = host.strings("Binds")
    host_config.mounts = [_mount_request(e) for e in host.items("Mounts")]
    host_config.tmpfs = host.string_map("Tmpfs")
    host_config.volumes_from = host.strings("VolumesFrom")
    host_config.volume_driver = host.string("VolumeDriver")
    host_config.restart_policy = _restart_policy(host)
    log = host.child("LogConfig")
    if log is not None:
        host_config.log_config = LogConfig(log.string("Type"), log.string_map("Config"))
    host_config.resources, _ = parse_resources(host)
    host_config.cap_add = host.strings("CapAdd")
    host_config.cap_drop = host.strings("CapDrop")
    host_config.privileged = bool(host.boolean("Privileged"))
    host_config.sysctls = host.string_map("Sysctls")
    host_config.pid_mode = host.string("PidMode")
    host_config.uts_mode = host.string("UTSMode")
    host_config.ipc_mode = host.string("IpcMode") or "private"
    host_config.cgroupns_mode = host.string("CgroupnsMode") or "host"
    host_config.init = host.boolean("Init")
    host_config.group_add = [str(g) for g in host.array("GroupAdd")]
    host_config.security_opt = host.strings("SecurityOpt")
    host_config.readonly_rootfs = bool(host.boolean("ReadonlyRootfs"))
    host_config.shm_size = host.integer("ShmSize") or host_config.shm_size
    host_config.oom_score_adj = host.integer("OomScoreAdj") or 0
    host_config.isolation = host.string("Isolation")
    host_config.runtime = host.string("Runtime") or "runc"
    if host.has("MaskedPaths"):
        host_config.masked_paths = host.strings("MaskedPaths")
    if host.has("ReadonlyPaths"):
        host_config.readonly_paths = host.strings("ReadonlyPaths")


# ----------------------------------------------------------------------------- responses


def resources_json(r: Resources) -> dict[str, Any]:
    return {
        "CpuShares": r.cpu_shares,
        "Memory": r.memory,
        "NanoCpus": r.nano_cpus,
        "CgroupParent": "",
        "BlkioWeight": r.blkio_weight,
        "BlkioWeightDevice": [{"Path": w.path, "Weight": w.weight} for w in r.blkio_weight_device],
        "BlkioDeviceReadBps": [{"Path": t.path, "Rate": t.rate} for t in r.blkio_device_read_bps],
        "BlkioDeviceWriteBps": [{"Path": t.path, "Rate": t.rate} for t in r.blkio_device_write_bps],
        "BlkioDeviceReadIOps": [{"Path": t.path, "Rate": t.rate} for t in r.blkio_device_read_iops],
        "BlkioDeviceWriteIOps": [
            {"Path": t.path, "Rate": t.rate} for t in r.blkio_device_write_iops
        ],
        "CpuPeriod": r.cpu_period,
        "CpuQuota": r.cpu_quota,
        "CpuRealtimePeriod": r.cpu_realtime_period,
        "CpuRealtimeRuntime": r.cpu_realtime_runtime,
        "CpusetCpus": r.cpuset_cpus,
        "CpusetMems": r.cpuset_mems,
        "Devices": [
            {
                "PathOnHost": d.path_on_host,
                "PathInContainer": d.path_in_container,
                "CgroupPermissions": d.cgroup_permissions,
            }
            for d in r.devices
        ],
        "DeviceCgroupRules": list(r.device_cgroup_rules) or None,
        "DeviceRequests": None,
        "KernelMemory": 0,
        "KernelMemoryTCP": 0,
        "MemoryReservation": r.memory_reservation,
        "MemorySwap": r.memory_swap,
        "MemorySwappiness": r.memory_swappiness,
        "OomKillDisable": bool(r.oom_kill_disable),
        "PidsLimit": r.pids_limit,
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in r.ulimits] or None,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
    }


def _mount_json(request: MountRequest) -> dict[str, Any]:
    entry: dict[str, Any] = {"Type": request.type, "Target": request.target}
    if request.source:
        entry["Source"] = request.source
    if request.read_only:
        entry["ReadOnly"] = True
    if request.consistency:
        entry["Consistency"] = request.consistency
    if request.bind_propagation or request.bind_non_recursive:
        entry["BindOptions"] = {"Propagation": request.bind_propagation}
        if request.bind_non_recursive:
            entry["BindOptions"]["NonRecursive"] = True
    if request.volume_no_copy or request.volume_labels or request.volume_driver:
        volume: dict[str, Any] = {}
        if request.volume_no_copy:
            volume["NoCopy"] = True
        if request.volume_labels:
            volume["Labels"] = dict(request.volume_labels)
        if request.volume_driver:
            volume["DriverConfig"] = {
                "Name": request.volume_driver,
                "Options": dict(request.volume_driver_options),
            }
        entry["VolumeOptions"] = volume
    if request.tmpfs_size or request.tmpfs_mode:
        entry["TmpfsOptions"] = {
            k: v for k, v in (("SizeBytes", request.tmpfs_size), ("Mode", request.tmpfs_mode)) if v
        }
    return entry


def host_config_extras_json(host: HostConfig) -> dict[str, Any]:
    """The HostConfig fields beyond networking, in Docker's names (merged by the caller)."""
    data: dict[str, Any] = {
        "Binds": list(host.binds) or None,
        "LogConfig": {"Type": host.log_config.type, "Config": dict(host.log_config.config)},
        "RestartPolicy": {
            "Name": host.restart_policy.name,
            "MaximumRetryCount": host.restart_policy.maximum_retry_count,
        },
        "VolumeDriver": host.volume_driver,
        "VolumesFrom": list(host.volumes_from) or None,
        "CapAdd": list(host.cap_add) or None,
        "CapDrop": list(host.cap_drop) or None,
        "CgroupnsMode": host.cgroupns_mode,
        "GroupAdd": list(host.group_add) or None,
        "IpcMode": host.ipc_mode,
        "Cgroup": "",
        "OomScoreAdj": host.oom_score_adj,
        "PidMode": host.pid_mode,
        "Privileged": host.privileged,
        "ReadonlyRootfs": host.readonly_rootfs,
        "SecurityOpt": list(host.security_opt) or None,
        "UTSMode": host.uts_mode,
        "UsernsMode": "",
        "ShmSize": host.shm_size,
        "Runtime": host.runtime,
        "Isolation": host.isolation,
        **resources_json(host.resources),
        "MaskedPaths": list(MASKED_PATHS if host.masked_paths is None else host.masked_paths),
        "ReadonlyPaths": list(
            READONLY_PATHS if host.readonly_paths is None else host.readonly_paths
        ),
    }
    if host.privileged:
        data["MaskedPaths"], data["ReadonlyPaths"] = None, None
    if host.mounts:
        data["Mounts"] = [_mount_json(m) for m in host.mounts]
    if host.tmpfs:
        data["Tmpfs"] = dict(host.tmpfs)
    if host.sysctls:
        data["Sysctls"] = dict(host.sysctls)
    if host.init is not None:
        data["Init"] = host.init
    return data


def mount_points_json(points: list[MountPoint]) -> list[dict[str, Any]]:
    """Inspect's ``Mounts``: Docker's MountPoint for each bind, volume and --mount tmpfs."""
    found = []
    for point in points:
        entry: dict[str, Any] = {"Type": point.type}
        if point.type == "volume":
            entry["Name"] = point.name
        entry["Source"] = point.source
        entry["Destination"] = point.destination
        if point.type == "volume":
            entry["Driver"] = point.driver or "local"
        entry["Mode"] = point.mode
        entry["RW"] = not point.read_only
        entry["Propagation"] = point.propagation
        found.append(entry)
    return found
