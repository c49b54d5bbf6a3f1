"""Through the daemon: `-p` on `cnm run`, the daemon's --ip, `cnm port`, `docker port` and
inspect's NetworkSettings.Ports, and the ports gone with the container."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import DOCKER_CLIS, Daemon, running_daemon
from tests.support.runtime import BUSYBOX, BUSYBOX_TAR

SERVE = "echo hello > /tmp/index.html && exec httpd -f -p 80 -h /tmp"
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def _fetch(daemon: Daemon, url: str) -> str:
    """An HTTP GET from the daemon's namespace (the host)."""
    for _ in range(50):
        done = subprocess.run(
            ["nsenter", f"--net={daemon.netns.path}", sys.executable, "-c", FETCH, url],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if done.returncode == 0:
            return done.stdout.strip()
    raise AssertionError(f"{url}: {done.stderr}")


def test_ports_through_the_daemon(tmp_path: Path) -> None:
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox fixture at {BUSYBOX_TAR}")
    with running_daemon(tmp_path / "daemon", "--ip", "127.0.0.1") as daemon:
        reply = daemon.request(
            "POST",
            "/images/create?fromSrc=-&repo=busybox&tag=local",
            BUSYBOX_TAR.read_bytes(),
            {"Content-Type": "application/x-tar"},
        )
        assert reply.status == 200, reply.body
        _ok(daemon.cnm("network", "create", "--subnet", "10.95.0.0/24", "pub"))
        try:
            _ok(
                daemon.cnm(
                    "run", "-d", "--name", "web", "--network", "pub",
                    "-p", "8080:80", "-p", "0.0.0.0:8081:80", "-p", "[::1]:8082:80",
                    BUSYBOX, "sh", "-c", SERVE,
                )
            )  # fmt: skip
            expected = [
                "80/tcp -> 0.0.0.0:8081",
                "80/tcp -> 127.0.0.1:8080",  # the daemon's --ip
                "80/tcp -> [::1]:8082",
            ]
            assert sorted(_ok(daemon.cnm("port", "web")).splitlines()) == expected
            for docker in DOCKER_CLIS:
                env = {"DOCKER_HOST": daemon.host, "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
                done = subprocess.run(
                    [docker, "port", "web"], capture_output=True, text=True, env=env, timeout=30
                )
                shown = sorted(_ok(done).splitlines())
                if docker == "/usr/bin/docker":  # 20.10 prints IPv6 addresses without brackets
                    shown = [line.replace("::1:", "[::1]:") for line in shown]
                assert shown == expected, docker
            (info,) = json.loads(_ok(daemon.cnm("inspect", "web")))
            assert sorted(info["NetworkSettings"]["Ports"]["80/tcp"], key=str) == [
                {"HostIp": "0.0.0.0", "HostPort": "8081"},
                {"HostIp": "127.0.0.1", "HostPort": "8080"},
                {"HostIp": "::1", "HostPort": "8082"},
            ]
            assert "127.0.0.1:8080->80/tcp" in _ok(daemon.cnm("ps"))
            for port in ("http://127.0.0.1:8080/", "http://127.0.0.1:8081/", "http://[::1]:8082/"):
                assert _fetch(daemon, port) == "hello"
        finally:
            # A stopped daemon leaves its containers running: remove it whatever happened.
            removed = daemon.cnm("rm", "-f", "web")
        assert removed.returncode == 0, removed.stderr
        listing = subprocess.run(
            ["nsenter", f"--net={daemon.netns.path}", "nft", "list", "table", "inet", "cnm"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "8080" not in listing and "10.95.0.2" not in listing
