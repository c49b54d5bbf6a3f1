"""Remote plugins through the daemon, driven by the real docker CLI: ``docker network create -d
<plugin> --ipam-driver <plugin>`` without a restart, containers on the plugin's network reaching
each other by name, clear errors for unknown and hanging plugins, and a daemon restart.

The daemon runs in a namespace of its own (tests/support/daemon.py) with its plugin
directories in the test's tmp directory; the sample plugins run in that namespace too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DOCKER_CLIS, Daemon, DockerCli, running_daemon
from tests.support.runtime import BUSYBOX_TAR

from .processes import SamplePlugin

PLUGIN_TIMEOUT = "2"


def _daemon_args(root: Path) -> list[str]:
    return [
        "--plugin-dir",
        str(root / "plugins"),
        "--plugin-spec-dir",
        str(root / "specs"),
        "--plugin-timeout",
        PLUGIN_TIMEOUT,
    ]


def _plugin(daemon: Daemon, name: str, *options: str) -> SamplePlugin:
    plugin = SamplePlugin.make(
        name,
        daemon.root / "plugins" / f"{name}.sock",
        daemon.root,
        *options,
        netns=daemon.netns.path,
    )
    plugin.start()
    return plugin


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("plugin-daemon")
    with running_daemon(root, *_daemon_args(root)) as running:
        plugins = [
            _plugin(running, "sample", "--implements", "NetworkDriver,IpamDriver"),
            _plugin(running, "slowpoke", "--misbehave", "CreateNetwork=slow"),
        ]
        try:
            yield running
        finally:
            for plugin in plugins:
                plugin.stop()


@pytest.fixture(scope="module")
def docker(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> DockerCli:
    if not DOCKER_CLIS:
        pytest.skip("no docker CLI on this machine")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path_factory.mktemp("home")),
        "DOCKER_HOST": daemon.host,
        "DOCKER_CONFIG": str(tmp_path_factory.mktemp("docker-config")),
    }
    cli = DockerCli(DOCKER_CLIS[0], env)
    cli("import", str(BUSYBOX_TAR), "busybox:local")
    return cli


def _until(check: object, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_containers_on_a_plugin_network_reach_each_other(docker: DockerCli) -> None:
    docker("network", "create", "-d", "sample", "--ipam-driver", "sample", "-o", "x=1", "plugnet")
    (shown,) = json.loads(docker("network", "inspect", "plugnet").stdout)
    assert (shown["Driver"], shown["IPAM"]["Driver"]) == ("sample", "sample")
    assert shown["IPAM"]["Config"] == [{"Subnet": "10.210.0.0/24", "Gateway": "10.210.0.1"}]
    assert shown["Options"] == {"x": "1"}

    docker(
        "run", "-d", "--name", "web", "--network", "plugnet", "busybox:local",
        "sh", "-c", "mkdir /www && echo hi-from-plugin > /www/index.html && exec httpd -f -p 80 -h /www",
    )  # fmt: skip
    addr = docker("exec", "web", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert "inet 10.210.0.2/24" in addr
    route = docker("exec", "web", "ip", "route").stdout
    assert "default via 10.210.0.1 dev eth0" in route

    def fetched() -> bool:
        result = docker(
            "run", "--rm", "--network", "plugnet", "busybox:local",
            "timeout", "3", "wget", "-qO-", "http://web/", check=False,
        )  # fmt: skip
        return result.stdout == "hi-from-plugin\n"

    _until(fetched, "the web container to answer over the plugin's network")
    docker("rm", "-f", "web")
    docker("network", "rm", "plugnet")
    assert "plugnet" not in docker("network", "ls", "--format", "{{.Name}}").stdout


def test_unknown_and_hanging_plugins_fail_clearly(docker: DockerCli) -> None:
    unknown = docker("network", "create", "-d", "nosuch", "n1", check=False)
    assert unknown.returncode == 1
    assert "could not find network driver 'nosuch': plugin not found" in unknown.stderr
    started = time.monotonic()
    slow = docker("network", "create", "-d", "slowpoke", "n2", check=False)
    assert slow.returncode == 1
    assert (
        f"NetworkDriver.CreateNetwork: plugin slowpoke did not answer within {PLUGIN_TIMEOUT}s"
        in slow.stderr
    )
    assert time.monotonic() - started < 10
    names = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "n1" not in names and "n2" not in names


def test_plugin_networks_survive_a_daemon_restart(tmp_path: Path) -> None:
    with running_daemon(tmp_path, *_daemon_args(tmp_path)) as daemon:
        plugin = _plugin(daemon, "sample")
        try:
            created = daemon.request(
                "POST", "/networks/create", {"Name": "kept", "Driver": "sample"}
            )
            assert created.status == 201, created.body
            daemon.stop()
            plugin.forget_calls()
            daemon.start()
            assert plugin.methods() == ["Plugin.Activate", "NetworkDriver.GetCapabilities"]
            shown = daemon.request("GET", "/networks/kept").json()
            assert isinstance(shown, dict) and shown["Driver"] == "sample"
            assert daemon.request("DELETE", "/networks/kept").status == 204
            assert plugin.methods()[-1] == "NetworkDriver.DeleteNetwork"
        finally:
            plugin.stop()
