"""Docker Compose (Debian's docker-compose 1.29.2, built on docker-py) runs a project of four
services over three networks against cnm as it runs it against dockerd 20.10: ports on a
service whose first network is internal, eth0 and the default route by Docker's endpoint order,
aliases, links, a static address with a link-local one, Config.MacAddress through Compose's
reconnect, host-gateway, the domain name, ``network_mode: service:``, an external network,
driver options, ``--scale`` and ``down``. Images are never pulled: the project uses
``busybox:local``, which the session imports."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import DOCKER_CLIS, Daemon, DockerCli

PROJECT = Path(__file__).parent / "compose" / "three-networks.yml"
COMPOSE = shutil.which("docker-compose")

pytestmark = pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed")


@dataclass
class Project:
    name: str
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        result = subprocess.run(
            [COMPOSE, "--no-ansi", "-p", self.name, "-f", str(PROJECT), *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            pytest.fail(f"docker-compose {' '.join(args)} failed:\n{result.stderr}")
        return result

    def container(self, service: str, number: int = 1) -> str:
        return f"{self.name}_{service}_{number}"


@pytest.fixture
def project(
    daemon: Daemon, busybox: str, names: Callable[[str], str], tmp_path: Path
) -> Iterator[Project]:
    shared = names("shared")
    assert daemon.request("POST", "/networks/create", {"Name": shared}).status == 201
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DOCKER_HOST": daemon.host,
        "WEB_PORT": "18181",
        "BACK_PREFIX": "172.31.251",
        "SHARED": shared,
    }
    made = Project(f"cp{secrets.token_hex(3)}", env)
    try:
        yield made
    finally:
        made("down", "-t", "1", check=False)


@pytest.fixture
def run(project: Project) -> Callable[..., str]:
    """The docker CLI on the project's daemon, to look at what Compose made: its output."""
    if not DOCKER_CLIS:
        pytest.skip("no docker CLI on this machine")
    cli = DockerCli(DOCKER_CLIS[0], project.env)
    return lambda *args: cli(*args).stdout


def test_the_project_runs_as_on_docker(
    daemon: Daemon, project: Project, run: Callable[..., str]
) -> None:
    up = project("up", "-d")
    assert "ports cannot be published" not in up.stderr
    web, api = project.container("web"), project.container("api")
    sidecar, worker = project.container("sidecar"), project.container("worker")
    for name in (web, api, sidecar, worker):
        assert run("inspect", "-f", "{{.State.Running}}", name).strip() == "true", name

    # web: created on its internal network (the first by name, Compose's primary) with its
    # ports, then connected to the others; eth0 and the default route by Docker's order.
    assert (
        run("inspect", "-f", "{{.HostConfig.NetworkMode}}", web).strip() == f"{project.name}_back"
    )
    front = json.loads(run("network", "inspect", f"{project.name}_front"))[0]
    gateway = front["IPAM"]["Config"][0]["Gateway"]
    routes = run("exec", web, "ip", "route")
    assert f"default via {gateway} dev eth0" in routes
    back_addresses = run("exec", web, "ip", "-4", "-o", "addr", "show", "eth2")
    assert "inet 172.31.251.10/24" in back_addresses and "inet 169.254.10.10/16" in back_addresses
    # mac_address: Config.MacAddress, on the network mode's endpoint after Compose's reconnect
    assert run("exec", web, "cat", "/sys/class/net/eth2/address") == "02:42:0a:0b:0c:0d\n"
    assert run("exec", web, "cat", "/sys/class/net/eth0/mtu") == "1400\n"  # driver_opts
    assert run("exec", web, "cat", "/proc/sys/kernel/domainname") == "example.org\n"
    hosts = run("exec", web, "cat", "/etc/hosts")
    bridge_gateway = run("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "bridge")
    assert f"{bridge_gateway.strip()}\thost.docker.internal\n" in hosts
    assert "10.1.2.3\tstatic.example\n" in hosts
    assert "\tweb.example.org web\n" in hosts
    assert json.loads(run("inspect", "-f", "{{json .HostConfig.Dns}}", web)) == ["10.0.0.53"]
    published = daemon_fetch(daemon, "http://127.0.0.1:18181/")
    assert published == "hello-web\n"

    # api: the link alias and the network alias resolve; the link shows on its endpoint.
    for name in ("frontend", "www", "web"):
        got = run("exec", api, "timeout", "5", "wget", "-qO-", f"http://{name}/")
        assert got == "hello-web\n", name
    links = json.loads(
        run("inspect", "-f", f"{{{{json (index .NetworkSettings.Networks \"{project.name}_front\").Links}}}}", api)
    )  # fmt: skip
    assert f"{web}:frontend" in links
    shared = project.env["SHARED"]
    assert shared in json.loads(run("inspect", "-f", "{{json .NetworkSettings.Networks}}", api))
    # sidecar shares web's sandbox; worker reaches web over the internal network only.
    assert run("exec", sidecar, "wget", "-qO-", "http://127.0.0.1/") == "hello-web\n"
    ping = run("exec", worker, "ping", "-c1", "-W2", "web")
    assert "172.31.251.10" in ping
    assert "default" not in run("exec", worker, "ip", "route")

    # --scale: three workers answer to the service's name.
    project("up", "-d", "--scale", "worker=3")
    lookup = run("exec", api, "nslookup", "worker")
    assert len([line for line in lookup.splitlines() if "172.31.251." in line]) == 3, lookup

    project("down", "-t", "1")
    left = run("ps", "-a", "--filter", f"name={project.name}", "--format", "{{.Names}}")
    assert left == ""
    networks = run("network", "ls", "--format", "{{.Name}}").split()
    assert not [n for n in networks if n.startswith(project.name)]
    assert shared in networks  # external: left alone


def daemon_fetch(daemon: Daemon, url: str) -> str:
    """``url`` fetched from the daemon's namespace (the host, to the containers)."""
    return subprocess.run(
        ["nsenter", f"--net={daemon.netns.path}", "timeout", "5", "busybox", "wget", "-qO-", url],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout  # fmt: skip
