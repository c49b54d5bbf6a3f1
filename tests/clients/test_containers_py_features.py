"""docker-py 7 on the container features: stats in Docker's shape with per-interface counters,
get/put archives, streamed logs a line per item, detach keys on attach and exec sockets,
exec as another user, volumes, commit and the image's ContainerConfig."""

from __future__ import annotations

import io
import socket
import tarfile
import time
from collections.abc import Callable, Iterator

import docker
import pytest

from tests.support.daemon import Daemon


@pytest.fixture
def client(daemon: Daemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=daemon.host)
    yield client
    client.close()


def _closed(sock: socket.socket) -> bool:
    """Docker's check after a detach: the connection is gone (EPIPE, or EOF on a read)."""
    try:
        sock.sendall(b"are you there\n")
        return sock.recv(128) == b""
    except OSError:
        return True


def test_stats_have_dockers_shape_and_interface_counters(
    client: docker.DockerClient,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    network = client.networks.create(names("stats"), ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.88.0.0/24", gateway="10.88.0.1")]
    ))  # fmt: skip
    container = client.containers.run(
        busybox, ["sh", "-c", "ping -c 3 -W 2 10.88.0.1; sleep 1000"],
        name=containers("stats"), network=network.name, detach=True,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while "3 packets received" not in container.logs().decode():
        assert time.monotonic() < deadline, container.logs()
        time.sleep(0.1)
    stats = container.stats(stream=False)  # the second reading: precpu_stats filled
    for key in ("read", "preread", "pids_stats", "blkio_stats", "cpu_stats", "precpu_stats",
                "memory_stats", "networks", "name", "id"):  # fmt: skip
        assert key in stats
    assert stats["name"] == "/" + container.name and stats["id"] == container.id
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["precpu_stats"]["system_cpu_usage"] > 0
    assert stats["memory_stats"]["usage"] > 0 and stats["memory_stats"]["limit"] > 0
    eth0 = stats["networks"]["eth0"]
    assert eth0["tx_packets"] >= 3 and eth0["rx_packets"] >= 3 and eth0["rx_bytes"] > 0
    assert set(stats["networks"]) == {"eth0"}
    stream = container.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    assert (
        second["precpu_stats"]["cpu_usage"]["total_usage"]
        == first["cpu_stats"]["cpu_usage"]["total_usage"]
    )
    stream.close()


def test_archives_logs_and_commit(
    client: docker.DockerClient, busybox: str, containers: Callable[[str], str]
) -> None:
    container = client.containers.create(
        busybox, ["sh", "-c", "cat /in/file; echo one; echo two; sleep 1000"],
        name=containers("arch"), volumes=["/in"],
    )  # fmt: skip
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        info = tarfile.TarInfo("file")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"given\n"))
    assert container.put_archive("/in", payload.getvalue())
    container.start()
    lines = []
    for line in container.logs(stream=True, follow=True):
        lines.append(line)
        if len(lines) == 3:
            break
    assert lines == [b"given\n", b"one\n", b"two\n"]  # one item per line, as Docker frames them
    bits, stat = container.get_archive("/in/file")
    assert stat["name"] == "file" and stat["size"] == 6
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
        assert tar.extractfile("file").read() == b"given\n"  # type: ignore[union-attr]
    image = container.commit(repository="py-committed", tag="1", changes=["ENV FROM_COMMIT=1"])
    try:
        attrs = image.attrs
        assert attrs["ContainerConfig"]["Cmd"] == [
            "sh",
            "-c",
            "cat /in/file; echo one; echo two; sleep 1000",
        ]
        assert "FROM_COMMIT=1" in attrs["Config"]["Env"] and attrs["Container"] == container.id
        imported = client.images.get(busybox).attrs
        assert imported["ContainerConfig"]["Cmd"] is None  # what Compose 1.29 reads: present
    finally:
        client.images.remove(image.id, force=True)


def test_detach_keys_on_attach_and_exec_sockets(
    client: docker.DockerClient, daemon: Daemon, busybox: str, containers: Callable[[str], str]
) -> None:
    api = docker.APIClient(base_url=daemon.host)
    try:
        container = client.containers.run(
            busybox, "cat", name=containers("keys"), stdin_open=True, tty=True, detach=True
        )
        for keys, typed in ((None, [b"\x10", b"\x11"]), ("ctrl-x", [b"\x18"])):
            params = {"stdin": True, "stream": True, **({"detachKeys": keys} if keys else {})}
            sock = api.attach_socket(container.id, params)._sock
            for key in typed:
                sock.sendall(key)
                time.sleep(0.3)  # each key on its own, as typed
            assert _closed(sock)
        exec_id = api.exec_create(container.id, "cat", stdin=True, tty=True)["Id"]
        sock = api.exec_start(exec_id, tty=True, socket=True)._sock
        sock.sendall(b"\x10")
        time.sleep(0.3)
        sock.sendall(b"\x11")
        time.sleep(0.3)
        assert _closed(sock)
        assert api.exec_inspect(exec_id)["Running"] is True  # detached, not ended
        container.reload()
        assert container.status == "running"
        code, out = container.exec_run("id -un", user="nobody")
        assert (code, out) == (0, b"nobody\n")
        code, out = container.exec_run("no-such-command")
        assert code == 126 and b"executable file not found" in out
    finally:
        api.close()


def test_named_volumes_through_docker_py(
    client: docker.DockerClient,
    busybox: str,
    containers: Callable[[str], str],
    volumes: Callable[[str], str],
) -> None:
    volume = client.volumes.create(name=volumes("py"), labels={"k": "v"})
    assert client.volumes.get(volume.name).attrs["Labels"] == {"k": "v"}
    client.containers.run(
        busybox, ["sh", "-c", "echo hello > /data/x"], volumes=[f"{volume.name}:/data"],
        name=containers("w"),
    )  # fmt: skip
    out = client.containers.run(
        busybox, ["cat", "/data/x"], volumes=[f"{volume.name}:/data"], name=containers("r")
    )
    assert out == b"hello\n"
    assert volume.name in [v.name for v in client.volumes.list(filters={"dangling": False})]
