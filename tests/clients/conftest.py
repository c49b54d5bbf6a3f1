"""A real ``cnm daemon`` in a throwaway network namespace, and the clients that drive it.

The daemon runs as ``nsenter --net=<ns> <venv>/cnm daemon`` with its exec root, data root and
socket under a tmp directory, so it never sees the machine's interfaces and never collides with
another run. Teardown sends SIGTERM (SIGKILL if it hangs), unmounts the sandbox namespaces left
under the tmp directory and deletes the namespace.

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

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnm.osl.namespace import NetNamespace, delete_netns
from tests.conftest import make_test_netns, unmount_namespaces_under

CNM = str(Path(sys.executable).parent / "cnm")
BUSYBOX_TAR = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "busybox-rootfs.tar"
BUSYBOX = "busybox:local"
DOCKER_CLIS = [path for path in ("/usr/local/bin/docker", "/usr/bin/docker") if Path(path).exists()]
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0

_MADE_NAMESPACES: list[str] = []
_STARTED: list[subprocess.Popen[bytes]] = []


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        data = self.json()
        assert isinstance(data, dict), data
        return str(data.get("message", ""))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self._path))


@dataclass
class Daemon:
    root: Path
    netns: NetNamespace
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "cnm.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> Path:
        return self.root / "daemon.log"

    def command(self, *extra: str) -> list[str]:
        # Forwarded DNS goes to loopback in the test namespace, never to the machine's resolver.
        upstream = [] if "--dns" in (*self.extra_args, *extra) else ["--dns", "127.0.0.1"]
        return [
            "nsenter",
            f"--net={self.netns.path}",
            CNM,
            "daemon",
            "--exec-root",
            str(self.root / "exec"),
            "--data-root",
            str(self.root / "data"),
            "--socket",
            str(self.socket),
            "--log-level",
            "debug",
            *upstream,
            *self.extra_args,
            *extra,
        ]

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log)
        _STARTED.append(self.process)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the daemon exited with {self.process.returncode}:\n{self.log()}")
            with suppress(OSError):
                if self.request("GET", "/_ping").status == 200:
                    return
            time.sleep(0.05)
        pytest.fail(f"the daemon did not answer /_ping within {START_TIMEOUT_S}s:\n{self.log()}")

    def stop(self, signum: int = signal.SIGTERM) -> int | None:
        """``signum``, then SIGKILL if it does not exit in time; returns the exit status."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One HTTP request; ``body`` is sent as is if bytes or str, else as JSON."""
        headers = dict(headers or {})
        payload: bytes | None
        if body is None or isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = json.dumps(body).encode()
        if payload is not None:
            headers.setdefault("Content-Type", "application/json")
        connection = _UnixConnection(self.socket)
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def cnm(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the ``cnm`` CLI against this daemon."""
        return subprocess.run(
            [CNM, "-H", self.host, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def make_netns() -> NetNamespace:
    """A throwaway "host" namespace that the session's leftover check knows about."""
    netns = make_test_netns("cli")
    _MADE_NAMESPACES.append(netns.path)
    return netns


@contextmanager
def running_daemon(root: Path, *extra_args: str) -> Iterator[Daemon]:
    """A daemon in its own fresh namespace, removed with everything it made on exit."""
    netns = make_netns()
    daemon = Daemon(root, netns, list(extra_args))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        unmount_namespaces_under(root)
        netns.close()
        delete_netns(netns.path)


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("daemon")) as running:
        yield running


def _unique_names(daemon: Daemon, delete_path: str) -> Iterator[Callable[[str], str]]:
    """Yield a maker of unique names (``prefix-<6 hex>``); afterwards DELETE
    ``delete_path.format(name)`` for each name made (gone already is fine)."""
    made: list[str] = []

    def unique(prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        made.append(name)
        return name

    yield unique
    for name in made:
        reply = daemon.request("DELETE", delete_path.format(name))
        assert reply.status in (204, 404), reply.body


@pytest.fixture
def names(daemon: Daemon) -> Iterator[Callable[[str], str]]:
    """``names("web")`` gives a unique network name; those networks are removed afterwards."""
    yield from _unique_names(daemon, "/networks/{}")


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
def containers(daemon: Daemon, names: Callable[[str], str]) -> Iterator[Callable[[str], str]]:
    """``containers("web")`` gives a unique container name; those containers are removed
    (forcibly) afterwards, before the test's networks."""
    yield from _unique_names(daemon, "/containers/{}?force=1")


@dataclass
class DockerCli:
    binary: str
    env: dict[str, str]

    @property
    def is_legacy(self) -> bool:
        return self.binary == "/usr/bin/docker"

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


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


def _nsfs_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as mounts:
        return {line.split()[4] for line in mounts if " nsfs " in line}


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind(
    tmp_path_factory: pytest.TempPathFactory, _nothing_left_behind: None
) -> Iterator[None]:
    """Fail the session if these tests left namespaces or daemons behind (see the docstring).
    It asks for the top-level check of the same name so that, when the whole suite runs in one
    session, that check starts before the session's daemon and so ends after it is gone."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    mounts = _nsfs_mounts()
    leftovers = [m for m in mounts if m.startswith(base + "/")]
    leftovers += [p for p in _MADE_NAMESPACES if p in mounts or os.path.exists(p)]
    for path in sorted(leftovers, reverse=True):
        delete_netns(path)
    daemons = [process.pid for process in _STARTED if process.poll() is None]
    for process in _STARTED:
        if process.poll() is None:
            process.kill()
            process.wait()
    if leftovers or daemons:
        pytest.fail(f"the client tests left behind namespaces {leftovers}, daemons {daemons}")
