"""Fixtures for the controller's kernel tests (probes live in ``probes.py``).

Every test runs inside the throwaway host namespace of ``host_netns`` (tests/conftest.py); the
controller is made there, so its "host" is that namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cnm.controller import Controller, ControllerConfig
from cnm.osl.namespace import NetNamespace
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

from .probes import HOST_RESOLV_CONF


@pytest.fixture
def host_resolv_conf(tmp_path: Path) -> Path:
    path = tmp_path / "host-resolv.conf"
    path.write_text(HOST_RESOLV_CONF)
    return path


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "cnm.db"


@pytest.fixture
def make_controller(
    host_netns: NetNamespace, exec_root: Path, host_resolv_conf: Path, store_path: Path
) -> Iterator[Callable[..., Controller]]:
    """Start controllers on the test's store and exec root; all are closed at teardown."""
    started: list[tuple[Controller, SqliteStore]] = []

    def make(**config: Any) -> Controller:
        store = SqliteStore(store_path)
        ctl = build_controller(
            ControllerConfig(exec_root=exec_root, host_resolv_conf=host_resolv_conf, **config),
            store,
        )
        started.append((ctl, store))
        ctl.start()
        return ctl

    yield make
    for ctl, store in reversed(started):
        ctl.close()
        store.close()


@pytest.fixture
def controller(make_controller: Callable[..., Controller]) -> Controller:
    return make_controller()
