"""Swarm mode's endpoints answer as a Docker daemon outside a swarm (dockerd 20.10's bodies), so
clients that tidy up with ``leave --force`` (docker-py's own tests do) carry on."""

from __future__ import annotations

import docker
import pytest
from docker.errors import APIError

from cnm.api.swarm import NOT_A_MANAGER, NOT_IN_SWARM
from tests.support.daemon import Daemon, DockerCli


def test_the_cli_sees_a_node_outside_a_swarm(docker: DockerCli) -> None:
    leave = docker("swarm", "leave", "--force", check=False)
    assert leave.returncode == 1
    assert f"Error response from daemon: {NOT_IN_SWARM}" in leave.stderr
    for args in (("node", "ls"), ("service", "ls"), ("secret", "ls"), ("config", "ls")):
        listed = docker(*args, check=False)
        assert listed.returncode == 1 and NOT_A_MANAGER in listed.stderr, args
    assert docker("info", "-f", "{{.Swarm.LocalNodeState}}").stdout.strip() == "inactive"


def test_docker_py_gets_503(daemon: Daemon) -> None:
    client = docker.APIClient(base_url=daemon.host, version="1.41")
    try:
        assert client.leave_swarm(force=True) is True  # it takes the 503 as "not in one"
        with pytest.raises(APIError) as left:
            client.leave_swarm()
        assert left.value.status_code == 503 and left.value.explanation == NOT_IN_SWARM
        for call in (client.inspect_swarm, client.nodes, client.services, client.tasks):
            with pytest.raises(APIError) as refused:
                call()
            assert refused.value.status_code == 503
            assert refused.value.explanation == NOT_A_MANAGER
    finally:
        client.close()


@pytest.mark.parametrize("path", ["/swarm/init", "/v1.41/swarm/join"])
def test_joining_a_swarm_is_refused_clearly(daemon: Daemon, path: str) -> None:
    reply = daemon.request("POST", path, {})
    assert reply.status == 501
    assert "cnm does not support swarm mode" in reply.message
