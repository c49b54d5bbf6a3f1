"""Finding plugins as Docker does: sockets, ``.spec`` and ``.json`` files in the configured
directories (temporary ones here, never Docker's real ones), and the activation handshake."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnm.errors import InvalidParameter, NotFound, Unavailable
from cnm.plugins.client import PluginClient
from cnm.plugins.discovery import PluginConfig, PluginManager, locate

from .processes import SamplePlugin


def test_sockets_come_before_spec_files(
    tmp_path: Path, plugin_config: PluginConfig, start_plugin: Callable[..., SamplePlugin]
) -> None:
    plugins, specs = plugin_config.socket_dirs[0], plugin_config.spec_dirs[0]
    nested = start_plugin("nested", socket=plugins / "nested" / "nested.sock")
    elsewhere = start_plugin("spec", socket=tmp_path / "elsewhere" / "spec.sock")
    specs.mkdir(parents=True)
    (specs / "spec.spec").write_text(f"unix://{elsewhere.socket}\n")
    (specs / "byjson").mkdir()
    (specs / "byjson" / "byjson.json").write_text(
        json.dumps({"Name": "byjson", "Addr": f"unix://{elsewhere.socket}"})
    )
    (specs / "nested.spec").write_text("unix:///nowhere.sock")

    assert locate("nested", plugin_config) == f"unix://{nested.socket}"
    assert locate("spec", plugin_config) == f"unix://{elsewhere.socket}"
    assert locate("byjson", plugin_config) == f"unix://{elsewhere.socket}"
    assert locate("absent", plugin_config) is None
    assert locate("../specs/spec", plugin_config) is None

    manager = PluginManager(plugin_config)
    try:
        plugin = manager.get("byjson", "NetworkDriver")
        assert plugin is not None and plugin.implements == ("NetworkDriver",)
        assert manager.get("byjson", "NetworkDriver") is plugin  # activated once
        with pytest.raises(NotFound, match="plugin byjson does not implement IpamDriver"):
            manager.get("byjson", "IpamDriver")
        assert manager.get("absent", "NetworkDriver") is None
    finally:
        manager.close()
    assert [c["method"] for c in elsewhere.calls()] == ["Plugin.Activate"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bare.spec", "/run/x.sock", "expected unix:///path or tcp://host:port"),
        ("tls.spec", "https://127.0.0.1:9000", "TLS plugin addresses are not supported"),
        ("bad.json", "{not json", "is not valid JSON"),
        ("noaddr.json", '{"Name": "x"}', "has no Addr string"),
        (
            "tlsjson.json",
            '{"Addr": "tcp://127.0.0.1:9000", "TLSConfig": {"CAFile": "/ca.pem"}}',
            "TLS plugin addresses are not supported",
        ),
    ],
)
def test_bad_spec_files_are_refused_clearly(
    plugin_config: PluginConfig, name: str, content: str, message: str
) -> None:
    specs = plugin_config.spec_dirs[0]
    specs.mkdir(parents=True)
    (specs / name).write_text(content)
    with pytest.raises(InvalidParameter, match=message):
        locate(name.split(".")[0], plugin_config)


@pytest.fixture
def tcp_plugin(host_netns: object) -> Iterator[tuple[str, list[str]]]:
    """A minimal plugin on 127.0.0.1 in the test's namespace: (address, paths it was asked)."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            asked.append(self.path)
            body = json.dumps({"Implements": ["IpamDriver"]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_spec_file_may_name_a_tcp_address(
    plugin_config: PluginConfig, tcp_plugin: tuple[str, list[str]]
) -> None:
    address, asked = tcp_plugin
    plugin_config.spec_dirs[0].mkdir(parents=True)
    (plugin_config.spec_dirs[0] / "overtcp.spec").write_text(address)
    manager = PluginManager(plugin_config)
    try:
        plugin = manager.get("overtcp", "IpamDriver")
        assert plugin is not None and plugin.client.address == address
    finally:
        manager.close()
    assert asked == ["/Plugin.Activate"]


def test_a_dead_socket_is_unavailable_not_missing(
    plugin_config: PluginConfig, tmp_path: Path
) -> None:
    directory = plugin_config.socket_dirs[0]
    directory.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(directory / "dead.sock"))
    dead.close()  # the file stays, nobody listens
    manager = PluginManager(plugin_config)
    with pytest.raises(Unavailable, match=r"Plugin\.Activate: cannot reach plugin dead at unix://"):
        manager.get("dead", "NetworkDriver")
    client = PluginClient("gone", f"unix://{directory / 'gone.sock'}", 1.0)
    with pytest.raises(Unavailable, match=r"cannot reach plugin gone.*No such file"):
        client.call("NetworkDriver.GetCapabilities")
