"""OCI bundles for runc: the root filesystem (an overlay over the image) and config.json.

* The rootfs is an overlayfs: the unpacked image is the read-only lower layer, shared by every
  container of that image; the container's writes go to an upper directory under the data root,
  kept while the container exists (a restarted container sees its own changes), removed at rm.
  The mount point lives under the exec root, which may be a tmpfs.
* The network namespace is the sandbox's bind-mounted netns (its key): runc setns(2)s into it
  instead of unsharing a new one, so the container sees the interfaces the controller made.
  Host-network containers get the key too (the controller pins the host namespace there), so
  the container lands in the controller's host namespace whichever thread starts it.
* /etc/hosts, /etc/resolv.conf and /etc/hostname are bind mounts of the sandbox's generated
  files. The controller rewrites those in place (same inode) on connect and disconnect, and a bind
  mount follows the inode, so the container sees every update.
* Capabilities are Docker's default set; no seccomp or AppArmor profile is applied.
* cgroupsPath is relative: runc (cgroup v1) places it below the runc process's own cgroup in each
  hierarchy, so containers stay within the daemon's limits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnm.osl.syscalls import mount, umount

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


def _base_mounts() -> list[dict[str, Any]]:
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]


def oci_spec(
    *,
    container_id: str,
    args: list[str],
    env: list[str],
    cwd: str,
    hostname: str,
    domainname: str = "",
    rootfs: Path,
    netns: str,
    files: dict[str, Path],
    terminal: bool = False,
    console_size: list[int] | None = None,
) -> dict[str, Any]:
    """config.json of a container; ``files`` maps a path inside (/etc/hosts) to its source.
    With ``terminal`` runc gives the process a pseudo-terminal of ``console_size`` (rows,
    columns; unset if either is 0) and sends its master to the console socket."""
    mounts = _base_mounts()
    mounts += [
        {
            "destination": inside,
            "type": "bind",
            "source": str(source),
            "options": ["rbind", "rprivate"],
        }
        for inside, source in files.items()
    ]
    process: dict[str, Any] = {"terminal": terminal}
    if terminal and console_size and all(console_size):
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    return {
        "ociVersion": "1.0.2",
        "process": {
            **process,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": cwd or "/",
            "capabilities": {
                "bounding": DEFAULT_CAPABILITIES,
                "effective": DEFAULT_CAPABILITIES,
                "permitted": DEFAULT_CAPABILITIES,
            },
            "noNewPrivileges": False,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": f"cnm/{container_id}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "network", "path": netns},
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
            # The NIS domain name through its sysctl, as dockerd 20.10 sets it: runc 1.1 does
            # not apply the spec's own "domainname" field.
            **({"sysctl": {"kernel.domainname": domainname}} if domainname else {}),
        },
    }


def write_spec(bundle: Path, spec: dict[str, Any]) -> None:
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    for path in (lower, upper, work):
        if any(c in str(path) for c in ",:"):
            raise OSError(f"overlay layer path {path} holds ',' or ':'")
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    mount(
        "overlay", str(target), "overlay", data=f"lowerdir={lower},upperdir={upper},workdir={work}"
    )


def is_mounted(target: Path) -> bool:
    text = str(target)
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == text for line in mounts)


def unmount(target: Path) -> None:
    """Detach the mount at ``target`` if there is one."""
    while is_mounted(target):
        umount(str(target))
