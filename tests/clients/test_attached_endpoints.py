"""A network with an endpoint joined to a sandbox, seen through the API and the clients.

The daemon cannot make endpoints yet (that needs containers), so this test serves the API
application in-process over a controller that it drives directly: the main thread enters a
fresh namespace before anything starts, and the server thread and its worker threads inherit
it. What it checks: 403 "has active endpoints" on delete (API, docker CLIs, cnm CLI), the
``Containers`` section of inspect, and that prune and ``dangling`` see the network as in use.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from cnm.api.common import DaemonInfo
from cnm.api.server import make_app
from cnm.controller import ControllerConfig
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest, SandboxOptions
from cnm.osl.namespace import delete_netns, setns
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller
from tests.support.daemon import Daemon, DockerCli, make_netns
from tests.support.netns import unmount_namespaces_under

CONTAINER_ID = "c0ffee" * 10 + "c0fe"


class _ServerThread:
    """The API application on a Unix socket, served by an event loop in its own thread."""

    def __init__(self, app: web.Application, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.path = path

    async def _start(self) -> None:
        await self.runner.setup()
        await web.UnixSite(self.runner, str(self.path)).start()

    def __enter__(self) -> _ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Attached:
    daemon: Daemon  # only its request/cnm helpers; there is no daemon process
    network_id: str
    endpoint_id: str


@pytest.fixture
def attached(tmp_path: Path) -> Iterator[Attached]:
    netns = make_netns()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    setns(netns.fd)
    (tmp_path / "data").mkdir()
    store = SqliteStore(tmp_path / "data" / "cnm.db")
    controller = build_controller(ControllerConfig(exec_root=tmp_path / "exec"), store)
    try:
        controller.start()
        network = controller.create_network(
            NetworkRequest(name="busy", ipam_config=[IpamRequest(subnet="10.61.0.0/24")])
        )
        sandbox = controller.create_sandbox(SandboxOptions(container_id=CONTAINER_ID))
        endpoint = controller.create_endpoint(network.id, EndpointOptions(name="web"))
        controller.join(endpoint.id, sandbox.id)
        info = DaemonInfo("test", str(tmp_path / "data"), str(tmp_path / "exec"))
        with _ServerThread(make_app(controller, info), tmp_path / "cnm.sock"):
            yield Attached(Daemon(tmp_path, netns), network.id, endpoint.id)
        controller.leave(endpoint.id)
        controller.delete_endpoint(endpoint.id)
        controller.delete_sandbox(sandbox.id)
        controller.delete_network(network.id)
    finally:
        controller.close()
        store.close()
        setns(home)
        os.close(home)
        unmount_namespaces_under(tmp_path)
        netns.close()
        delete_netns(netns.path)


def test_api_shows_and_protects_attached_network(attached: Attached) -> None:
    api = attached.daemon
    shown = api.request("GET", "/networks/busy").json()
    assert isinstance(shown, dict)
    (container,) = shown["Containers"].items()
    assert container[0] == CONTAINER_ID
    assert set(container[1]) == {"Name", "EndpointID", "MacAddress", "IPv4Address", "IPv6Address"}
    assert container[1]["Name"] == "web"
    assert container[1]["EndpointID"] == attached.endpoint_id
    assert container[1]["IPv4Address"].startswith("10.61.0.")
    assert container[1]["IPv4Address"].endswith("/24")
    assert container[1]["IPv6Address"] == ""

    reply = api.request("DELETE", "/networks/busy")
    assert reply.status == 403
    assert "has active endpoints" in reply.message

    assert api.request("POST", "/networks/prune").json() == {"NetworksDeleted": None}
    dangling = api.request("GET", '/networks?filters={"dangling":["true"]}').json()
    assert "busy" not in [n["Name"] for n in dangling]  # type: ignore[union-attr]

    cli = api.cnm("network", "rm", "busy")
    assert cli.returncode == 1
    assert "Error response from daemon:" in cli.stderr
    assert "has active endpoints" in cli.stderr


def test_docker_clis_see_the_container(attached: Attached, docker: DockerCli) -> None:
    docker.env["DOCKER_HOST"] = attached.daemon.host
    (network,) = json.loads(docker("network", "inspect", "busy").stdout)
    assert list(network["Containers"]) == [CONTAINER_ID]
    name = docker("network", "inspect", "-f", "{{range .Containers}}{{.Name}}{{end}}", "busy")
    assert name.stdout.strip() == "web"
    removed = docker("network", "rm", "busy", check=False)
    assert removed.returncode == 1
    assert "has active endpoints" in removed.stderr
