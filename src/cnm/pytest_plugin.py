"""pytest fixtures for networked sandboxes, over ``cnm.Lab`` (installed as the ``cnm``
``pytest11`` entry point: ``pip install cnm`` makes them available to every test suite).

* ``cnm_lab``: a ``Lab`` for the test, closed (everything removed) when the test ends, also
  when it failed;
* ``cnm_network``: a network of that lab;
* ``cnm_sandbox``: a factory, ``cnm_sandbox("server", target=serve, args=(8000,))`` or
  ``cnm_sandbox("worker", command=["sleep", "60"])``: a named sandbox on ``cnm_network``
  (or on the networks given), running that callable or command.

Labs run in-process (as root) unless ``--cnm-daemon unix:///path`` or ``$CNM_LAB_DAEMON``
names a daemon. Each test's in-process lab has a namespace, a directory and a firewall of its
own, and each lab on a daemon prefixes its names, so tests run in parallel under pytest-xdist
(``pytest -n 4``) never see each other.

This module imports nothing heavy: ``cnm.lab`` is loaded when a fixture is first used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cnm.lab import Lab, Network, Sandbox

DAEMON_ENV = "CNM_LAB_DAEMON"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnm", "cnm labs")
    group.addoption(
        "--cnm-daemon",
        default=None,
        metavar="unix:///PATH",
        help=f"make the cnm_lab fixtures' objects on this daemon (${DAEMON_ENV}); "
        "default: in-process, as root",
    )


def _daemon(config: pytest.Config) -> str | None:
    chosen: str | None = config.getoption("--cnm-daemon")
    return chosen or os.environ.get(DAEMON_ENV) or None


@pytest.fixture
def cnm_lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """A lab for this test; everything in it is removed when the test ends."""
    from cnm.lab import Lab

    daemon = _daemon(request.config)
    root: Path | None = None
    if daemon is None:
        root = tmp_path_factory.mktemp("cnm-lab")
    with Lab(daemon, root=root) as lab:
        yield lab


@pytest.fixture
def cnm_network(cnm_lab: Lab) -> Network:
    """A network of the test's lab (a subnet from Docker's pools)."""
    return cnm_lab.network("net")


class SandboxFactory:
    """``cnm_sandbox(name, *networks, command=..., target=..., args=..., image=...,
    publish=...)``: a sandbox of the test's lab, on ``cnm_network`` unless networks are
    given."""

    def __init__(self, lab: Lab, network: Network) -> None:
        self.lab = lab
        self.network = network

    def __call__(
        self,
        name: str,
        *networks: Network,
        command: Sequence[str] | None = None,
        target: Callable[..., object] | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        image: str | None = None,
        publish: Sequence[int] = (),
    ) -> Sandbox:
        return self.lab.sandbox(
            name,
            *(networks or (self.network,)),
            command=command,
            target=target,
            args=args,
            kwargs=kwargs,
            image=image,
            publish=publish,
        )


@pytest.fixture
def cnm_sandbox(cnm_lab: Lab, cnm_network: Network) -> SandboxFactory:
    """A factory of named sandboxes running a Python callable or a command."""
    return SandboxFactory(cnm_lab, cnm_network)
