"""``docker events`` against cnm: Docker's messages for containers, networks and images, kept
ones replayed with ``--since``/``--until``, filters, and a stream that follows as things happen;
through both docker CLIs, docker-py and plain HTTP (its bad input)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import docker
import pytest

from tests.support.daemon import Daemon, DockerCli
from tests.support.runtime import BUSYBOX_TAR

NETWORK_KEYS = {"Type", "Action", "Actor", "scope", "time", "timeNano"}


@pytest.fixture
def client(daemon: Daemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=daemon.host)
    yield client
    client.close()


def _past(docker: DockerCli, since: float, *filters: str) -> list[dict[str, object]]:
    """The kept events since ``since`` up to now, as JSON (the CLI's ``{{json .}}``)."""
    flags = [arg for f in filters for arg in ("--filter", f)]
    out = docker(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--format", "{{json .}}", *flags,
    ).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines()]


def test_a_containers_life_and_its_network(
    docker: DockerCli,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    since = time.time() - 0.5
    net, web = names("evnet"), containers("ev")
    network_id = docker("network", "create", net).stdout.strip()
    docker("run", "-d", "--name", web, "--label", "team=ev", "--network", net, busybox, "sleep", "1000")  # fmt: skip
    container_id = docker("inspect", "-f", "{{.Id}}", web).stdout.strip()
    docker("exec", web, "true")
    docker("stop", "-t", "0", web)
    docker("rm", web)
    docker("network", "rm", net)

    seen = _past(docker, since, f"container={web}")
    actions = [e["Action"] for e in seen]
    # stop -t 0: SIGTERM, then SIGKILL at once (sleep as PID 1 ignores SIGTERM), as Docker
    head = ["create", "start", "exec_create: true ", "exec_start: true ", "exec_die"]
    assert actions[:5] == head and actions[-3:] == ["die", "stop", "destroy"], actions
    kills = seen[5:-3]
    assert [e["Action"] for e in kills] == ["kill", "kill"], actions
    assert [e["Actor"]["Attributes"]["signal"] for e in kills] == ["15", "9"]  # type: ignore[index]
    assert seen[-3]["Actor"]["Attributes"]["exitCode"] == "137"  # type: ignore[index]
    assert seen[4]["Actor"]["Attributes"]["exitCode"] == "0"  # type: ignore[index]
    create = seen[0]
    assert create["Type"] == "container" and create["id"] == container_id
    assert create["from"] == busybox and create["status"] == "create"
    assert create["Actor"] == {
        "ID": container_id,
        "Attributes": {"image": busybox, "name": web, "team": "ev"},
    }

    on_net = _past(docker, since, "type=network", f"network={net}")
    assert [e["Action"] for e in on_net] == ["create", "connect", "disconnect", "destroy"]
    connect = on_net[1]
    assert connect["Actor"] == {
        "ID": network_id,
        "Attributes": {"container": container_id, "name": net, "type": "bridge"},
    }
    assert on_net[0]["Actor"]["Attributes"] == {"name": net, "type": "bridge"}  # type: ignore[index]
    times = [e["timeNano"] for e in on_net]
    assert times == sorted(times) and all(since * 1e9 < t < time.time() * 1e9 for t in times)


def test_the_stream_follows(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    """``docker events`` prints what happens while it runs and ends at ``--until``."""
    name = containers("live")
    until = time.time() + 30
    follower = subprocess.Popen(
        [docker.binary, "events", "--since", f"{time.time():.3f}", "--until", f"{until:.3f}",
         "--filter", f"container={name}", "--format", "{{.Action}} {{.Actor.Attributes.name}}"],
        env=docker.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    destroyed = threading.Event()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(line.strip())
            if line.startswith("destroy"):
                destroyed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        docker("run", "--name", name, busybox, "true")
        docker("rm", name)
        assert destroyed.wait(15), lines
        assert lines[0] == f"create {name}"
        assert lines[-1] == f"destroy {name}"
        assert "die" in " ".join(lines)
    finally:
        follower.kill()
        follower.wait()
        reader.join(5)


def test_image_events_and_docker_py(client: docker.DockerClient, daemon: Daemon) -> None:
    since = time.time() - 0.5
    repo, tag = "evimage", str(int(since * 1000))
    reply = daemon.request(
        "POST",
        f"/images/create?fromSrc=-&repo={repo}&tag={tag}",
        BUSYBOX_TAR.read_bytes(),
        {"Content-Type": "application/x-tar"},
    )
    assert reply.status == 200, reply.body
    image_id = client.images.get(f"{repo}:{tag}").id
    client.images.remove(f"{repo}:{tag}")
    got = list(
        client.events(
            since=since, until=time.time(), filters={"image": f"{repo}:{tag}"}, decode=True
        )
    )
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in got] == [
        ("tag", f"{repo}:{tag}")
    ]
    everything = client.events(since=since, until=time.time(), filters={"type": "image"})
    mine = [e for e in map(json.loads, everything) if e["id"] == image_id]
    assert [e["Action"] for e in mine][-3:] == ["tag", "import", "untag"]
    for event in mine:
        assert set(event) == {
            "status",
            "id",
            "Type",
            "Action",
            "Actor",
            "scope",
            "time",
            "timeNano",
        }
        assert event["Type"] == "image" and event["scope"] == "local"


def test_docker_py_network_events(
    client: docker.DockerClient, names: Callable[[str], str], busybox: str
) -> None:
    since = time.time() - 0.5
    network = client.networks.create(names("pyev"))
    network.remove()
    got = list(
        client.events(
            since=since,
            until=time.time(),
            filters={"network": network.name, "event": ["create", "destroy"]},
            decode=True,
        )
    )
    assert [(e["Type"], e["Action"]) for e in got] == [
        ("network", "create"),
        ("network", "destroy"),
    ]
    assert all(set(e) == NETWORK_KEYS for e in got)
    assert got[0]["Actor"]["ID"] == network.id


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=20&until=10", "`since` time (20) cannot be after `until` time (10)"),
        ("since=yesterday", "invalid value for since"),
        ("until=1.2.3", "invalid value for until"),
        ("filters=" + quote(json.dumps({"bogus": ["x"]})), "invalid filter 'bogus'"),
        ("filters=" + quote(json.dumps({"type": ["nope"]})), "invalid filter 'type=nope'"),
    ],
)
def test_bad_queries_are_400(daemon: Daemon, query: str, message: str) -> None:
    reply = daemon.request("GET", f"/v1.41/events?{query}")
    assert reply.status == 400
    assert message in reply.message


def test_an_until_in_the_past_returns_at_once(daemon: Daemon) -> None:
    started = time.monotonic()
    reply = daemon.request("GET", f"/events?since=0&until={time.time() - 3600:.0f}")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    assert time.monotonic() - started < 5
    for line in reply.body.splitlines():
        assert json.loads(line)["time"] <= time.time() - 3600
