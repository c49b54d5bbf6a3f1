"""A property-based fuzzer against the Engine API (issue 10): for every operation of
docs/openapi.yaml, requests drawn from its schema and requests that break it, sent to the real
daemon. No answer may be a server error (500, or any 5xx the document does not list for the
operation), and every error must be Docker's JSON ``{"message": ...}`` (the CNI routes': the
CNI protocol's ``{"code": ..., "msg": ...}``).

The run is bounded: ``CNM_FUZZ_EXAMPLES`` requests per operation (default 25: about 900
requests, well under a minute). Set it higher for a deeper run; the summary line gives the
count. The calls that hold their connection by design (attach, wait, an exec's start, a followed
log) are sent in their non-blocking forms only. Everything the fuzzer made is removed after.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.daemon import Daemon
from tests.support.openapi import Operation, Request, load_document, operations, requests

EXAMPLES = int(os.environ.get("CNM_FUZZ_EXAMPLES", "25"))
DOCUMENT = load_document()
COUNTS: Counter[str] = Counter()  # requests per operation
STATUSES: Counter[int] = Counter()  # answers per status


@pytest.fixture(scope="module")
def targets(daemon: Daemon, busybox: str) -> Iterator[dict[str, list[str]]]:
    """Objects for the fuzzer to find: a network, a running container that stops on SIGTERM,
    a created one, an exec. Afterwards everything not there before is removed."""
    before = _inventory(daemon)
    assert daemon.request("POST", "/networks/create", {"Name": "fuzz-net"}).status == 201
    loop = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
    for name, cmd in (("fuzz-run", ["sh", "-c", loop]), ("fuzz-new", ["true"])):
        body = {"Image": busybox, "Cmd": cmd, "HostConfig": {"NetworkMode": "fuzz-net"}}
        assert daemon.request("POST", f"/containers/create?name={name}", body).status == 201
    assert daemon.request("POST", "/containers/fuzz-run/start").status == 204
    made = daemon.request("POST", "/containers/fuzz-run/exec", {"Cmd": ["true"]})
    assert made.status == 201, made.body
    exec_id = json.loads(made.body)["Id"]
    yield {
        "ref": ["fuzz-run", "fuzz-new", "fuzz-net", "bridge", "none"],
        "id": [exec_id],
        "name": ["fuzz-new", "fuzz-x", "fuzz-net2"],
        "Image": [busybox],
        "NetworkMode": ["fuzz-net", "bridge", "host", "none", "container:fuzz-run"],
        "Container": ["fuzz-run", "fuzz-new"],
        "Name": ["fuzz-net2", "fuzz-net"],
        "Cmd": [["true"], ["sh", "-c", loop]],
        "container": ["fuzz-run"],
        "Subnet": ["10.97.0.0/24", "fd00:97::/64"],
        "Env": [["A=1"], []],
        "Hostname": ["fuzzhost", ""],
        "Domainname": ["example.test", ""],
        "WorkingDir": ["/", "/tmp", ""],
        "Dns": [["10.0.0.53"], []],
        "DnsSearch": [["example.test"], []],
        "ExtraHosts": [["db:10.0.0.9"], []],
        "Links": [[]],
        "Binds": [[]],
        "ExposedPorts": [{"80/tcp": {}}, {}],
        "PortBindings": [{"80/tcp": [{"HostPort": ""}]}, {}],
        "Aliases": [["fuzz-alias"], []],
        "MacAddress": ["02:42:0a:00:00:09", ""],
        "Driver": ["bridge", "null"],
        "Options": [{}],
        "Labels": [{"fuzz": "yes"}, {}],
    }
    after = _inventory(daemon)
    refused = []
    for kind, path in (
        ("containers", "/containers/{}?force=1"),
        ("networks", "/networks/{}"),
        ("images", "/images/{}?force=1"),
        ("volumes", "/volumes/{}?force=1"),
    ):
        for made in after[kind] - before[kind]:
            reply = daemon.request("DELETE", path.format(made))
            if reply.status not in (200, 204, 404):
                refused.append((kind, made[:12], reply.status, reply.body))
    assert refused == [], "the fuzzer's objects could not all be removed"
    # Nothing it made is left. (What was there before may be gone: its prunes and deletes are
    # as real as any client's.)
    left = _inventory(daemon)
    assert {kind: left[kind] - before[kind] for kind in left} == {
        "containers": set(),
        "networks": set(),
        "images": set(),
        "volumes": set(),
    }


def _inventory(daemon: Daemon) -> dict[str, set[str]]:
    containers = daemon.request("GET", "/containers/json?all=1").json()
    networks = daemon.request("GET", "/networks").json()
    images = daemon.request("GET", "/images/json").json()
    volumes = daemon.request("GET", "/volumes").json()["Volumes"] or []
    assert isinstance(containers, list) and isinstance(networks, list)
    assert isinstance(images, list)
    return {
        "volumes": {v["Name"] for v in volumes},
        "containers": {c["Id"] for c in containers},
        "networks": {n["Id"] for n in networks},
        "images": {i["Id"] for i in images},
    }


def _overrides(operation: Operation) -> dict[str, st.SearchStrategy[str]]:
    """Forms of the holding calls, and of stop's timeout, that return promptly."""
    bounded = st.sampled_from(["0", "1", "-1", "x", "", "\uff11"])
    fixed: dict[str, st.SearchStrategy[str]] = {"t": bounded, "timeout": bounded}
    if operation.name == "GET /containers/{ref}/logs":
        fixed["follow"] = st.sampled_from(["0", "false", ""])
    if operation.name == "POST /containers/{ref}/attach":
        fixed["stream"] = st.sampled_from(["0", ""])
        fixed["stdin"] = st.sampled_from(["0", ""])
    if operation.name == "GET /containers/{ref}/stats":
        fixed["stream"] = st.sampled_from(["0", "false"])
    if operation.name == "POST /containers/{ref}/wait":
        # Valid conditions only on containers that are not running (fuzz-new runs `true`).
        fixed["ref"] = st.sampled_from(["fuzz-new", "zz-none", "fuzz-net"])
        fixed["condition"] = st.sampled_from(["bogus", "", "not-running", "sideways"])
    if operation.name == "DELETE /images/{name}":
        # Never the session's image: any prefix of its id would name it.
        fixed["name"] = st.sampled_from(["zz-none", "zz-none:latest", "busybox:nope"])
    if operation.name == "POST /containers/{ref}/kill":
        # A stopped process would turn a later stop into its full timeout.
        fixed["signal"] = st.sampled_from(["", "SIGUSR1", "HUP", "15", "SIGBOGUS", "99", "-1"])
    return fixed


def _send(daemon: Daemon, request: Request) -> tuple[int, bytes]:
    reply = daemon.request(request.method, request.path, request.body, request.headers)
    return reply.status, reply.body


# Held open by design (a stream until the client goes): fuzzed in their bounded forms below.
HOLDING = {"POST /exec/{id}/start", "GET /events", "GET /cnm/topology/events"}
FUZZED = [op for op in operations(DOCUMENT) if op.name not in HOLDING]


@pytest.mark.parametrize("operation", FUZZED, ids=lambda op: op.name)
def test_no_server_errors(
    daemon: Daemon,
    targets: dict[str, list[str]],
    operation: Operation,
    record_property: Callable[[str, object], None],
) -> None:
    allowed_5xx = {code for code in operation.responses if code >= 500 and code != 500}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(requests(DOCUMENT, operation, targets, _overrides(operation)))
    def check(request: Request) -> None:
        status, body = _send(daemon, request)
        COUNTS[operation.name] += 1
        STATUSES[status] += 1
        assert status < 500 or status in allowed_5xx, (request, status, body)
        if status >= 400 and request.method != "HEAD":  # a HEAD answer has no body
            error = json.loads(body)
            assert isinstance(error, dict), body
            if operation.path.startswith("/cnm/cni/"):  # the CNI protocol's own error shape
                assert isinstance(error.get("code"), int) and isinstance(error.get("msg"), str)
            else:
                assert isinstance(error.get("message"), str), body

    check()
    record_property("requests", COUNTS[operation.name])


def test_exec_start_detached(daemon: Daemon, targets: dict[str, list[str]]) -> None:
    """An exec's start holds the connection unless detached: fuzzed in that form."""

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from([*targets["id"], "nope", ""]),
        st.fixed_dictionaries({"Detach": st.just(True)}, optional={"Tty": st.booleans()}),
    )
    def check(exec_id: str, body: dict[str, object]) -> None:
        reply = daemon.request("POST", f"/exec/{exec_id or 'x'}/start", body)
        COUNTS["POST /exec/{id}/start"] += 1
        STATUSES[reply.status] += 1
        assert reply.status < 500, reply.body

    check()


def test_events_until_a_moment(daemon: Daemon, targets: dict[str, list[str]]) -> None:
    """The event stream ends at ``until``: fuzzed with one always given."""

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from(["1", "0", "1700000000", "-5", "x", "2020-01-01T00:00:00Z", "\uff11"]),
        st.one_of(st.none(), st.text(max_size=20)),
        st.one_of(st.none(), st.text(max_size=40)),
    )
    def check(until: str, since: str | None, filters: str | None) -> None:
        query = {"until": until, "since": since, "filters": filters}
        path = "/events?" + urlencode({k: v for k, v in query.items() if v is not None})
        reply = daemon.request("GET", path)
        COUNTS["GET /events"] += 1
        STATUSES[reply.status] += 1
        assert reply.status < 500, reply.body

    check()


def test_summary(targets: dict[str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """The run's size, printed (``-s`` shows it): the requests sent per operation."""
    total = sum(COUNTS.values())
    with capsys.disabled():
        answers = ", ".join(f"{code}: {n}" for code, n in sorted(STATUSES.items()))
        print(f"\nfuzzer: {total} requests over {len(COUNTS)} operations, 0 server errors")
        print(f"fuzzer: answers by status: {answers}")
    assert total >= EXAMPLES * len(FUZZED) // 2
