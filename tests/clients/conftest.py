"""Fixtures for the client tests: a real ``cnm daemon`` in a throwaway network namespace
(``tests/support/daemon.py``) and the clients that drive it.

One daemon serves the whole session (start-up costs about a second); tests that stop or restart
a daemon make their own with ``running_daemon``. Tests name their networks with ``names`` and
their containers with ``containers`` so they never collide and everything they made is removed
afterwards (containers first: a network with containers on it cannot go). ``busybox`` imports
the busybox fixture image into the session's daemon once, as ``busybox:local``.

The leftover check of tests/conftest.py is extended here: this one also looks for the daemon
processes the session started, besides its namespaces and the mounts below its base temp
directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.support.daemon import (
    DAEMON_NAMESPACES,
    DOCKER_CLIS,
    Daemon,
    DockerCli,
    running_daemon,
    stop_leftover_daemons,
    unique_names,
)
from tests.support.netns import remove_leftovers
from tests.support.runtime import BUSYBOX, BUSYBOX_TAR


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("daemon")) as running:
        yield running


@pytest.fixture
def names(daemon: Daemon) -> Iterator[Callable[[str], str]]:
    """``names("web")`` gives a unique network name; those networks are removed afterwards."""
    yield from unique_names(daemon, "/networks/{}")


@pytest.fixture(scope="session")
def busybox(daemon: Daemon) -> str:
    """``busybox:local``, imported once per session."""
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox fixture at {BUSYBOX_TAR}")
    reply = daemon.request(
        "POST",
        "/images/create?fromSrc=-&repo=busybox&tag=local",
        BUSYBOX_TAR.read_bytes(),
        {"Content-Type": "application/x-tar"},
    )
    assert reply.status == 200, reply.body
    assert b'"status":"sha256:' in reply.body.splitlines()[-1], reply.body
    return BUSYBOX


@pytest.fixture
def volumes(daemon: Daemon) -> Iterator[Callable[[str], str]]:
    """``volumes("data")`` gives a unique volume name; those volumes are removed afterwards,
    after the test's containers."""
    yield from unique_names(daemon, "/volumes/{}?force=1")


@pytest.fixture
def containers(
    daemon: Daemon, names: Callable[[str], str], volumes: Callable[[str], str]
) -> Iterator[Callable[[str], str]]:
    """``containers("web")`` gives a unique container name; those containers are removed
    (forcibly, with their anonymous volumes) afterwards, before the test's networks and
    volumes."""
    yield from unique_names(daemon, "/containers/{}?force=1&v=1")


@pytest.fixture(params=DOCKER_CLIS or [None], ids=lambda p: f"docker={p}")
def docker(
    request: pytest.FixtureRequest, daemon: Daemon, tmp_path_factory: pytest.TempPathFactory
) -> DockerCli:
    if request.param is None:
        pytest.skip("no docker CLI on this machine")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path_factory.mktemp("home")),
        "DOCKER_HOST": daemon.host,
        "DOCKER_CONFIG": str(tmp_path_factory.mktemp("docker-config")),
    }
    return DockerCli(request.param, env)


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind(
    tmp_path_factory: pytest.TempPathFactory, _nothing_left_behind: None
) -> Iterator[None]:
    """Fail the session if these tests left namespaces or daemons behind (see the docstring).
    It asks for the top-level check of the same name so that, when the whole suite runs in one
    session, that check starts before the session's daemon and so ends after it is gone."""
    yield
    leftovers = remove_leftovers(tmp_path_factory.getbasetemp(), DAEMON_NAMESPACES)
    daemons = stop_leftover_daemons()
    if leftovers or daemons:
        pytest.fail(f"the client tests left behind namespaces {leftovers}, daemons {daemons}")
