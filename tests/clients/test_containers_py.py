"""docker-py 7 runs containers on cnm: run detached, exec_run, logs, wait, remove, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import docker
import pytest
from docker.errors import APIError, ImageNotFound, NotFound

from tests.support.daemon import Daemon


@pytest.fixture
def client(daemon: Daemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=daemon.host)
    yield client
    client.close()


def test_run_exec_logs_wait_remove(
    client: docker.DockerClient,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    network = client.networks.create(names("py"), ipam=None)
    container = client.containers.run(
        busybox,
        ["sh", "-c", "echo started; echo oops >&2; sleep 1000"],
        name=containers("py"),
        network=network.name,
        detach=True,
    )
    assert container.status in ("created", "running")
    container.reload()
    assert container.status == "running"
    address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    assert address

    code, output = container.exec_run(["ip", "-4", "addr", "show", "eth0"])
    assert code == 0
    assert f"inet {address}/" in output.decode()
    code, output = container.exec_run(["sh", "-c", "echo to-err >&2; exit 4"], demux=True)
    assert code == 4
    assert output == (None, b"to-err\n")

    assert container.logs(stdout=True, stderr=False) == b"started\n"
    assert container.logs(stdout=False, stderr=True) == b"oops\n"
    assert client.containers.list(filters={"name": container.name}) == [container]
    network.reload()
    assert [c.name for c in network.containers] == [container.name]

    container.kill()
    assert container.wait(timeout=10)["StatusCode"] == 137
    container.reload()
    assert container.status == "exited"
    container.remove()
    with pytest.raises(NotFound):
        client.containers.get(container.name)


def test_exec_in_stopped_container_and_errors(
    client: docker.DockerClient, busybox: str, containers: Callable[[str], str]
) -> None:
    container = client.containers.create(busybox, ["true"], name=containers("stopped"))
    with pytest.raises(APIError) as refused:
        container.exec_run(["true"])
    assert refused.value.status_code == 409
    with pytest.raises(ImageNotFound):
        client.containers.create("busybox:absent", ["true"])
    with pytest.raises(APIError) as conflict:
        client.containers.create(busybox, ["true"], name=container.name)
    assert conflict.value.status_code == 409
