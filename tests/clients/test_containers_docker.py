"""Containers on cnm's networks, driven by the real docker CLIs (28.x and 20.10).

The flow of the issue's "What a user can do": import, network create, a web server with an
alias, a client reaching it over the network (its route checked first: via eth0), exec, a
sidecar sharing the web server's sandbox over localhost, live connect and disconnect seen from
inside, inspect/ps/logs/stop/rm; then foreground runs with their output and exit codes.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable

from tests.support.daemon import DockerCli
from tests.support.runtime import BUSYBOX_TAR

WEB_COMMAND = [
    "sh",
    "-c",
    "mkdir -p /www && echo hello-from-web > /www/index.html && echo web-started && "
    "exec httpd -f -p 80 -h /www",
]


def _inspect(docker: DockerCli, ref: str) -> dict[str, object]:
    (data,) = json.loads(docker("inspect", ref).stdout)
    assert isinstance(data, dict)
    return data


def _ip(docker: DockerCli, ref: str, network: str) -> str:
    template = f"{{{{(index .NetworkSettings.Networks {json.dumps(network)}).IPAddress}}}}"
    return docker("inspect", "-f", template, ref).stdout.strip()


def test_import_lists_and_inspects(docker: DockerCli, busybox: str) -> None:
    # A second import of the same bytes under another tag finds the same image.
    tag = "busybox:again-legacy" if docker.is_legacy else "busybox:again"
    out = docker("import", str(BUSYBOX_TAR), tag).stdout
    image_id = out.strip().splitlines()[-1]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id), out
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert f"{busybox} {image_id[7:19]}" in listed
    assert f"{tag} {image_id[7:19]}" in listed
    assert docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip() == image_id
    assert docker("rmi", tag).stdout.strip() == f"Untagged: {tag}"
    pull = docker("pull", "alpine", check=False)
    assert pull.returncode == 1
    assert "it never contacts a registry" in pull.stderr


def test_user_flow(
    docker: DockerCli,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    net, other = names("net"), names("other")
    docker("network", "create", "--subnet", "10.71.0.0/24", net)
    docker("network", "create", "--subnet", "10.72.0.0/24", other)
    web, probe, side = containers("web"), containers("probe"), containers("side")

    web_id = docker(
        "run", "-d", "--name", web, "--network", net, "--network-alias", "www", busybox,
        *WEB_COMMAND,
    ).stdout.strip()  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{64}", web_id)
    web_ip = _ip(docker, web, net)
    assert web_ip.startswith("10.71.0.")

    # The client's route to the server leaves through eth0, before any packet is sent.
    docker("run", "-d", "--name", probe, "--network", net, busybox, "sleep", "1000")
    route = docker("exec", probe, "ip", "route", "get", web_ip).stdout
    assert f"{web_ip} dev eth0" in route
    fetched = docker(
        "run", "--rm", "--network", net, busybox, "timeout", "5", "wget", "-qO-",
        f"http://{web_ip}/",
    ).stdout  # fmt: skip
    assert fetched == "hello-from-web\n"

    addresses = docker("exec", web, "ip", "-4", "addr").stdout
    assert f"inet {web_ip}/24" in addresses
    docker("exec", "-d", web, "touch", "/tmp/flag")
    docker("exec", web, "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do [ -e /tmp/flag ] && exit 0; sleep 0.1; done; exit 1")  # fmt: skip
    failed = docker("exec", web, "sh", "-c", "echo to-err >&2; exit 6", check=False)
    assert (failed.returncode, failed.stderr) == (6, "to-err\n")

    # A sidecar in web's sandbox reaches the server on localhost.
    docker("run", "-d", "--name", side, "--network", f"container:{web}", busybox, "sleep", "1000")
    local = docker("exec", side, "timeout", "5", "wget", "-qO-", "http://127.0.0.1/").stdout
    assert local == "hello-from-web\n"

    # Live connect and disconnect, seen from inside the container and in network inspect.
    docker("network", "connect", "--alias", "web2", other, web)
    inside = docker("exec", web, "ip", "-4", "addr", "show", "eth1").stdout
    assert "inet 10.72.0." in inside
    (shown,) = json.loads(docker("network", "inspect", other).stdout)
    assert [c["Name"] for c in shown["Containers"].values()] == [web]
    assert list(shown["Containers"]) == [web_id]
    docker("network", "disconnect", other, web)
    assert "10.72.0." not in docker("exec", web, "ip", "-4", "addr").stdout

    data = _inspect(docker, web)
    assert data["Name"] == f"/{web}"
    assert data["State"]["Status"] == "running"  # type: ignore[index]
    settings = data["NetworkSettings"]
    assert isinstance(settings, dict)
    assert settings["SandboxKey"]
    endpoint = settings["Networks"][net]
    assert endpoint["IPAddress"] == web_ip
    assert "www" in endpoint["Aliases"]
    ps = docker("ps", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert any(line.startswith(f"{web} Up ") for line in ps), ps
    assert docker("logs", web).stdout == "web-started\n"
    assert docker("logs", "--tail", "0", web).stdout == ""

    docker("stop", "-t", "1", side)
    docker("stop", "-t", "1", web)
    stopped = docker("ps", "-a", "--filter", f"name={web}", "--format", "{{.Status}}").stdout
    assert stopped.startswith("Exited ("), stopped
    assert docker("rm", web).stdout.strip() == web
    assert docker("rm", "-f", probe, side).stdout.split() == [probe, side]


def test_foreground_run_output_and_exit_code(docker: DockerCli, busybox: str) -> None:
    hi = docker("run", "--rm", busybox, "echo", "hi")
    assert (hi.returncode, hi.stdout) == (0, "hi\n")
    three = docker(
        "run", "--rm", busybox, "sh", "-c", "echo out; echo err >&2; exit 3", check=False
    )
    assert (three.returncode, three.stdout, three.stderr) == (3, "out\n", "err\n")


def test_foreground_run_keeps_the_container_without_rm(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    name = containers("fg")
    result = docker("run", "--name", name, busybox, "sh", "-c", "echo kept; exit 7", check=False)
    assert (result.returncode, result.stdout) == (7, "kept\n")
    state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout
    assert state.split() == ["exited", "7"]
    assert docker("logs", name).stdout == "kept\n"
    assert docker("start", "-a", name, check=False).stdout == "kept\n"


def test_run_of_a_missing_command_fails_at_once(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    """A start that fails lets the attached CLI go (it used to wait forever for an exit) and
    --rm still removes the container; the CLI exits 127 with runc's error, as with Docker."""
    name = containers("missing")
    command = [docker.binary, "run", "--rm", "--name", name, busybox, "/nonexistent"]
    result = subprocess.run(
        command, env=docker.env, capture_output=True, text=True, timeout=20, check=False
    )
    assert result.returncode == 127, result.stderr
    assert 'exec: "/nonexistent": stat /nonexistent: no such file or directory' in result.stderr
    assert docker("inspect", name, check=False).returncode != 0
    detached = containers("missing-d")
    result = docker("run", "-d", "--name", detached, busybox, "/nonexistent", check=False)
    assert result.returncode == 127, result.stderr
    assert "no such file or directory" in result.stderr
    state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", detached).stdout
    assert state.split() == ["created", "127"]
    three = docker("run", "--rm", busybox, "sh", "-c", "exit 3", check=False)
    assert three.returncode == 3
