"""The container API over raw HTTP: the issue's bad-input list with Docker's status codes and
messages (and nothing left half-made), the hijack handshake, log framing, the import stream."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.support.daemon import Daemon

SLEEP = ["sleep", "1000"]


def _create(daemon: Daemon, name: str, body: dict[str, object]) -> tuple[int, str]:
    reply = daemon.request("POST", f"/containers/create?name={name}", body)
    data = reply.json()
    assert isinstance(data, dict)
    return reply.status, str(data.get("message") or data.get("Id"))


def _run(daemon: Daemon, name: str, image: str, *cmd: str, network: str = "bridge") -> str:
    status, container_id = _create(
        daemon, name, {"Image": image, "Cmd": list(cmd), "HostConfig": {"NetworkMode": network}}
    )
    assert status == 201, container_id
    reply = daemon.request("POST", f"/containers/{name}/start")
    assert reply.status == 204, reply.body
    return container_id


def _names(daemon: Daemon) -> set[str]:
    listed = daemon.request("GET", "/containers/json?all=1").json()
    assert isinstance(listed, list)
    return {n.lstrip("/") for c in listed for n in c["Names"]}


@pytest.fixture
def net(daemon: Daemon, names: Callable[[str], str]) -> str:
    name = names("bad")
    reply = daemon.request(
        "POST", "/networks/create", {"Name": name, "IPAM": {"Config": [{"Subnet": "10.76.0.0/24"}]}}
    )
    assert reply.status == 201, reply.body
    return name


def test_create_refusals(
    daemon: Daemon, busybox: str, net: str, containers: Callable[[str], str]
) -> None:
    before = _names(daemon)
    cases: list[tuple[dict[str, object], int, str]] = [
        ({"Image": "busybox:absent"}, 404, "No such image: busybox:absent"),
        (
            {"Image": busybox, "Cmd": ["true"], "HostConfig": {"NetworkMode": "no-such-net"}},
            404,
            "no-such-net",
        ),
        (
            {
                "Image": busybox,
                "Cmd": ["true"],
                "HostConfig": {"NetworkMode": "container:no-such-container"},
            },
            404,
            "No such container: no-such-container",
        ),
        (
            {
                "Image": busybox,
                "Cmd": ["true"],
                "HostConfig": {"NetworkMode": net},
                "NetworkingConfig": {
                    "EndpointsConfig": {net: {"IPAMConfig": {"IPv4Address": "10.99.0.5"}}}
                },
            },
            400,
            "10.99.0.5",
        ),
        (
            {
                "Image": busybox,
                "Cmd": ["true"],
                "NetworkingConfig": {
                    "EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "172.17.0.9"}}}
                },
            },
            400,
            "user specified IP address is supported on user defined networks only",
        ),
        ({"Image": busybox, "HostConfig": {"PortBindings": {"x": []}}}, 400, "invalid port"),
        ({"Image": busybox}, 400, "no command specified"),
        ({"Cmd": ["true"]}, 400, "Image is required"),
    ]
    for body, status, message in cases:
        got = _create(daemon, containers("bad"), body)
        assert got[0] == status, (body, got)
        assert message in got[1], (body, got)
    assert _names(daemon) == before  # nothing half-made


def test_lifecycle_refusals(
    daemon: Daemon, busybox: str, net: str, containers: Callable[[str], str]
) -> None:
    web = containers("web")
    web_id = _run(daemon, web, busybox, *SLEEP, network=net)

    status, message = _create(daemon, web, {"Image": busybox, "Cmd": ["true"]})
    assert status == 409
    assert f'The container name "/{web}" is already in use by container "{web_id}"' in message

    reply = daemon.request("POST", f"/containers/{web}/start")
    assert reply.status == 304
    reply = daemon.request("DELETE", f"/containers/{web}")
    assert reply.status == 409
    assert "You cannot remove a running container" in reply.message

    # Connecting twice, disconnecting what is not connected.
    reply = daemon.request("POST", f"/networks/{net}/connect", {"Container": web})
    assert reply.status == 403, reply.body
    assert "already exists in network" in reply.message
    reply = daemon.request("POST", "/networks/bridge/disconnect", {"Container": web})
    assert reply.status >= 400, reply.body
    assert "is not connected to" in reply.message

    # A static address another container holds.
    taken = containers("taken")
    status, _ = _create(
        daemon,
        taken,
        {
            "Image": busybox,
            "Cmd": SLEEP,
            "HostConfig": {"NetworkMode": net},
            "NetworkingConfig": {
                "EndpointsConfig": {net: {"IPAMConfig": {"IPv4Address": "10.76.0.77"}}}
            },
        },
    )
    assert status == 201
    assert daemon.request("POST", f"/containers/{taken}/start").status == 204
    other = containers("other")
    _run(daemon, other, busybox, *SLEEP)
    reply = daemon.request(
        "POST",
        f"/networks/{net}/connect",
        {"Container": other, "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.76.0.77"}}},
    )
    assert (reply.status, reply.message) == (
        409,
        "Address already in use: 10.76.0.77 in pool 10.76.0.0/24",
    )
    shown = daemon.request("GET", f"/containers/{other}/json").json()
    assert list(shown["NetworkSettings"]["Networks"]) == ["bridge"]  # type: ignore[index]
    attached = daemon.request("GET", f"/networks/{net}").json()
    assert sorted(c["Name"] for c in attached["Containers"].values()) == sorted([web, taken])  # type: ignore[index]

    # exec in, and joining the sandbox of, a stopped container.
    stopped = containers("stopped")
    status, _ = _create(daemon, stopped, {"Image": busybox, "Cmd": ["true"]})
    assert status == 201
    reply = daemon.request("POST", f"/containers/{stopped}/exec", {"Cmd": ["true"]})
    assert reply.status == 409
    assert "is not running" in reply.message
    joiner = containers("joiner")
    status, _ = _create(
        daemon,
        joiner,
        {"Image": busybox, "Cmd": SLEEP, "HostConfig": {"NetworkMode": f"container:{stopped}"}},
    )
    if status == 201:  # Docker checks at start
        reply = daemon.request("POST", f"/containers/{joiner}/start")
        assert reply.status == 409, reply.body
    else:
        assert status == 409

    # Unknown container everywhere: 404 with Docker's message.
    for method, path in [
        ("GET", "/containers/nope/json"),
        ("POST", "/containers/nope/start"),
        ("POST", "/containers/nope/stop"),
        ("POST", "/containers/nope/wait"),
        ("GET", "/containers/nope/logs?stdout=1"),
        ("DELETE", "/containers/nope"),
    ]:
        reply = daemon.request(method, path)
        assert reply.status == 404, (path, reply.body)
        assert reply.message == "No such container: nope"
    assert daemon.request("GET", "/exec/nope/json").status == 404
    assert daemon.request("GET", "/images/busybox:absent/json").status == 404

    reply = daemon.request("POST", f"/containers/{web}/stop?t=1")
    assert reply.status == 204
    reply = daemon.request("POST", f"/containers/{web}/stop?t=1")
    assert reply.status == 304
    assert daemon.request("DELETE", f"/containers/{web}").status == 204


def test_pull_and_bad_queries(daemon: Daemon, busybox: str) -> None:
    reply = daemon.request("POST", "/images/create?fromImage=alpine&tag=3")
    assert reply.status == 404
    assert reply.message.startswith("pull access denied for alpine:3: cnm imports images")
    reply = daemon.request("POST", "/images/create?fromSrc=-&repo=Bad%20Name", b"x")
    assert reply.status == 400
    # Once the progress stream has begun, an error is its last line (as Docker does).
    reply = daemon.request("POST", "/images/create?fromSrc=-&repo=junk", b"not a tarball")
    assert reply.status == 200
    last = json.loads(reply.body.splitlines()[-1])
    assert last["error"].startswith("invalid image archive")
    assert last["errorDetail"] == {"message": last["error"]}
    assert daemon.request("GET", "/images/junk:latest/json").status == 404
    reply = daemon.request("GET", '/containers/json?filters={"colour":["red"]}')
    assert (reply.status, reply.message) == (400, "invalid filter 'colour'")
    reply = daemon.request("POST", "/containers/x/wait?condition=whenever")
    assert reply.status == 400


def test_hijacked_attach_and_logs_framing(
    daemon: Daemon, busybox: str, containers: Callable[[str], str]
) -> None:
    name = containers("frames")
    status, container_id = _create(
        daemon, name, {"Image": busybox, "Cmd": ["sh", "-c", "echo out; echo err >&2"]}
    )
    assert status == 201
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(str(daemon.socket))
    sock.sendall(
        f"POST /v1.47/containers/{name}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
        "Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
    )
    reader = sock.makefile("rb")
    assert reader.readline() == b"HTTP/1.1 101 UPGRADED\r\n"
    headers = {}
    while (line := reader.readline()) != b"\r\n":
        key, _, value = line.decode().partition(":")
        headers[key.lower()] = value.strip()
    assert headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert headers["upgrade"] == "tcp"
    assert daemon.request("POST", f"/containers/{container_id}/start").status == 204
    received = reader.read()
    sock.close()
    frames = []
    while received:
        stream, length = struct.unpack(">BxxxL", received[:8])
        frames.append((stream, received[8 : 8 + length]))
        received = received[8 + length :]
    assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")]

    wait = daemon.request("POST", f"/containers/{name}/wait")
    assert wait.json() == {"StatusCode": 0}
    logs = daemon.request("GET", f"/containers/{name}/logs?stdout=1&stderr=1&tail=2").body
    assert b"\x01\x00\x00\x00\x00\x00\x00\x04out\n" in logs
    assert b"\x02\x00\x00\x00\x00\x00\x00\x04err\n" in logs
    last = daemon.request("GET", f"/containers/{name}/logs?stdout=1&stderr=1&tail=1").body
    assert len(last) == 12 and last in logs  # Docker's tail: the last message of both streams
    reply = daemon.request("GET", f"/containers/{name}/logs")
    assert (reply.status, reply.message) == (
        400,
        "Bad parameters: you must choose at least one stream",
    )
    listed = daemon.request(
        "GET", f"/containers/json?all=1&filters={quote(json.dumps({'id': [container_id]}))}"
    )
    (entry,) = listed.json()  # type: ignore[misc]
    assert entry["State"] == "exited"
    assert entry["Status"].startswith("Exited (0) ")
