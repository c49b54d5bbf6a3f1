"""Hostile input over raw HTTP (issue 10, findings 4 and 5): every request below used to answer
500 with a traceback, or was accepted at create and failed only at start. Each must be a 400 at
create whose message names the field, and must leave nothing behind."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.support.daemon import Daemon

DEEP = 1000  # levels of nesting: well under 1 MiB, far past Python's recursion limit


def _network_names(daemon: Daemon) -> set[str]:
    data = daemon.request("GET", "/networks").json()
    assert isinstance(data, list)
    return {n["Name"] for n in data}


def _container_count(daemon: Daemon) -> int:
    data = daemon.request("GET", "/containers/json?all=1").json()
    assert isinstance(data, list)
    return len(data)


@pytest.mark.parametrize("path", ["/networks/create", "/containers/create"])
def test_deeply_nested_json_is_a_400(daemon: Daemon, path: str) -> None:
    body = '{"Name": "deep", "Image": "busybox:local", "Labels": ' + "[" * DEEP + "]" * DEEP + "}"
    reply = daemon.request("POST", path, body)
    assert reply.status == 400, reply.body
    assert "nested more than" in reply.message


def test_deeply_nested_filters_are_a_400(daemon: Daemon) -> None:
    reply = daemon.request("GET", "/networks?filters=" + quote("[" * 1200 + "]" * 1200))
    assert reply.status == 400, reply.body
    assert "filters" in reply.message


def test_nul_in_a_bridge_name_is_a_400(daemon: Daemon, names: Callable[[str], str]) -> None:
    name = names("nul")
    body = {"Name": name, "Options": {"com.docker.network.bridge.name": "br\u0000x"}}
    reply = daemon.request("POST", "/networks/create", body)
    assert reply.status == 400, reply.body
    assert "com.docker.network.bridge.name" in reply.message
    assert name not in _network_names(daemon)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("WorkingDir", "relative/dir", "working directory"),
        ("Env", ["GOOD=1", "BAD=a\u0000b"], "Env[1]"),
        ("Hostname", "h" * 10_000, "hostname"),
        ("Domainname", "d" * 100, "domain name"),
        ("Cmd", ["sh", "-c", "echo \u0000"], "Cmd[2]"),
    ],
)
def test_process_settings_that_runc_refuses_are_a_400_at_create(
    daemon: Daemon, busybox: str, field: str, value: object, named: str
) -> None:
    before = _container_count(daemon)
    body = {"Image": busybox, "Cmd": ["true"], field: value}
    reply = daemon.request("POST", "/containers/create", body)
    assert reply.status == 400, reply.body
    assert named in reply.message
    assert _container_count(daemon) == before


def test_unbindable_port_ranges_are_a_quick_400_at_create(daemon: Daemon, busybox: str) -> None:
    before = _container_count(daemon)
    started = time.monotonic()
    body = {
        "Image": busybox,
        "Cmd": ["true"],
        "HostConfig": {"PortBindings": {"1-65535/tcp": [{}]}},
    }
    reply = daemon.request("POST", "/containers/create", body)
    assert reply.status == 400, reply.body
    assert "HostConfig.PortBindings" in reply.message
    assert "ephemeral range" in reply.message
    explicit = {"1-65535/tcp": [{"HostPort": "1-65535"}]}
    body["HostConfig"] = {"PortBindings": explicit}
    reply = daemon.request("POST", "/containers/create", body)
    assert reply.status == 400, reply.body
    assert "host sockets" in reply.message
    assert time.monotonic() - started < 5  # it used to bind sockets for 6.5 s, then 500
    assert _container_count(daemon) == before


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("trailing\n", "control characters are not allowed"),
        ("n" * 10_000, "at most 255"),
    ],
)
def test_bad_network_names_are_refused(daemon: Daemon, name: str, reason: str) -> None:
    reply = daemon.request("POST", "/networks/create", {"Name": name})
    assert reply.status == 400, reply.body
    assert reason in reply.message


@pytest.mark.parametrize(
    ("name", "reason"),
    [("trailing\n", "only [a-zA-Z0-9]"), ("c" * 300, "at most 255")],
)
def test_bad_container_names_are_refused(
    daemon: Daemon, busybox: str, name: str, reason: str
) -> None:
    reply = daemon.request(
        "POST", f"/containers/create?name={quote(name)}", {"Image": busybox, "Cmd": ["true"]}
    )
    assert reply.status == 400, reply.body
    assert reason in reply.message


def test_non_ascii_digits_are_refused(
    daemon: Daemon, busybox: str, names: Callable[[str], str]
) -> None:
    name = names("mtu")
    arabic_1500 = "\u0661\u0665\u0660\u0660"
    body = {"Name": name, "Options": {"com.docker.network.driver.mtu": arabic_1500}}
    reply = daemon.request("POST", "/networks/create", body)
    assert reply.status == 400, reply.body
    assert "MTU" in reply.message
    assert name not in _network_names(daemon)
    fullwidth_80 = "\uff18\uff10/tcp"
    for field in ("ExposedPorts", "HostConfig"):
        body = {"Image": busybox, "Cmd": ["true"]}
        if field == "ExposedPorts":
            body["ExposedPorts"] = {fullwidth_80: {}}
        else:
            body["HostConfig"] = {"PortBindings": {fullwidth_80: [{}]}}
        reply = daemon.request("POST", "/containers/create", json.dumps(body))
        assert reply.status == 400, reply.body
        assert "port" in reply.message
    reply = daemon.request("POST", "/containers/nothing/stop?t=" + quote("\uff11"))
    assert reply.status == 400, reply.body


def _errors_logged(daemon: Daemon) -> list[str]:
    return [line for line in daemon.log().splitlines() if "level=error" in line]


def _raw(daemon: Daemon, request: bytes, then_close: bool = False) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(daemon.socket))
        sock.sendall(request)
        if then_close:
            return b""
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_clients_that_go_away_are_not_errors(
    daemon: Daemon, busybox: str, containers: Callable[[str], str]
) -> None:
    before = _errors_logged(daemon)
    for _ in range(3):
        _raw(
            daemon,
            b"POST /networks/create HTTP/1.1\r\nHost: cnm\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"Name":',
            then_close=True,
        )
    name = containers("chatty")
    loop = "while true; do echo hi; sleep 0.02; done"
    body = {"Image": busybox, "Cmd": ["sh", "-c", loop]}
    assert daemon.request("POST", f"/containers/create?name={name}", body).status == 201
    assert daemon.request("POST", f"/containers/{name}/start").status == 204
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(daemon.socket))
        request = f"GET /containers/{name}/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: cnm\r\n\r\n"
        sock.sendall(request.encode())
        assert b"hi" in sock.recv(65536) + sock.recv(65536)
    # The daemon notices the cancelled stream at its next write, within a few lines.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "client went away" not in daemon.log().split(name)[-1]:
        time.sleep(0.05)
    assert daemon.request("DELETE", f"/containers/{name}?force=1").status == 204
    assert _errors_logged(daemon) == before


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: cnm\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: cnm\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    ],
    ids=["url", "header"],
)
def test_over_long_urls_and_headers_answer_dockers_json(
    daemon: Daemon, request_bytes: bytes
) -> None:
    before = _errors_logged(daemon)
    head, _, body = _raw(daemon, request_bytes).partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b"400 Bad Request"), head
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {"message": "the request line or a header is longer than 8190 bytes"}
    assert _errors_logged(daemon) == before
