"""Fixtures for the plugin tests: sample plugins (``sample_plugin.py``) run as processes in the
test's host namespace, and controllers that look for plugins in the test's own directories
(never in /run/docker/plugins or /etc/docker/plugins).

A plugin is started with ``start_plugin(name, *options)``; it listens on
``<tmp>/plugins/<name>.sock`` and logs every request it gets, which ``calls()`` reads back.
Every plugin started is stopped (by PID) at teardown, and its kernel objects go with the test's
host namespace.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cnm.controller import Controller, ControllerConfig
from cnm.errors import CnmError
from cnm.osl.namespace import NetNamespace
from cnm.plugins.client import PluginClient
from cnm.plugins.discovery import PluginConfig
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller
from tests.kernel.probes import HOST_RESOLV_CONF

SAMPLE_PLUGIN = Path(__file__).with_name("sample_plugin.py")
PLUGIN_TIMEOUT_S = 1.0  # short, so that a hanging plugin costs the test one second


@dataclass
class SamplePlugin:
    name: str
    socket: Path
    log_path: Path
    command: list[str]
    process: subprocess.Popen[str] | None = None

    @classmethod
    def make(
        cls, name: str, socket: Path, workdir: Path, *options: str, netns: str | None = None
    ) -> SamplePlugin:
        """A plugin (not started) logging and keeping state in ``workdir``; it runs in
        ``netns`` if given, else in the caller's namespace."""
        log_path = workdir / f"{name}.calls.jsonl"
        command = [
            sys.executable,
            str(SAMPLE_PLUGIN),
            "--socket",
            str(socket),
            "--log",
            str(log_path),
            "--state",
            str(workdir / f"{name}.state.json"),
            *options,
        ]
        if netns is not None:
            command = ["nsenter", f"--net={netns}", *command]
        return cls(name, socket, log_path, command)

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        line = self.process.stdout.readline().strip() if ready else ""
        if line != "ready":
            self.stop()
            raise AssertionError(f"plugin {self.name} did not start: {line!r}")

    def stop(self) -> None:
        """SIGTERM by PID (the plugin removes its socket), SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """The requests the plugin got, oldest first (only ``method``'s if given)."""
        if not self.log_path.exists():
            return []
        entries = [json.loads(line) for line in self.log_path.read_text().splitlines()]
        return [e for e in entries if method is None or e["method"] == method]

    def methods(self) -> list[str]:
        return [entry["method"] for entry in self.calls()]

    def forget_calls(self) -> None:
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def plugin_config(tmp_path: Path) -> PluginConfig:
    return PluginConfig(
        socket_dirs=(tmp_path / "plugins",),
        spec_dirs=(tmp_path / "specs",),
        timeout=PLUGIN_TIMEOUT_S,
    )


@pytest.fixture
def start_plugin(
    host_netns: NetNamespace, tmp_path: Path, plugin_config: PluginConfig
) -> Iterator[Callable[..., SamplePlugin]]:
    """``start_plugin("name", "--choose-mac", ...)`` starts a sample plugin in the test's host
    namespace with its socket in the test's plugin directory (``socket=`` puts it elsewhere)."""
    started: list[SamplePlugin] = []

    def start(name: str, *options: str, socket: Path | None = None) -> SamplePlugin:
        socket = socket or plugin_config.socket_dirs[0] / f"{name}.sock"
        plugin = SamplePlugin.make(name, socket, tmp_path, *options)
        plugin.start()
        started.append(plugin)
        return plugin

    yield start
    for plugin in started:
        plugin.stop()


@pytest.fixture
def make_controller(
    host_netns: NetNamespace, tmp_path: Path, plugin_config: PluginConfig
) -> Iterator[Callable[..., Controller]]:
    """Start controllers that find plugins in the test's directories; all closed at teardown."""
    resolv_conf = tmp_path / "host-resolv.conf"
    resolv_conf.write_text(HOST_RESOLV_CONF)
    started: list[tuple[Controller, SqliteStore]] = []

    def make(config: PluginConfig = plugin_config) -> Controller:
        store = SqliteStore(tmp_path / "cnm.db")
        controller = build_controller(
            ControllerConfig(exec_root=tmp_path / "exec", host_resolv_conf=resolv_conf),
            store,
            plugins=config,
        )
        started.append((controller, store))
        controller.start()
        return controller

    yield make
    for controller, store in reversed(started):
        controller.close()
        store.close()


@pytest.fixture
def controller(make_controller: Callable[..., Controller]) -> Controller:
    return make_controller()


CNM = str(Path(sys.executable).parent / "cnm")


@dataclass
class ServedPlugin:
    """``cnm plugin serve`` as a process (in ``netns`` if given, else the caller's)."""

    socket: Path
    data_root: Path
    log_path: Path
    netns: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [CNM, "plugin", "serve", "--socket", str(self.socket)]
        command += ["--data-root", str(self.data_root), "--log-level", "debug"]
        if self.netns is not None:
            command = ["nsenter", f"--net={self.netns}", *command]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        client = PluginClient("cnm", f"unix://{self.socket}", 5.0)
        deadline = time.monotonic() + 20
        try:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"cnm plugin serve exited:\n{self.log()}")
                try:
                    client.call("Plugin.Activate")
                    return
                except CnmError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"no answer:\n{self.log()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture
def served(host_netns: NetNamespace, tmp_path: Path) -> Iterator[ServedPlugin]:
    """``cnm plugin serve`` in the test's host namespace, socket in the test's directory."""
    plugin = ServedPlugin(
        tmp_path / "plugins" / "cnm.sock", tmp_path / "plugin-data", tmp_path / "plugin.log"
    )
    plugin.start()
    try:
        yield plugin
    finally:
        plugin.stop()
