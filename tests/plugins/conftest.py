"""Fixtures for the plugin tests: sample plugins (``sample_plugin.py``) run as processes in the
test's host namespace, and controllers that look for plugins in the test's own directories
(never in /run/docker/plugins or /etc/docker/plugins).

A plugin is started with ``start_plugin(name, *options)``; it listens on
``<tmp>/plugins/<name>.sock`` and logs every request it gets, which ``calls()`` reads back.
Every plugin started is stopped (by PID) at teardown, and its kernel objects go with the test's
host namespace; the session fails if a plugin process of this suite outlived it.
The processes themselves are in ``processes.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnm.controller import Controller, ControllerConfig
from cnm.osl.namespace import NetNamespace
from cnm.plugins.discovery import PluginConfig
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller
from tests.support.runtime import HOST_RESOLV_CONF

from .processes import SamplePlugin, ServedPlugin, stop_leftover_processes

PLUGIN_TIMEOUT_S = 10.0  # a well-behaved plugin on a loaded machine; the misbehaving tests use 1 s


@pytest.fixture
def plugin_timeout() -> float:
    return PLUGIN_TIMEOUT_S


@pytest.fixture
def plugin_config(tmp_path: Path, plugin_timeout: float) -> PluginConfig:
    return PluginConfig(
        socket_dirs=(tmp_path / "plugins",),
        spec_dirs=(tmp_path / "specs",),
        timeout=plugin_timeout,
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


@pytest.fixture(scope="session", autouse=True)
def _no_process_left(_nothing_left_behind: None) -> Iterator[None]:
    """Fail the session if plugin processes of this suite are still running (they are killed
    first). Daemons are the client tests' check: the suite's own are context managers. It asks
    for the top-level check so that it ends before that one."""
    yield
    plugins = stop_leftover_processes()
    if plugins:
        pytest.fail(f"the plugin tests left behind plugin processes {plugins}")
