"""macvlan networks through the real docker CLIs (28.x and 20.10): Docker's flags and inspect
fields, containers on a LAN (``tests/kernel/lan.py``: a veth whose parent end is in the
daemon's namespace and whose other end, in an "outside" namespace, holds the router), names
through the embedded DNS, ``-p`` ignored as Docker 20.10 does, bad input, and a daemon
restart with containers on the LAN.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Daemon, DockerCli, running_daemon
from tests.support.docker_shapes import DOCKER_NETWORK_KEYS
from tests.support.lan import Lan, lan
from tests.support.runtime import BUSYBOX_TAR

WEB = ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]  # fmt: skip


def _inspect(docker: DockerCli, *args: str) -> dict[str, Any]:
    (data,) = json.loads(docker(*args).stdout)
    assert isinstance(data, dict)
    return data


def _endpoint(docker: DockerCli, container: str, network: str) -> dict[str, Any]:
    settings = _inspect(docker, "inspect", container)["NetworkSettings"]
    return settings["Networks"][network]  # type: ignore[no-any-return]


def _outside(made: Lan, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={made.outside}", *args],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )


def _ping_router(docker: DockerCli, container: str, router: str) -> None:
    assert f"{router} dev eth0" in docker("exec", container, "ip", "route", "get", router).stdout
    docker("exec", container, "ping", "-c1", "-W2", router)


def test_containers_on_a_lan(
    docker: DockerCli,
    busybox: str,
    daemon: Daemon,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    net, web, probe = names("mv"), containers("web"), containers("probe")
    with lan(daemon.netns.path, ["10.171.0.1/24"]) as made:
        docker(
            "network", "create", "-d", "macvlan", "--subnet", "10.171.0.0/24",
            "--gateway", "10.171.0.1", "--aux-address", "printer=10.171.0.2",
            "-o", f"parent={made.parent}", "-o", "macvlan_mode=bridge", net,
        )  # fmt: skip
        shown = _inspect(docker, "network", "inspect", net)
        assert set(shown) == DOCKER_NETWORK_KEYS
        assert (shown["Driver"], shown["Scope"], shown["Internal"]) == ("macvlan", "local", False)
        assert shown["Options"] == {"parent": made.parent, "macvlan_mode": "bridge"}
        assert shown["IPAM"]["Config"] == [
            {
                "Subnet": "10.171.0.0/24",
                "Gateway": "10.171.0.1",
                "AuxiliaryAddresses": {"printer": "10.171.0.2"},
            }
        ]

        docker("run", "-d", "--name", web, "--network", net, busybox, *WEB)
        # -p on a macvlan-only container: Docker 20.10 starts it and publishes nothing.
        docker("run", "-d", "--name", probe, "--network", net, "-p", "8080:80", busybox, "sleep", "1000")  # fmt: skip
        assert docker("port", probe).stdout == ""
        web_ep, probe_ep = _endpoint(docker, web, net), _endpoint(docker, probe, net)
        assert (web_ep["IPAddress"], probe_ep["IPAddress"]) == ("10.171.0.3", "10.171.0.4")
        assert web_ep["Gateway"] == "10.171.0.1"
        assert web_ep["MacAddress"] == "02:42:0a:ab:00:03"

        _ping_router(docker, web, "10.171.0.1")
        _ping_router(docker, probe, "10.171.0.1")
        neighbours = made.neighbours()
        assert neighbours["10.171.0.3"] == web_ep["MacAddress"]
        assert neighbours["10.171.0.4"] == probe_ep["MacAddress"]

        # Names through the embedded DNS, as on any user-defined network.
        assert "nameserver 127.0.0.11" in docker("exec", probe, "cat", "/etc/resolv.conf").stdout
        fetched = docker("exec", probe, "timeout", "5", "wget", "-qO-", f"http://{web}/").stdout
        assert fetched == "hello-from-web\n"
        # --link on a user-defined network: an alias only the linking container resolves.
        linker = containers("linker")
        docker("run", "-d", "--name", linker, "--network", net, "--link", f"{web}:www", busybox, "sleep", "1000")  # fmt: skip
        linked = docker("exec", linker, "timeout", "5", "wget", "-qO-", "http://www/").stdout
        assert linked == "hello-from-web\n"
        assert _endpoint(docker, linker, net)["Links"] == [f"{web}:www"]
        unlinked = docker("exec", probe, "timeout", "5", "wget", "-qO-", "http://www/", check=False)
        assert unlinked.returncode != 0 and "bad address 'www'" in unlinked.stderr, unlinked
        legacy = docker("run", "--rm", "--link", f"{web}:www", busybox, "true", check=False)
        assert legacy.returncode == 125
        assert f"Cannot link to /{web}, as it does not belong to the default network" in (
            legacy.stderr
        )
        # The LAN reaches the container at its own address: no port publishing needed.
        route = _outside(made, "ip", "route", "get", "10.171.0.3").stdout
        assert "dev wire0" in route
        got = _outside(made, "timeout", "5", "busybox", "wget", "-qO-", "http://10.171.0.3/")
        assert got.stdout == "hello-from-web\n", got.stderr

        listed = _inspect(docker, "network", "inspect", net)["Containers"]
        assert sorted((c["Name"], c["MacAddress"]) for c in listed.values()) == sorted(
            [
                (web, web_ep["MacAddress"]),
                (probe, probe_ep["MacAddress"]),
                (linker, _endpoint(docker, linker, net)["MacAddress"]),
            ]
        )
        docker("rm", "-f", web, probe, linker)


def test_internal_network_and_bad_input(
    docker: DockerCli,
    busybox: str,
    daemon: Daemon,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    island, box = names("island"), containers("box")
    docker("network", "create", "-d", "macvlan", "--internal", "--subnet", "10.172.0.0/24", island)
    assert _inspect(docker, "network", "inspect", island)["Internal"] is True
    docker("run", "-d", "--name", box, "--network", island, busybox, "sleep", "1000")
    assert "default" not in docker("exec", box, "ip", "route").stdout
    docker("rm", "-f", box)

    with lan(daemon.netns.path, ["10.173.0.1/24"]) as made:
        taken = names("taken")
        docker("network", "create", "-d", "macvlan", "--subnet", "10.173.0.0/24", "-o", f"parent={made.parent}", taken)  # fmt: skip
        refusals = {
            f"network {taken} is already using parent interface {made.parent}": [
                "-o", f"parent={made.parent}", "-o", "macvlan_mode=vepa",
            ],
            "no 802.1Q VLAN support (CONFIG_VLAN_8021Q, module 8021q)": [
                "-o", f"parent={made.parent}.50",
            ],
            "vlan id must be between 1-4094, received: 5000": ["-o", f"parent={made.parent}.5000"],
            "requested macvlan mode 'hub' is not valid": ["-o", "macvlan_mode=hub"],
            "unknown option 'color' for the macvlan driver": ["-o", "color=red"],
        }  # fmt: skip
        for message, args in refusals.items():
            result = docker("network", "create", "-d", "macvlan", *args, names("bad"), check=False)
            assert result.returncode == 1, result
            assert result.stderr.startswith("Error response from daemon: "), result.stderr
            assert message in result.stderr, result.stderr
        result = docker("network", "create", "-d", "ipvlan", names("bad"), check=False)
        assert result.returncode == 1
        assert "IPvlan support (CONFIG_IPVLAN, module ipvlan)" in result.stderr, result.stderr
        networks = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert not [name for name in networks if name.startswith("bad-")]


def test_daemon_restart_keeps_containers_on_the_lan(tmp_path: Path) -> None:
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox fixture at {BUSYBOX_TAR}")
    with running_daemon(tmp_path) as daemon, lan(daemon.netns.path, ["10.174.0.1/24"]) as made:
        docker = DockerCli("/usr/bin/docker", {"PATH": "/usr/bin:/bin", "DOCKER_HOST": daemon.host, "HOME": str(tmp_path)})  # fmt: skip
        if not Path(docker.binary).exists():
            docker = DockerCli("/usr/local/bin/docker", docker.env)
        docker("import", str(BUSYBOX_TAR), "bb:t")
        docker("network", "create", "-d", "macvlan", "--subnet", "10.174.0.0/24", "-o", f"parent={made.parent}", "lan")  # fmt: skip
        docker("run", "-d", "--name", "up", "--network", "lan", "bb:t", "sleep", "1000")
        try:
            _ping_router(docker, "up", "10.174.0.1")
            assert daemon.stop() == 0
            daemon.start()
            _ping_router(docker, "up", "10.174.0.1")
            docker("network", "disconnect", "lan", "up")
            assert "eth0" not in docker("exec", "up", "ip", "-o", "link").stdout
            docker("network", "connect", "lan", "up")
            _ping_router(docker, "up", "10.174.0.1")
        finally:
            if daemon.process is None:
                daemon.start()
            docker("rm", "-f", "up")
