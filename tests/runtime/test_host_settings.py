"""HostConfig through runc and the cgroups of this machine, in-process: capabilities, sysctls in
the container's own namespaces, memory/CPU/pids limits (and ``update`` while it runs), users and
groups from the container's files, pid/uts/ipc modes, ``--init``, a read-only root; and every
refusal with Docker's words, leaving nothing behind."""

from __future__ import annotations

import pytest

from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.osl.links import read_sysctl
from cnm.runtime.model import LogConfig, Resources, RestartPolicy
from cnm.runtime.runtime import HOST_IMAGE, Runtime
from tests.support.runtime import config, host, logged, make_network, output


def _run(runtime: Runtime, name: str, *cmd: str, user: str = "", **host_options: object) -> str:
    runtime.create_container(
        name, config("busybox:local", *cmd, user=user), host(**host_options), {}
    )
    runtime.start_container(name)
    runtime.wait_container(name, timeout=20)
    return logged(runtime, name)


def test_capabilities_and_privileged(runtime: Runtime, busybox: str) -> None:
    mtu = "ip link set lo mtu 1400 && echo changed || echo refused"
    plain = _run(runtime, "plain", "sh", "-c", f"{mtu}; grep -E 'Cap(Inh|Eff)' /proc/self/status")
    assert plain.startswith("refused\n")
    assert "CapInh:\t0000000000000000" in plain  # none inheritable (CVE-2022-24769)
    assert "CapEff:\t00000000a80425fb" in plain  # Docker's default set
    assert _run(runtime, "admin", "sh", "-c", mtu, cap_add=["net_admin"]) == "changed\n"
    assert runtime.container("admin").host_config.cap_add == ["CAP_NET_ADMIN"]
    assert "refused" in _run(
        runtime, "dropped", "sh", "-c", "chown 1 /tmp && echo chowned || echo refused",
        cap_drop=["ALL"],
    )  # fmt: skip
    privileged = _run(
        runtime, "priv", "sh", "-c", f"{mtu}; grep -E 'Cap(Inh|Eff)' /proc/self/status; ls /dev | wc -l",
        privileged=True,
    )  # fmt: skip
    assert privileged.startswith("changed\n")
    assert "CapEff:\t00000000a80425fb" not in privileged  # more than Docker's default set
    assert "CapInh:\t0000000000000000" in privileged
    assert int(privileged.split()[-1]) > 10  # the host's devices


def test_sysctls_are_the_containers_own(runtime: Runtime, busybox: str) -> None:
    make_network(runtime, "sysnet", "10.86.0.0/24")
    before = read_sysctl("net.ipv4.ip_forward")
    out = _run(
        runtime, "sys", "sh", "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/core/somaxconn /proc/sys/kernel/msgmax",
        network_mode="sysnet",
        sysctls={"net.ipv4.ip_forward": "1", "net.core.somaxconn": "1234", "kernel.msgmax": "9000"},
    )  # fmt: skip
    assert out.split() == ["1", "1234", "9000"]
    assert read_sysctl("net.ipv4.ip_forward") == before  # the host's namespace is untouched


def test_limits_apply_and_update_changes_them_live(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "limited",
        config(busybox, "sleep", "1000"),
        host(
            resources=Resources(
                memory=64 << 20, cpu_shares=512, nano_cpus=500_000_000, pids_limit=50
            )
        ),
        {},
    )
    runtime.start_container("limited")
    limited = runtime.container("limited").host_config.resources
    assert limited.memory_swap == 128 << 20  # Docker's rule: twice the memory when not given
    cgroup = "/sys/fs/cgroup"
    assert (
        output(runtime, "limited", "cat", f"{cgroup}/memory/memory.limit_in_bytes")
        == f"{64 << 20}\n"
    )
    assert output(runtime, "limited", "cat", f"{cgroup}/cpu/cpu.shares") == "512\n"
    assert output(runtime, "limited", "cat", f"{cgroup}/cpu/cpu.cfs_quota_us") == "50000\n"
    assert output(runtime, "limited", "cat", f"{cgroup}/pids/pids.max") == "50\n"
    runtime.update_container(
        "limited", Resources(memory=96 << 20, cpu_shares=256), {"memory", "cpu_shares"},
        RestartPolicy("on-failure", 3),
    )  # fmt: skip
    assert (
        output(runtime, "limited", "cat", f"{cgroup}/memory/memory.limit_in_bytes")
        == f"{96 << 20}\n"
    )
    assert output(runtime, "limited", "cat", f"{cgroup}/cpu/cpu.shares") == "256\n"
    updated = runtime.container("limited").host_config
    assert (updated.resources.memory, updated.resources.pids_limit) == (96 << 20, 50)
    assert updated.restart_policy == RestartPolicy("on-failure", 3)
    sample = runtime.container_stats("limited")
    assert sample.memory_limit == 96 << 20 and sample.pids_current >= 1


def test_users_groups_modes_init_and_read_only_root(runtime: Runtime, busybox: str) -> None:
    assert _run(runtime, "nobody", "id", user="nobody") == "uid=65534(nobody) gid=65534(nogroup)\n"
    assert _run(runtime, "numeric", "id", user="1000:1000") == "uid=1000 gid=1000\n"
    grouped = _run(runtime, "grouped", "id", "-G", group_add=["1000", "nogroup"])
    assert grouped.split() == ["0", "1000", "65534"]  # nogroup by its name in /etc/group
    assert int(_run(runtime, "pids", "sh", "-c", "ps -o pid | wc -l", pid_mode="host")) > 5
    assert (
        _run(runtime, "uts", "hostname", uts_mode="host").strip()
        != runtime.container("uts").id[:12]
    )
    init = _run(runtime, "init", "ps", "-o", "pid,args", init=True)
    assert "1 /sbin/docker-init -- ps -o pid,args" in init
    assert "Read-only file system" in _run(
        runtime, "ro", "sh", "-c", "touch /x 2>&1; touch /tmp/x 2>&1", readonly_rootfs=True
    )
    assert " 4096 " in _run(runtime, "shm", "df", "-k", "/dev/shm", shm_size=4 << 20)


def test_pid_and_ipc_of_another_container(runtime: Runtime, busybox: str) -> None:
    runtime.create_container("private", config(busybox, "sleep", "1000"), host(), {})
    runtime.start_container("private")
    runtime.create_container(
        "joins", config(busybox, "true"), host(ipc_mode="container:private"), {}
    )
    with pytest.raises(Conflict, match="non-shareable IPC"):
        runtime.start_container("joins")
    runtime.create_container(
        "leader", config(busybox, "sh", "-c", "echo shared > /dev/shm/s; sleep 1000"),
        host(ipc_mode="shareable"), {},
    )  # fmt: skip
    runtime.start_container("leader")
    out = _run(
        runtime, "joiner", "sh", "-c", "ps -o args | grep -c 'sleep 1000$'; cat /dev/shm/s",
        pid_mode="container:leader", ipc_mode="container:leader",
    )  # fmt: skip
    assert out == "1\nshared\n"  # it sees the leader's process and its shared memory
    joined = runtime.container("joiner").host_config
    assert joined.pid_mode == f"container:{runtime.container('leader').id}"


def test_refusals_leave_nothing_behind(runtime: Runtime, busybox: str) -> None:
    bad = [
        ({"cap_add": ["NET_WIZARD"]}, 'unknown capability: "CAP_NET_WIZARD"'),
        ({"sysctls": {"vm.swappiness": "1"}}, "not in a separate kernel namespace"),
        ({"sysctls": {"kernel.hostname": "x"}}, "--hostname"),
        ({"sysctls": {"net.ipv4.ip_forward": "1"}, "network_mode": "host"}, "host network"),
        ({"resources": Resources(memory=1 << 20)}, "Minimum memory limit allowed is 6MB"),
        ({"resources": Resources(memory=64 << 20, memory_swap=32 << 20)}, "memoryswap"),
        ({"resources": Resources(nano_cpus=10**9, cpu_period=100000)}, "Nano CPUs and CPU Period"),
        ({"resources": Resources(cpuset_cpus="99")}, "Requested CPUs are not available"),
        ({"resources": Resources(memory_swappiness=101)}, "swappiness range is 0-100"),
        ({"log_config": LogConfig("syslog")}, "no log driver named 'syslog'"),
        ({"log_config": LogConfig("json-file", {"tag": "x"})}, "unknown log opt 'tag'"),
        ({"log_config": LogConfig("local", {"max-file": "0"})}, "max-file cannot be less than 1"),
        ({"restart_policy": RestartPolicy("sometimes")}, "invalid restart policy 'sometimes'"),
        ({"restart_policy": RestartPolicy("always", 3)}, "maximum retry count"),
        ({"restart_policy": RestartPolicy("always"), "auto_remove": True}, "AutoRemove"),
        ({"isolation": "hyperv"}, "Invalid isolation"),
        ({"runtime": "kata"}, "Unknown runtime specified kata"),
        ({"pid_mode": "container:absent"}, "No such container: absent"),
        ({"uts_mode": "private"}, "invalid UTS mode"),
        ({"security_opt": ["seccomp=/profile.json"]}, "without a seccomp profile"),
        ({"security_opt": ["label=level:s0"]}, "without a label profile"),
    ]
    for options, message in bad:
        with pytest.raises((InvalidParameter, NotFound), match=message):
            runtime.create_container("bad", config(busybox, "true"), host(**options), {})
    with pytest.raises(InvalidParameter, match="host's filesystem"):
        runtime.create_container("bad", config(HOST_IMAGE, "true", user="nobody"), host(), {})
    assert runtime.containers(all=True) == []
    assert runtime.volumes() == []
