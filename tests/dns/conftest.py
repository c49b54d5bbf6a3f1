"""Fixtures for the embedded resolver's tests: a controller and a resolver in the throwaway host
namespace of ``host_netns``, and stub upstream servers on its loopback (helpers in
``queries.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnm.controller import Controller, ControllerConfig
from cnm.dns.resolver import Resolver, ResolverConfig
from cnm.osl.namespace import NetNamespace
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

from .queries import HOST_RESOLV_CONF, UPSTREAM_TIMEOUT_S, Stubs, start_stubs


@pytest.fixture
def host_resolv_conf(tmp_path: Path) -> Path:
    path = tmp_path / "host-resolv.conf"
    path.write_text(HOST_RESOLV_CONF)
    return path


@pytest.fixture
def controller(
    host_netns: NetNamespace, exec_root: Path, host_resolv_conf: Path, tmp_path: Path
) -> Iterator[Controller]:
    store = SqliteStore(tmp_path / "cnm.db")
    ctl = build_controller(
        ControllerConfig(exec_root=exec_root, host_resolv_conf=host_resolv_conf), store
    )
    ctl.start()
    yield ctl
    ctl.close()
    store.close()


@pytest.fixture
def resolver(controller: Controller) -> Iterator[Resolver]:
    """Started in the test's main thread, so its loop thread lives in the host namespace."""
    server = Resolver(controller, ResolverConfig(upstream_timeout=UPSTREAM_TIMEOUT_S))
    server.start()
    yield server
    server.close()


@pytest.fixture
def stubs(host_netns: NetNamespace, tmp_path: Path) -> Iterator[Callable[..., Stubs]]:
    """``stubs("127.0.0.53=ok", ...)`` starts the stub server on those loopback addresses of
    the test's host namespace; it is stopped by PID at teardown."""
    started: list[Stubs] = []

    def start(*specs: str) -> Stubs:
        started.append(start_stubs(tmp_path / f"stub-{len(started)}.log", *specs))
        return started[-1]

    yield start
    for stub in started:
        stub.stop()
