"""Docker Compose 1.29.2 (Debian's, built on docker-py) on the container side of a project:
``restart: always`` and ``on-failure`` reported and enforced, named volumes, binds and tmpfs,
capabilities, sysctls, memory and log options applied, ``top``, ``logs``, a service recreated
after a change of its config (Compose reads the image's ContainerConfig then), ``down -v``."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Daemon

COMPOSE = shutil.which("docker-compose")
PROJECT = """\
version: "2.4"
services:
  web:
    image: busybox:local
    command: ["sh", "-c", "echo web up $$MODE; while [ ! -e /www/stop ]; do sleep 0.1; done; rm /www/stop; exit 3"]
    environment:
      MODE: first
    restart: always
    volumes:
      - webdata:/www
      - ./site:/site:ro
    tmpfs: /scratch
    cap_add: [NET_ADMIN]
    sysctls:
      net.core.somaxconn: "1024"
    mem_limit: 64m
    logging:
      driver: json-file
      options:
        max-size: 1m
    stop_grace_period: 1s
  crashy:
    image: busybox:local
    command: ["sh", "-c", "echo crash; exit 1"]
    restart: on-failure:2
    network_mode: none
volumes:
  webdata:
"""


class Compose:
    def __init__(self, daemon: Daemon, directory: Path) -> None:
        self.directory = directory
        self.project = f"cmp{secrets.token_hex(3)}"
        self.env = {"DOCKER_HOST": daemon.host, "PATH": "/usr/bin:/bin", "HOME": str(directory)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        done = subprocess.run(
            [COMPOSE, "-p", self.project, *args],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"docker-compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done


@pytest.fixture
def compose(daemon: Daemon, busybox: str, tmp_path: Path) -> Iterator[Compose]:
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed (scripts/setup.sh --test installs it)")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("hello\n")
    (tmp_path / "docker-compose.yml").write_text(PROJECT)
    project = Compose(daemon, tmp_path)
    yield project
    project("down", "-v", "--timeout", "1", check=False)


def _container(daemon: Daemon, compose: Compose, service: str) -> dict[str, object]:
    name = f"{compose.project}_{service}_1"
    reply = daemon.request("GET", f"/containers/{name}/json")
    assert reply.status == 200, reply.body
    data = reply.json()
    assert isinstance(data, dict)
    return data


def _until(check: object, timeout: float = 20) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)


def test_a_project_with_restart_policies_volumes_and_limits(
    daemon: Daemon, compose: Compose
) -> None:
    compose("up", "-d")
    web = _container(daemon, compose, "web")
    host = web["HostConfig"]
    assert isinstance(host, dict)
    assert host["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert host["CapAdd"] == ["CAP_NET_ADMIN"] and host["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["Memory"] == 64 << 20 and host["Tmpfs"] == {"/scratch": ""}
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    mounts = {m["Destination"]: m for m in web["Mounts"]}  # type: ignore[union-attr]
    assert mounts["/www"]["Name"] == f"{compose.project}_webdata"
    assert mounts["/site"]["RW"] is False
    exec_out = compose(
        "exec", "-T", "web", "sh", "-c", "cat /proc/sys/net/core/somaxconn /site/index.html"
    )
    assert exec_out.stdout == "1024\nhello\n"
    top = compose("top", "web").stdout
    assert "sleep" in top or "sh -c" in top

    first_id = web["Id"]
    compose("exec", "-T", "web", "touch", "/www/stop")  # it exits 3: always restarts it
    _until(lambda: _container(daemon, compose, "web")["RestartCount"] == 1)
    restarted = _container(daemon, compose, "web")
    assert restarted["Id"] == first_id and restarted["State"]["Running"] is True  # type: ignore[index]
    assert compose("logs", "--no-color", "web").stdout.count("web up first") == 2

    _until(lambda: _container(daemon, compose, "crashy")["State"]["Status"] == "exited"  # type: ignore[index]
           and _container(daemon, compose, "crashy")["RestartCount"] == 2)  # fmt: skip
    time.sleep(0.5)
    assert _container(daemon, compose, "crashy")["RestartCount"] == 2

    # A change of config: Compose recreates the service (reading the image's ContainerConfig,
    # which it crashed on without), and the named volume's data stays.
    compose("exec", "-T", "web", "sh", "-c", "echo kept > /www/data")
    project_file = compose.directory / "docker-compose.yml"
    project_file.write_text(project_file.read_text().replace("MODE: first", "MODE: second"))
    recreated = compose("up", "-d", "web")
    assert "Recreating" in recreated.stdout + recreated.stderr
    web = _container(daemon, compose, "web")
    assert web["Id"] != first_id
    assert compose("exec", "-T", "web", "cat", "/www/data").stdout == "kept\n"
    _until(lambda: "web up second" in compose("logs", "--no-color", "web").stdout)

    compose("down", "-v", "--timeout", "1")
    listed = daemon.request("GET", "/volumes").json()
    assert isinstance(listed, dict)
    assert f"{compose.project}_webdata" not in json.dumps(listed)
