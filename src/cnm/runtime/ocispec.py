"""config.json for runc: a container's record turned into an OCI runtime spec (1.0.2).

What each part of Docker's HostConfig becomes:

* the process: its user (``users``: uid, gid, supplementary groups from ``--group-add``), its
  capabilities and ``no-new-privileges`` (``security``), ulimits, ``oomScoreAdj``, a terminal
  of the asked size; with ``--init``, docker-init (tini) bind-mounted at /sbin/docker-init as
  the first process, the command its child, as Docker does;
* namespaces: the sandbox's network namespace by path (runc setns(2)s into it instead of making
  one, so the container sees the interfaces the controller made; host-network containers get
  the key too, the controller pins the host namespace there); pid, ipc and uts private, the
  host's (left out of the list: runc then stays in its own, the host's) or another container's
  (by /proc/<pid>/ns/<type>); a cgroup namespace with ``--cgroupns private``;
* mounts: Docker's /proc, /dev, /dev/pts, /dev/shm (``--shm-size``), /dev/mqueue, /sys and
  /sys/fs/cgroup (read-write when privileged), the sandbox's hosts/resolv.conf/hostname files
  (bind mounts: the controller rewrites them in place, a bind mount follows the inode), and the
  container's own (``mounts``);
* ``linux.resources`` (``resources``) with the device rules: all denied, then runc's defaults
  (null, zero, full, tty, random, urandom, ptmx, pts), ``--device`` and ``--device-cgroup-rule``;
  everything allowed when privileged, and the host's devices in /dev;
* ``linux.sysctl``, the masked and read-only paths (none when privileged or with
  ``systempaths=unconfined``), a read-only root with ``--read-only``.

cgroupsPath is relative: runc (cgroup v1) places it below the runc process's own group in each
hierarchy, so containers stay within the daemon's limits.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnm.runtime import mounts, resources, security
from cnm.runtime.model import Container
from cnm.runtime.users import Identity

INIT_PATH = "/sbin/docker-init"
_SKIPPED_HOST_DEVICES = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd")


@dataclass(frozen=True)
class SpecRequest:
    container: Container
    args: list[str]
    env: list[str]
    cwd: str
    hostname: str
    rootfs: Path
    netns: str
    sandbox_files: dict[str, Path]  # path inside (/etc/hosts) -> the sandbox's file
    domainname: str = ""
    identity: Identity = field(default_factory=Identity)
    joined: dict[str, str] = field(default_factory=dict)  # "pid"/"ipc" -> namespace to join
    shm_source: str = ""  # ipc host or container:<id>: the /dev/shm to bind
    init_binary: str = ""  # with --init: the host's docker-init


def _base_mounts(host_privileged: bool, shm: dict[str, Any] | None) -> list[dict[str, Any]]:
    read_only = [] if host_privileged else ["ro"]
    found = [
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
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", *read_only],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", *read_only],
        },
    ]
    if shm is not None:
        found.insert(3, shm)
    return found


def shm_mount(container: Container, source: str) -> dict[str, Any] | None:
    """/dev/shm: a tmpfs of ``--shm-size``; the host's or another container's to share its
    IPC namespace; none with ``--ipc none``."""
    mode = container.host_config.ipc_mode
    if mode == "none":
        return None
    if source:
        return {
            "destination": "/dev/shm",
            "type": "bind",
            "source": source,
            "options": ["rbind", "rprivate"],
        }
    size = container.host_config.shm_size or 64 << 20
    return {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={size}"],
    }


def _namespaces(request: SpecRequest) -> list[dict[str, str]]:
    host = request.container.host_config
    found: list[dict[str, str]] = []
    if host.pid_mode != "host":
        found.append(
            {"type": "pid", **({"path": request.joined["pid"]} if "pid" in request.joined else {})}
        )
    if host.ipc_mode != "host":
        found.append(
            {"type": "ipc", **({"path": request.joined["ipc"]} if "ipc" in request.joined else {})}
        )
    if host.uts_mode != "host":
        found.append({"type": "uts"})
    found.append({"type": "mount"})
    found.append({"type": "network", "path": request.netns})
    if host.cgroupns_mode == "private":
        found.append({"type": "cgroup"})
    return found


def _host_devices() -> list[tuple[str, str, int, int, int]]:
    """Every device node under the host's /dev (a privileged container gets them all)."""
    found = []
    for root, dirs, names in os.walk("/dev"):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in _SKIPPED_HOST_DEVICES]
        for name in names:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                kind = "c" if stat.S_ISCHR(info.st_mode) else "b"
                major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
                found.append((path, kind, major, minor, stat.S_IMODE(info.st_mode)))
    return found


def _devices(container: Container) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(linux.devices, the device cgroup rules)."""
    host = container.host_config
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    wanted: list[tuple[str, str, int, int, int, str]] = []
    if host.privileged:
        rules = [{"allow": True, "access": "rwm"}]
        wanted += [(*d, "rwm") for d in _host_devices()]
    for mapping in host.resources.devices:
        permissions = mapping.cgroup_permissions or "rwm"
        wanted += [(*d, permissions) for d in resources.host_devices(mapping)]
    seen: set[str] = set()
    for inside, kind, major, minor, mode, permissions in wanted:
        if (
            inside in seen
            or inside in ("/dev/console", "/dev/ptmx")
            or inside.startswith("/dev/pts/")
        ):
            continue
        seen.add(inside)
        nodes.append(
            {
                "path": inside,
                "type": kind,
                "major": major,
                "minor": minor,
                "fileMode": mode,
                "uid": 0,
                "gid": 0,
            }
        )
        if not host.privileged:
            rules.append(
                {"allow": True, "type": kind, "major": major, "minor": minor, "access": permissions}
            )
    rules += [resources.device_rule(rule) for rule in host.resources.device_cgroup_rules]
    return nodes, rules


def build(request: SpecRequest) -> dict[str, Any]:
    container = request.container
    host = container.host_config
    shm = shm_mount(container, request.shm_source)
    own = [
        {
            "destination": inside,
            "type": "bind",
            "source": str(source),
            "options": ["rbind", "rprivate"],
        }
        for inside, source in request.sandbox_files.items()
    ]
    args = list(request.args)
    if host.init and request.init_binary:
        own.append(
            {
                "destination": INIT_PATH,
                "type": "bind",
                "source": request.init_binary,
                "options": ["bind", "ro"],
            }
        )
        args = [INIT_PATH, "--", *args]
    own += mounts.oci_mounts(container)
    # Parents first (a stable sort: equal depths keep their order), as Docker sorts them.
    own.sort(key=lambda m: len(Path(str(m["destination"])).parts))
    spec_mounts = _base_mounts(host.privileged, shm) + own
    caps = security.capabilities(host)
    identity = request.identity
    process: dict[str, Any] = {
        "terminal": container.config.tty,
        "user": {"uid": identity.uid, "gid": identity.gid},
        "args": args,
        "env": request.env,
        "cwd": request.cwd or "/",
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "noNewPrivileges": security.no_new_privileges(host),
    }
    if identity.additional_gids:
        process["user"]["additionalGids"] = identity.additional_gids
    size = host.console_size
    if container.config.tty and size and all(size):
        process["consoleSize"] = {"height": size[0], "width": size[1]}
    if host.resources.ulimits:
        process["rlimits"] = resources.rlimits(host.resources.ulimits)
    if host.oom_score_adj:
        process["oomScoreAdj"] = host.oom_score_adj
    nodes, rules = _devices(container)
    linux_resources = resources.oci_resources(host.resources)
    linux_resources["devices"] = rules
    unconfined = host.privileged or security.unconfined_paths(host)
    masked = security.MASKED_PATHS if host.masked_paths is None else host.masked_paths
    readonly = security.READONLY_PATHS if host.readonly_paths is None else host.readonly_paths
    linux: dict[str, Any] = {
        "cgroupsPath": f"cnm/{container.id}",
        "resources": linux_resources,
        "namespaces": _namespaces(request),
        "maskedPaths": [] if unconfined else list(masked),
        "readonlyPaths": [] if unconfined else list(readonly),
    }
    if nodes:
        linux["devices"] = nodes
    sysctls = dict(host.sysctls)
    if request.domainname and host.uts_mode != "host":
        # The NIS domain name through its sysctl, as dockerd 20.10 sets it: runc 1.1 does not
        # apply the spec's own "domainname" field.
        sysctls["kernel.domainname"] = request.domainname
    if sysctls:
        linux["sysctl"] = sysctls
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(request.rootfs), "readonly": host.readonly_rootfs},
        "mounts": spec_mounts,
        "linux": linux,
    }
    if host.uts_mode != "host":
        spec["hostname"] = request.hostname
    return spec
