"""What a container asks of its surroundings beyond networking, checked at create: namespaces
modes, ``--init``, isolation and runtime, restart policy, stop signal and timeout, log driver,
resources, capabilities, sysctls and security options.

Each value is honoured (``ocispec`` turns it into runc's config, ``restarts`` and ``outputs``
do the rest) or refused here with the reason, never taken and dropped. Containers of the
host's filesystem (image ``cnm/host``) run without runc, so what only runc can do (mounts,
users, limits, capabilities, namespaces modes) is refused for them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from cnm.errors import InvalidParameter
from cnm.runtime import resources, security
from cnm.runtime.logdriver import check_log_config
from cnm.runtime.model import Container, ContainerConfig, HostConfig, Resources, RestartPolicy
from cnm.runtime.process import parse_signal

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
IPC_MODES = ("private", "shareable", "host", "none")
INIT_BINARIES = ("docker-init", "tini-static")


def init_binary() -> str:
    """The host's docker-init (Debian's tini-static), which ``--init`` runs as the first
    process; CnmError naming the package when it is missing."""
    for name in INIT_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    raise InvalidParameter(
        "--init needs docker-init (a static tini) on the host, and there is none: install "
        "Debian's tini package (scripts/setup.sh does)"
    )


def check_restart_policy(policy: RestartPolicy, auto_remove: bool) -> RestartPolicy:
    """Docker's validateRestartPolicy, with its messages."""
    name = policy.name or "no"
    if name not in RESTART_POLICIES:
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if name != "on-failure" and policy.maximum_retry_count:
        raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
    if policy.maximum_retry_count < 0:
        raise InvalidParameter("maximum retry count cannot be negative")
    if auto_remove and name != "no":
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    return RestartPolicy(name, policy.maximum_retry_count)


def _container_mode(mode: str, what: str, find: Callable[[str], Container]) -> str:
    ref = mode.removeprefix("container:")
    if not ref:
        raise InvalidParameter(f"invalid {what} mode: invalid container format container:<name|id>")
    return f"container:{find(ref).id}"


def check(
    config: ContainerConfig,
    host: HostConfig,
    find: Callable[[str], Container],
    host_image: bool,
) -> HostConfig:
    """``host`` in normal form (container references by id, defaults filled), or refused."""
    if host.isolation not in ("", "default"):
        raise InvalidParameter(
            f"Invalid isolation: {host.isolation!r} - linux only supports 'default'"
        )
    if host.runtime not in ("", "runc"):
        raise InvalidParameter(f"Unknown runtime specified {host.runtime}")
    host.runtime = "runc"
    if host.pid_mode not in ("", "host") and not host.pid_mode.startswith("container:"):
        raise InvalidParameter(f"invalid PID mode: {host.pid_mode}")
    if host.pid_mode.startswith("container:"):
        host.pid_mode = _container_mode(host.pid_mode, "PID", find)
    if host.uts_mode not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {host.uts_mode}")
    if host.uts_mode == "host" and config.hostname:
        raise InvalidParameter("Conflicting options: hostname and the UTS mode")
    host.ipc_mode = host.ipc_mode or "private"
    if host.ipc_mode not in IPC_MODES and not host.ipc_mode.startswith("container:"):
        raise InvalidParameter(f"invalid IPC mode: {host.ipc_mode}")
    if host.ipc_mode.startswith("container:"):
        host.ipc_mode = _container_mode(host.ipc_mode, "IPC", find)
    host.cgroupns_mode = host.cgroupns_mode or "host"
    if host.cgroupns_mode not in ("host", "private"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {host.cgroupns_mode}")
    if config.stop_signal:
        parse_signal(config.stop_signal)
    if config.stop_timeout is not None and config.stop_timeout < -1:
        raise InvalidParameter(f"invalid stop timeout: {config.stop_timeout}")
    if host.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    host.shm_size = host.shm_size or 64 << 20
    if host.oom_score_adj and not -1000 <= host.oom_score_adj <= 1000:
        raise InvalidParameter(
            f"Invalid value {host.oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )
    host.restart_policy = check_restart_policy(host.restart_policy, host.auto_remove)
    host.log_config = check_log_config(host.log_config)
    host.resources = resources.check(host.resources)
    host.cap_add = [security.normalize_capability(c) for c in host.cap_add]
    host.cap_drop = [security.normalize_capability(c) for c in host.cap_drop]
    security.capabilities(host)
    security.check_sysctls(host)
    security.check_security_opt(host)
    if host.init:
        init_binary()
    if host_image:
        _refuse_for_host_image(config, host)
    return host


def _refuse_for_host_image(config: ContainerConfig, host: HostConfig) -> None:
    """What only runc does, which a container of the host's filesystem cannot have."""
    asked = {
        "--user": config.user,
        "volumes": config.volumes or host.binds or host.mounts or host.volumes_from,
        "--tmpfs": host.tmpfs,
        "resource limits": host.resources != Resources(),
        "--cap-add/--cap-drop": host.cap_add or host.cap_drop,
        "--privileged": host.privileged,
        "--sysctl": host.sysctls,
        "--pid": host.pid_mode,
        "--uts": host.uts_mode,
        "--ipc": host.ipc_mode not in ("private", "shareable"),
        "--cgroupns": host.cgroupns_mode != "host",
        "--init": host.init,
        "--group-add": host.group_add,
        "--security-opt": host.security_opt,
        "--read-only": host.readonly_rootfs,
        "--oom-score-adj": host.oom_score_adj,
    }
    for flag, value in asked.items():
        if value:
            raise InvalidParameter(
                f"{flag} is not supported for containers of the host's filesystem (cnm/host): "
                "they run without runc"
            )
