"""Docker's Resources (memory, CPU, pids, block I/O, devices, ulimits) checked against this
machine and turned into the OCI spec's ``linux.resources`` for runc.

Checks are Docker's (daemon/daemon_unix.go, verifyPlatformContainerResources), with its
messages, plus one rule of cnm's: where Docker only warns that the kernel lacks a controller
file and drops the limit, cnm refuses the limit and names what is missing. Like Docker, a
memory limit without a swap limit gets twice the memory as memory+swap (``--memory 100m`` lets
the container use 100 MiB of swap), when the kernel accounts swap.

Applied by runc: at start from config.json, and by ``docker update`` through ``runc update``
with the same JSON (``update_json``); a running container's limits change at once.
"""

from __future__ import annotations

import copy
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnm.errors import InvalidParameter
from cnm.runtime import cgroups
from cnm.runtime.model import DeviceMapping, Resources, ThrottleDevice, Ulimit, WeightDevice

MIN_MEMORY = 6 << 20
_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")
ULIMITS = (
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
)


def _need(controller: str, filename: str, what: str) -> None:
    if not cgroups.supports(controller, filename):
        raise InvalidParameter(
            f"{what} cannot be applied: this kernel's {controller} cgroup has no {filename}"
        )


def check(resources: Resources, *, created: bool = True) -> Resources:
    """The resources in normal form, or Docker's refusal. ``created`` False: an update (its
    zero values mean "unchanged", so nothing is defaulted)."""
    r = copy.deepcopy(resources)
    if r.memory:
        if r.memory < MIN_MEMORY:
            raise InvalidParameter("Minimum memory limit allowed is 6MB")
        _need("memory", "memory.limit_in_bytes", "--memory")
    swap_supported = cgroups.supports("memory", "memory.memsw.limit_in_bytes")
    if r.memory_swap > 0:
        if not r.memory and created:
            raise InvalidParameter(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
            )
        if r.memory and r.memory_swap < r.memory:
            raise InvalidParameter(
                "Minimum memoryswap limit should be larger than memory limit, see usage"
            )
        if not swap_supported:
            raise InvalidParameter(
                "--memory-swap cannot be applied: this kernel does not account swap "
                "(memory.memsw.limit_in_bytes is missing; boot with swapaccount=1)"
            )
    elif r.memory and r.memory_swap == 0 and swap_supported and created:
        r.memory_swap = r.memory * 2
    if r.memory_swappiness is not None:
        if r.memory_swappiness == -1:
            r.memory_swappiness = None
        elif not 0 <= r.memory_swappiness <= 100:
            raise InvalidParameter(
                f"Invalid value: {r.memory_swappiness}, valid memory swappiness range is 0-100"
            )
        else:
            _need("memory", "memory.swappiness", "--memory-swappiness")
    if r.memory_reservation:
        if r.memory and r.memory < r.memory_reservation:
            raise InvalidParameter(
                "Minimum memory limit can not be less than memory reservation limit, see usage"
            )
        _need("memory", "memory.soft_limit_in_bytes", "--memory-reservation")
    if r.oom_kill_disable:
        _need("memory", "memory.oom_control", "--oom-kill-disable")
    _check_cpu(r)
    if r.pids_limit is not None and r.pids_limit <= 0:
        r.pids_limit = None
    if r.pids_limit is not None:
        _need("pids", "pids.max", "--pids-limit")
    _check_blkio(r)
    for rule in r.device_cgroup_rules:
        device_rule(rule)
    for mapping in r.devices:
        host_devices(mapping)
    for limit in r.ulimits:
        if limit.name not in ULIMITS:
            raise InvalidParameter(f"invalid ulimit type: {limit.name}")
        if limit.soft > limit.hard:
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {limit.soft} > "
                f"{limit.hard}"
            )
    return r


def _check_cpu(r: Resources) -> None:
    cpus = cgroups.available_cpus()
    if r.nano_cpus:
        if r.cpu_period:
            raise InvalidParameter(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set"
            )
        if r.cpu_quota:
            raise InvalidParameter(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
            )
        if r.nano_cpus < 0 or r.nano_cpus > len(cpus) * 10**9:
            raise InvalidParameter(
                f"Range of CPUs is from 0.01 to {len(cpus)}.00, as there are only {len(cpus)} "
                "CPUs available"
            )
        _need("cpu", "cpu.cfs_quota_us", "--cpus")
    if r.cpu_shares:
        _need("cpu", "cpu.shares", "--cpu-shares")
    if r.cpu_period and not 1000 <= r.cpu_period <= 1_000_000:
        raise InvalidParameter(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if r.cpu_quota and r.cpu_quota > 0 and r.cpu_quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if r.cpu_period or r.cpu_quota:
        _need("cpu", "cpu.cfs_quota_us", "--cpu-period/--cpu-quota")
    if r.cpu_realtime_period or r.cpu_realtime_runtime:
        _need("cpu", "cpu.rt_runtime_us", "--cpu-rt-period/--cpu-rt-runtime")
        if r.cpu_realtime_period and r.cpu_realtime_runtime > r.cpu_realtime_period:
            raise InvalidParameter("cpu-rt-runtime should be less than cpu-rt-period")
    if r.cpuset_cpus:
        try:
            wanted = cgroups.parse_cpu_list(r.cpuset_cpus)
        except ValueError:
            raise InvalidParameter(f"Invalid value {r.cpuset_cpus} for cpuset cpus") from None
        if not wanted <= cpus:
            raise InvalidParameter(
                f"Requested CPUs are not available - requested {r.cpuset_cpus}, available: "
                f"{_cpu_list(cpus)}"
            )
    if r.cpuset_mems:
        try:
            wanted = cgroups.parse_cpu_list(r.cpuset_mems)
        except ValueError:
            raise InvalidParameter(f"Invalid value {r.cpuset_mems} for cpuset mems") from None
        mems = cgroups.available_mems()
        if not wanted <= mems:
            raise InvalidParameter(
                f"Requested memory nodes are not available - requested {r.cpuset_mems}, "
                f"available: {_cpu_list(mems)}"
            )


def _cpu_list(found: set[int]) -> str:
    """{0, 1, 2, 5} -> ``0-2,5``."""
    ranges: list[list[int]] = []
    for number in sorted(found):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _check_blkio(r: Resources) -> None:
    if r.blkio_weight:
        if not 10 <= r.blkio_weight <= 1000:
            raise InvalidParameter("Range of blkio weight is from 10 to 1000")
        _need("blkio", "blkio.weight", "--blkio-weight")
    for weighted in r.blkio_weight_device:
        if not 10 <= weighted.weight <= 1000:
            raise InvalidParameter("Range of blkio weight is from 10 to 1000")
        _need("blkio", "blkio.weight_device", "--blkio-weight-device")
        _device_numbers(weighted.path)
    throttles = (
        (r.blkio_device_read_bps, "blkio.throttle.read_bps_device", "--device-read-bps"),
        (r.blkio_device_write_bps, "blkio.throttle.write_bps_device", "--device-write-bps"),
        (r.blkio_device_read_iops, "blkio.throttle.read_iops_device", "--device-read-iops"),
        (r.blkio_device_write_iops, "blkio.throttle.write_iops_device", "--device-write-iops"),
    )
    for entries, filename, flag in throttles:
        for throttle in entries:
            _need("blkio", filename, flag)
            _device_numbers(throttle.path)


def _device_numbers(path: str) -> tuple[str, int, int, int]:
    """(type, major, minor, mode) of a device node on the host."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise InvalidParameter(
            f"error gathering device information while adding custom device {path!r}: "
            f"{err.strerror}"
        ) from None
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        raise InvalidParameter(
            f"error gathering device information while adding custom device {path!r}: "
            "not a device node"
        )
    return kind, os.major(info.st_rdev), os.minor(info.st_rdev), stat.S_IMODE(info.st_mode)


def device_rule(rule: str) -> dict[str, Any]:
    """``c 7:128 rwm`` as an OCI device cgroup rule."""
    match = _RULE.fullmatch(rule.strip())
    if match is None:
        raise InvalidParameter(f"invalid device cgroup rule format: '{rule}'")
    entry: dict[str, Any] = {"allow": True, "type": match[1], "access": match[4]}
    if match[2] != "*":
        entry["major"] = int(match[2])
    if match[3] != "*":
        entry["minor"] = int(match[3])
    return entry


def host_devices(mapping: DeviceMapping) -> list[tuple[str, str, int, int, int]]:
    """The devices of a ``--device``: (path inside, type, major, minor, mode); a directory on
    the host maps every device under it."""
    if not re.fullmatch(r"[rwm]{1,3}", mapping.cgroup_permissions or "rwm"):
        raise InvalidParameter(f"invalid device mode: {mapping.cgroup_permissions}")
    source = Path(mapping.path_on_host)
    inside = mapping.path_in_container or mapping.path_on_host
    if source.is_dir():
        found = []
        for path in sorted(source.rglob("*")):
            if path.is_char_device() or path.is_block_device():
                kind, major, minor, mode = _device_numbers(str(path))
                found.append(
                    (str(Path(inside) / path.relative_to(source)), kind, major, minor, mode)
                )
        return found
    kind, major, minor, mode = _device_numbers(mapping.path_on_host)
    return [(inside, kind, major, minor, mode)]


def _per_device(entries: Sequence[ThrottleDevice | WeightDevice]) -> list[dict[str, int]]:
    """OCI's per-device block I/O entries: each path's major and minor, with its weight or
    rate."""
    found = []
    for entry in entries:
        _, major, minor, _ = _device_numbers(entry.path)
        if isinstance(entry, WeightDevice):
            found.append({"major": major, "minor": minor, "weight": entry.weight})
        else:
            found.append({"major": major, "minor": minor, "rate": entry.rate})
    return found


def oci_resources(r: Resources) -> dict[str, Any]:
    """``linux.resources`` without the device rules (``ocispec`` adds those)."""
    found: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if r.memory:
        memory["limit"] = r.memory
    if r.memory_swap:
        memory["swap"] = r.memory_swap
    if r.memory_reservation:
        memory["reservation"] = r.memory_reservation
    if r.memory_swappiness is not None:
        memory["swappiness"] = r.memory_swappiness
    if r.oom_kill_disable is not None:
        memory["disableOOMKiller"] = r.oom_kill_disable
    if memory:
        found["memory"] = memory
    cpu: dict[str, Any] = {}
    if r.cpu_shares:
        cpu["shares"] = r.cpu_shares
    if r.nano_cpus:
        cpu["period"] = 100_000
        cpu["quota"] = r.nano_cpus * 100_000 // 10**9
    if r.cpu_period:
        cpu["period"] = r.cpu_period
    if r.cpu_quota:
        cpu["quota"] = r.cpu_quota
    if r.cpu_realtime_period:
        cpu["realtimePeriod"] = r.cpu_realtime_period
    if r.cpu_realtime_runtime:
        cpu["realtimeRuntime"] = r.cpu_realtime_runtime
    if r.cpuset_cpus:
        cpu["cpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        cpu["mems"] = r.cpuset_mems
    if cpu:
        found["cpu"] = cpu
    if r.pids_limit is not None:
        found["pids"] = {"limit": r.pids_limit}
    block: dict[str, Any] = {}
    if r.blkio_weight:
        block["weight"] = r.blkio_weight
    if r.blkio_weight_device:
        block["weightDevice"] = _per_device(r.blkio_weight_device)
    for key, entries in (
        ("throttleReadBpsDevice", r.blkio_device_read_bps),
        ("throttleWriteBpsDevice", r.blkio_device_write_bps),
        ("throttleReadIOPSDevice", r.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", r.blkio_device_write_iops),
    ):
        if entries:
            block[key] = _per_device(entries)
    if block:
        found["blockIO"] = block
    return found


def rlimits(ulimits: list[Ulimit]) -> list[dict[str, Any]]:
    return [{"type": f"RLIMIT_{u.name.upper()}", "hard": u.hard, "soft": u.soft} for u in ulimits]


def merge_update(current: Resources, update: Resources, given: set[str]) -> Resources:
    """``docker update``: the fields the request gave replace the current ones."""
    merged = copy.deepcopy(current)
    for name in given:
        setattr(merged, name, copy.deepcopy(getattr(update, name)))
    if "memory" in given and "memory_swap" not in given and 0 < merged.memory_swap < merged.memory:
        merged.memory_swap = merged.memory * 2  # Docker keeps swap at twice the memory
    return merged
