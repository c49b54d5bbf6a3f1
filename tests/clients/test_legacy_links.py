"""Legacy ``--link`` on the default bridge, as dockerd 20.10 does it (the output compared is
dockerd's, taken from the same commands): hosts lines, Docker's variables, HostConfig.Links,
``docker rm --link`` in the CLI's and docker-py's URL forms, a linked container's restart seen
by the linking one, and Docker's refusals."""

from __future__ import annotations

import json
from collections.abc import Callable

import docker
import pytest
from docker.errors import APIError

from tests.support.daemon import Daemon, DockerCli


def _ip(docker: DockerCli, name: str) -> str:
    return docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()


def _hosts_tail(docker: DockerCli, name: str, lines: int) -> list[str]:
    return docker("exec", name, "cat", "/etc/hosts").stdout.splitlines()[-lines:]


def test_links_give_hosts_lines_variables_and_inspect(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    db, web = containers("db"), containers("web")
    docker(
        "run", "-d", "--name", db, "--hostname", "dbhost", "-e", "FOO=bar", "-e", "HOME=/h",
        "--expose", "5432", "--expose", "7000-7002/udp", busybox, "sleep", "1000",
    )  # fmt: skip
    docker(
        "run", "-d", "--name", web, "--add-host", "extra:10.9.9.9",
        "--link", f"{db}:database", "--link", db, busybox, "sleep", "1000",
    )  # fmt: skip
    ip = _ip(docker, db)
    own = _ip(docker, web)
    hostname = docker("inspect", "-f", "{{.Config.Hostname}}", web).stdout.strip()
    assert _hosts_tail(docker, web, 4) == [
        "10.9.9.9\textra",
        f"{ip}\tdatabase dbhost {db}",
        f"{ip}\t{db} dbhost",
        f"{own}\t{hostname}",
    ]
    env = set(docker("exec", web, "env").stdout.splitlines())
    alias = db.upper().replace("-", "_")
    for prefix, name in (("DATABASE", "database"), (alias, db)):
        assert {
            f"{prefix}_NAME=/{web}/{name}",
            f"{prefix}_ENV_FOO=bar",
            f"{prefix}_PORT=tcp://{ip}:5432",
            f"{prefix}_PORT_5432_TCP=tcp://{ip}:5432",
            f"{prefix}_PORT_5432_TCP_ADDR={ip}",
            f"{prefix}_PORT_5432_TCP_PORT=5432",
            f"{prefix}_PORT_5432_TCP_PROTO=tcp",
            f"{prefix}_PORT_7000_UDP_START=udp://{ip}:7000",
            f"{prefix}_PORT_7000_UDP_END=udp://{ip}:7002",
            f"{prefix}_PORT_7000_UDP_PORT_START=7000",
            f"{prefix}_PORT_7000_UDP_PORT_END=7002",
            f"{prefix}_PORT_7001_UDP=udp://{ip}:7001",
        } <= env, prefix
        assert f"{prefix}_ENV_HOME=/h" not in env
    assert "HOME=/root" in env  # the linking container's own
    links = json.loads(docker("inspect", "-f", "{{json .HostConfig.Links}}", web).stdout)
    assert sorted(links) == sorted([f"/{db}:/{web}/database", f"/{db}:/{web}/{db}"])
    bridge = docker("inspect", "-f", "{{json .NetworkSettings.Networks.bridge.Links}}", web)
    assert json.loads(bridge.stdout) is None
    assert docker("exec", web, "ping", "-c1", "-W2", "database").returncode == 0

    # The linked container starts again at another address: the hosts lines follow it.
    docker("stop", "-t", "0", db)
    holder = containers("holder")
    docker("run", "-d", "--name", holder, busybox, "sleep", "1000")  # may take db's address
    docker("start", db)
    moved = _ip(docker, db)
    assert _hosts_tail(docker, web, 3)[:2] == [
        f"{moved}\tdatabase dbhost {db}",
        f"{moved}\t{db} dbhost",
    ]

    # docker rm --link: the link and its line go, both containers stay.
    docker("rm", "--link", f"{web}/database")
    assert json.loads(docker("inspect", "-f", "{{json .HostConfig.Links}}", web).stdout) == [
        f"/{db}:/{web}/{db}"
    ]
    assert "database" not in docker("exec", web, "cat", "/etc/hosts").stdout
    assert docker("inspect", "-f", "{{.State.Running}}", db).stdout.strip() == "true"


def test_docker_py_removes_a_link(
    daemon: Daemon, busybox: str, containers: Callable[[str], str]
) -> None:
    """docker-py's own test_remove_link: the link path's slash reaches the daemon escaped."""
    client = docker.APIClient(base_url=daemon.host, version="1.41")
    try:
        first, second = containers("first"), containers("second")
        client.create_container(busybox, "cat", name=first, stdin_open=True)
        client.start(first)
        client.create_container(
            busybox, "cat", name=second, stdin_open=True,
            host_config=client.create_host_config(links={first: "mylink"}),
        )  # fmt: skip
        client.start(second)
        client.remove_container(f"{second}/mylink", link=True)
        assert client.inspect_container(second)["HostConfig"]["Links"] is None
        assert {c["Names"][0] for c in client.containers(all=True)} >= {f"/{first}", f"/{second}"}
        with pytest.raises(APIError) as gone:
            client.remove_container(f"{second}/mylink", link=True)
        assert gone.value.status_code == 404
        with pytest.raises(APIError) as default:
            client.remove_container(second, link=True)
        assert "cannot remove the default link name" in default.value.explanation
    finally:
        client.close()


def test_what_docker_refuses(
    docker: DockerCli,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    missing = docker("create", "--link", "no-such-container:x", busybox, "true", check=False)
    assert missing.returncode != 0
    assert "could not get container for no-such-container" in missing.stderr
    stopped = containers("stopped")
    docker("create", "--name", stopped, busybox, "true")
    run = docker("run", "--rm", "--link", f"{stopped}:x", busybox, "true", check=False)
    assert run.returncode == 125
    assert f"Cannot link to a non running container: /{stopped} AS /" in run.stderr
    net, elsewhere = names("elsewhere"), containers("elsewhere")
    docker("network", "create", net)
    docker("run", "-d", "--name", elsewhere, "--network", net, busybox, "sleep", "1000")
    run = docker("run", "--rm", "--link", f"{elsewhere}:x", busybox, "true", check=False)
    assert f"Cannot link to /{elsewhere}, as it does not belong to the default network" in (
        run.stderr
    )
    on_host = containers("onhost")
    docker("create", "--name", on_host, "--network", "host", busybox, "true")
    host = docker("create", "--link", f"{on_host}:x", busybox, "true", check=False)
    assert "host type networking can't be used with links" in host.stderr
