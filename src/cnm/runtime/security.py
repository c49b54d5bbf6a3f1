"""What a container may do to the kernel: its capabilities (``--cap-add``, ``--cap-drop``,
``--privileged``), its sysctls, its ``--security-opt`` and the paths of /proc and /sys it may not
read or write, as Docker 20.10 sets them.

Capabilities. Docker's default set (moby oci/caps/defaults.go); ``--cap-add``/``--cap-drop``
take names with or without ``CAP_``, in any case, and ``ALL``; ``--privileged`` gives every
capability the kernel has (/proc/sys/kernel/cap_last_cap) and the daemon's bounding set holds
(a daemon started with fewer cannot give more), lifts the masked and read-only paths and allows
every device. The set goes to runc's bounding, effective and permitted sets; the inheritable
set stays empty, as in Docker since 20.10.14 (CVE-2022-24769: with inheritable capabilities a
file capability or an execve by a non-root user could lift a process's permitted set).

Sysctls. Only the namespaced ones can be set for one container (the kernel keeps the others
for the whole machine): ``net.*`` (the container's network namespace; refused with the host's
network), the IPC ones (``kernel.msg*``, ``kernel.sem``, ``kernel.shm*``, ``fs.mqueue.*``;
refused with the host's IPC namespace). runc writes them inside the container's namespaces
before the process starts, after cnm has configured the interfaces, so a ``net.*`` sysctl a
user sets wins over cnm's own settings for that namespace. ``kernel.hostname`` and
``kernel.domainname`` are refused: ``--hostname`` and ``--domainname`` set them.

Security options. cnm applies no seccomp profile, no AppArmor profile and no SELinux labels,
so it accepts the options that ask for none of them (``seccomp=unconfined``,
``apparmor=unconfined``, ``label=disable``), honours ``no-new-privileges`` and
``systempaths=unconfined``, and refuses the rest with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

from cnm.errors import InvalidParameter
from cnm.runtime.model import HostConfig

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

# Every capability by its number (linux/capability.h).
CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]

# Docker's defaults (moby oci/defaults.go).
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

IPC_SYSCTLS = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)
_SYSCTL_NAME = re.compile(r"[a-z0-9_]+(?:[./][a-zA-Z0-9_\-:@+]+)+")


def kernel_capabilities() -> list[str]:
    """The capabilities a container can have here: the kernel's that the daemon's own bounding
    set holds (a daemon confined by its parent cannot give what it lacks)."""
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = len(CAPABILITIES) - 1
    bounding = (1 << (last + 1)) - 1
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                bounding = int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return [cap for number, cap in enumerate(CAPABILITIES[: last + 1]) if bounding >> number & 1]


def normalize_capability(name: str) -> str:
    """``net_admin``, ``NET_ADMIN``, ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``ALL`` stays."""
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in CAPABILITIES:
        raise InvalidParameter(f'unknown capability: "{full}"')
    return full


def capabilities(host: HostConfig) -> list[str]:
    """The container's capability set (Docker's TweakCapabilities: ``ALL`` added wins)."""
    available = kernel_capabilities()
    if host.privileged:
        return list(available)
    adds = [normalize_capability(c) for c in host.cap_add]
    drops = [normalize_capability(c) for c in host.cap_drop]
    if "ALL" in adds:
        chosen = [c for c in available if c not in drops]
    elif "ALL" in drops:
        chosen = list(dict.fromkeys(adds))
    else:
        chosen = [c for c in DEFAULT_CAPABILITIES if c not in drops]
        chosen += [c for c in dict.fromkeys(adds) if c not in chosen]
    missing = [c for c in chosen if c not in available]
    if missing:
        raise InvalidParameter(
            f"capability {missing[0]} cannot be given: the kernel or the daemon's own bounding "
            "set lacks it"
        )
    return chosen


def check_sysctls(host: HostConfig) -> dict[str, str]:
    """The sysctls a container may set in its own namespaces (see the module note)."""
    for name in host.sysctls:
        if not _SYSCTL_NAME.fullmatch(name):
            raise InvalidParameter(f"invalid sysctl name {name!r}")
        key = name.replace("/", ".")
        if key in ("kernel.hostname", "kernel.domainname"):
            option = key.removeprefix("kernel.")
            raise InvalidParameter(
                f"sysctl {name!r} is not allowed: set the container's {option} with --{option}"
            )
        if key.startswith("net."):
            if host.network_mode == "host":
                raise InvalidParameter(f"sysctl {name!r} not allowed in host network namespace")
            continue
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if host.ipc_mode == "host":
                raise InvalidParameter(f"sysctl {name!r} not allowed in host IPC namespace")
            continue
        raise InvalidParameter(
            f"sysctl {name!r} is not in a separate kernel namespace: it would change the whole "
            "machine, so it cannot be set for one container"
        )
    return dict(host.sysctls)


def no_new_privileges(host: HostConfig) -> bool:
    """Whether ``--security-opt no-new-privileges`` is set (checked by ``check_security_opt``)."""
    found = False
    for option in host.security_opt:
        key, _, value = option.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            found = value.lower() in ("", "true")
    return found


def unconfined_paths(host: HostConfig) -> bool:
    return any(o.replace(":", "=", 1) == "systempaths=unconfined" for o in host.security_opt)


def check_security_opt(host: HostConfig) -> None:
    for option in host.security_opt:
        key, _, value = option.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges" and value.lower() in ("", "true", "false"):
            continue
        if (key, value) in (
            ("seccomp", "unconfined"),
            ("apparmor", "unconfined"),
            ("label", "disable"),
            ("systempaths", "unconfined"),
        ):
            continue
        if key in ("seccomp", "apparmor", "label"):
            raise InvalidParameter(
                f"security option {key}={value[:40]}... cannot be applied: cnm runs containers "
                f"without a {key} profile (only {key}=unconfined"
                f"{' or label=disable' if key == 'label' else ''} is accepted)"
            )
        raise InvalidParameter(f"Invalid --security-opt: {option!r}")
