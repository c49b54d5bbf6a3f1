"""The container features Docker's CLIs lean on, driven by both docker CLIs: volumes, binds,
``--mount`` and ``--tmpfs``; ``docker cp`` both ways; ``diff``, ``commit``, ``top``, ``pause``,
``stats``, ``update``, ``container prune``; ``logs`` with ``--until``/``--since``/``-t``;
``exec -u/-w`` and a missing command's 126; capabilities, sysctls, memory; restart policies;
log drivers; and the refusals of what cnm cannot honour."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.daemon import Daemon, DockerCli


def _inspect(docker: DockerCli, name: str, template: str) -> str:
    return docker("inspect", "-f", template, name).stdout.strip()


def test_volumes_binds_mounts_and_tmpfs(
    docker: DockerCli,
    busybox: str,
    containers: Callable[[str], str],
    volumes: Callable[[str], str],
    tmp_path: Path,
) -> None:
    volume = volumes("data")
    assert docker("volume", "create", "--label", "team=net", volume).stdout.strip() == volume
    listed = docker("volume", "ls", "--filter", "label=team=net", "--format", "{{.Name}}")
    assert volume in listed.stdout.split()
    shown = json.loads(docker("volume", "inspect", volume).stdout)[0]
    assert shown["Driver"] == "local" and shown["Labels"] == {"team": "net"}
    assert shown["Mountpoint"].endswith(f"/volumes/{volume}/_data")
    bound = tmp_path / "bound"
    bound.mkdir()
    (bound / "host.txt").write_text("from the host\n")
    writer = containers("writer")
    docker(
        "run", "--name", writer, "-v", f"{volume}:/data", "-v", f"{bound}:/host:ro",
        "--mount", f"type=bind,source={bound},target=/rw", "--tmpfs", "/scratch:size=1m",
        busybox, "sh", "-c",
        "cat /host/host.txt > /data/copied; echo rw > /rw/made; df -k /scratch | tail -1",
    )  # fmt: skip
    assert (bound / "made").read_text() == "rw\n"
    reader = containers("reader")
    out = docker(
        "run", "--name", reader, "--volumes-from", f"{writer}:ro", busybox, "cat", "/data/copied"
    )
    assert out.stdout == "from the host\n"
    mounts = json.loads(_inspect(docker, writer, "{{json .Mounts}}"))
    by_destination = {m["Destination"]: m for m in mounts}
    assert by_destination["/data"]["Name"] == volume and by_destination["/data"]["RW"] is True
    assert by_destination["/host"]["Source"] == str(bound)
    assert by_destination["/host"]["RW"] is False and by_destination["/host"]["Mode"] == "ro"
    assert _inspect(docker, writer, "{{json .HostConfig.Tmpfs}}") == '{"/scratch":"size=1m"}'
    in_use = docker("volume", "rm", volume, check=False)
    assert in_use.returncode == 1 and "volume is in use" in in_use.stderr
    docker("rm", writer, reader)
    docker("volume", "rm", volume)
    bad = docker(
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/no/such/dir,target=/x",
        busybox,
        "true",
        check=False,
    )
    assert bad.returncode != 0 and "bind source path does not exist" in bad.stderr


def test_cp_diff_commit_top_pause_and_prune(
    docker: DockerCli, busybox: str, containers: Callable[[str], str], tmp_path: Path
) -> None:
    name = containers("files")
    docker("run", "-d", "--name", name, busybox, "sh", "-c", "echo made > /made; sleep 1000")
    source = tmp_path / "in.txt"
    source.write_text("copied in\n")
    docker("cp", str(source), f"{name}:/tmp/")
    assert docker("exec", name, "cat", "/tmp/in.txt").stdout == "copied in\n"
    deadline = time.monotonic() + 10
    while "made" not in docker("exec", name, "ls", "/").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    docker("cp", f"{name}:/made", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "made\n"
    sized = json.loads(docker("inspect", "--size", "--format", "{{json .}}", name).stdout)
    assert sized["SizeRw"] >= len("copied in\n") and sized["SizeRootFs"] > sized["SizeRw"]
    diff = docker("diff", name).stdout.splitlines()
    assert "A /made" in diff and "C /tmp" in diff and "A /tmp/in.txt" in diff
    image = f"committed-{name}:1"
    docker("commit", "--change", "CMD cat /made", name, image)
    try:
        run = containers("from-commit")
        assert docker("run", "--name", run, image).stdout == "made\n"
        top = docker("top", name).stdout.splitlines()
        assert top[0].split()[:2] == ["UID", "PID"] and any(
            line.endswith("sleep 1000") for line in top
        )
        docker("pause", name)
        assert _inspect(docker, name, "{{.State.Status}} {{.State.Paused}}") == "paused true"
        assert "(Paused)" in docker("ps", "--filter", f"name={name}").stdout
        docker("unpause", name)
        assert _inspect(docker, name, "{{.State.Status}}") == "running"
        stats = json.loads(docker("stats", "--no-stream", "--format", "{{json .}}", name).stdout)
        assert stats["Name"] == name and stats["PIDs"] == "1" and "/" in stats["MemUsage"]
        pruned = docker("container", "prune", "-f").stdout
        assert run[:0] == "" and "Total reclaimed space" in pruned
        assert docker("ps", "-aq", "--filter", f"name={run}").stdout == ""
        assert _inspect(docker, name, "{{.State.Running}}") == "true"  # a running one stays
    finally:
        docker("rmi", "-f", image, check=False)


def test_logs_filters_exec_options_and_126(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    name = containers("talk")
    docker(
        "run",
        "-d",
        "--name",
        name,
        busybox,
        "sh",
        "-c",
        "echo first; sleep 1.5; echo second; sleep 1000",
    )
    deadline = time.monotonic() + 15
    while "second" not in docker("logs", name).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stamped = docker("logs", "-t", name).stdout.splitlines()
    assert len(stamped) == 2 and stamped[0].endswith(" first") and "T" in stamped[0].split()[0]
    first_time = stamped[0].split()[0]
    later = docker("logs", "--since", stamped[1].split()[0], name).stdout
    assert later == "second\n"
    earlier = docker("logs", "--until", first_time, name).stdout
    assert earlier == "first\n"
    assert docker("logs", "--tail", "1", name).stdout == "second\n"
    assert docker("exec", "-u", "nobody", name, "id", "-un").stdout == "nobody\n"
    assert docker("exec", "-w", "/etc", name, "pwd").stdout == "/etc\n"
    missing = docker("exec", name, "no-such-command", check=False)
    assert missing.returncode == 126
    assert "executable file not found" in missing.stdout + missing.stderr
    nouser = docker("exec", "-u", "ghost", name, "true", check=False)
    assert nouser.returncode == 126 and "unable to find user ghost" in nouser.stdout + nouser.stderr


def test_capabilities_sysctls_memory_and_update(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    name = containers("tuned")
    docker(
        "run", "-d", "--name", name, "--cap-add", "NET_ADMIN", "--sysctl", "net.ipv4.ip_forward=1",
        "--memory", "64m", "--cpu-shares", "512", "--pids-limit", "100", busybox, "sleep", "1000",
    )  # fmt: skip
    assert docker("exec", name, "ip", "link", "set", "lo", "mtu", "1300").returncode == 0
    assert docker("exec", name, "cat", "/proc/sys/net/ipv4/ip_forward").stdout == "1\n"
    limit = docker("exec", name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert int(limit) == 64 << 20
    shown = _inspect(
        docker,
        name,
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{json .HostConfig.CapAdd}}",
    )
    assert shown == f'{64 << 20} {128 << 20} 512 100 ["CAP_NET_ADMIN"]'
    docker("update", "--restart", "on-failure:3", name)
    docker("update", "--memory", "96m", "--memory-swap", "192m", name)  # the policy stays
    limit = docker("exec", name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert int(limit) == 96 << 20
    assert (
        _inspect(
            docker,
            name,
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        )
        == "on-failure:3"
    )
    info = docker(
        "info", "--format",
        "{{json .Plugins.Volume}} {{json .Plugins.Log}} {{.MemoryLimit}} {{.LoggingDriver}} {{.DefaultRuntime}}",
    ).stdout.strip()  # fmt: skip
    assert info == '["local"] ["json-file","local","none"] true json-file runc'
    plain = containers("plain")
    refused = docker(
        "run", "--name", plain, busybox, "ip", "link", "set", "lo", "mtu", "1300", check=False
    )
    assert refused.returncode != 0  # without NET_ADMIN, as on Docker
    for args, message in (
        (["--network", "host", "--sysctl", "net.core.somaxconn=9"], "host network namespace"),
        (["--memory", "1m"], "Minimum memory limit allowed is 6MB"),
        (["--cap-add", "NET_WIZARD"], "unknown capability"),
        (["--log-driver", "syslog"], "no log driver named 'syslog'"),
        (["--storage-opt", "size=1G"], "storage-opt"),
        (["--cgroup-parent", "/elsewhere"], "cgroup-parent"),
    ):
        bad = docker("run", "--rm", *args, busybox, "true", check=False)
        assert bad.returncode != 0 and message in bad.stderr, (args, bad.stderr)


def test_restart_policies_and_log_drivers(
    docker: DockerCli, busybox: str, containers: Callable[[str], str], daemon: Daemon
) -> None:
    name = containers("again")
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--restart",
        "always",
        busybox,
        "sh",
        "-c",
        "echo up; sleep 0.2; exit 2",
    )
    deadline = time.monotonic() + 20
    while int(_inspect(docker, name, "{{.RestartCount}}")) < 2:
        assert time.monotonic() < deadline, docker("logs", name).stdout
        time.sleep(0.1)
    assert _inspect(docker, name, "{{.HostConfig.RestartPolicy.Name}}") == "always"
    assert docker("logs", name).stdout.count("up\n") >= 2
    docker("stop", "-t", "1", name)
    count = _inspect(docker, name, "{{.RestartCount}}")
    time.sleep(0.6)
    assert _inspect(docker, name, "{{.State.Status}} {{.RestartCount}}") == f"exited {count}"
    quiet = containers("quiet")
    assert (
        docker("run", "--name", quiet, "--log-driver", "none", busybox, "echo", "shown").stdout
        == "shown\n"
    )
    no_logs = docker("logs", quiet, check=False)
    assert no_logs.returncode != 0 and "does not support reading" in no_logs.stderr
    local = containers("local")
    docker(
        "run",
        "--name",
        local,
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1m",
        busybox,
        "echo",
        "kept",
    )
    assert docker("logs", local).stdout == "kept\n"
    assert (
        _inspect(
            docker, local, "{{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}}"
        )
        == 'local {"max-size":"1m"}'
    )
    reply = daemon.request("GET", f"/containers/{local}/logs?stdout=1")
    assert reply.body == b"\x01\x00\x00\x00\x00\x00\x00\x05kept\n"
