"""What a paused container answers: every call returns promptly (its frozen processes never
take part), as Docker's do; none waits on the frozen cgroup."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.daemon import Daemon

CALLS = [
    ("GET", "/containers/paused1/archive?path=/etc/hostname"),
    ("HEAD", "/containers/paused1/archive?path=/etc"),
    ("GET", "/containers/paused1/top"),
    ("GET", "/containers/paused1/stats?stream=0"),
    ("GET", "/containers/paused1/changes"),
    ("POST", "/containers/paused1/update"),
    ("POST", "/commit?container=paused1&pause=1"),
    ("POST", "/containers/paused1/exec"),
    ("GET", "/containers/paused1/logs?stdout=1"),
]


@pytest.fixture
def paused(daemon: Daemon, busybox: str) -> Iterator[str]:
    body = {"Image": busybox, "Cmd": ["sleep", "600"]}
    assert daemon.request("POST", "/containers/create?name=paused1", body).status == 201
    try:
        assert daemon.request("POST", "/containers/paused1/start").status == 204
        assert daemon.request("POST", "/containers/paused1/pause").status == 204
        yield "paused1"
    finally:
        assert daemon.request("DELETE", "/containers/paused1?force=1").status == 204


@pytest.mark.parametrize(("method", "path"), CALLS, ids=[f"{m} {p}" for m, p in CALLS])
def test_calls_on_a_paused_container_return(
    paused: str, daemon: Daemon, method: str, path: str
) -> None:
    body = {"Cmd": ["true"]} if path.endswith("/exec") else ({} if method == "POST" else None)
    reply = daemon.request(method, path, body)
    assert reply.status < 500, reply.body
    if reply.status >= 400 and method != "HEAD":
        assert "paused" in json.loads(reply.body)["message"]
    state = json.loads(daemon.request("GET", f"/containers/{paused}/json").body)["State"]
    assert state["Paused"] is True or path.startswith("/commit")
