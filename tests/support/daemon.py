"""A real ``cnm daemon`` in a throwaway network namespace, and the clients that drive it.

The daemon runs as ``nsenter --net=<ns> <venv>/cnm daemon`` with its exec root, data root and
socket under a directory of the test's, so it never sees the machine's interfaces and never
collides with another run; ``running_daemon`` removes it with everything it made. ``Daemon``
speaks HTTP to its socket and runs the ``cnm`` CLI against it; ``DockerCli`` runs a docker CLI
against it. The daemons and namespaces made here are remembered for the client tests' leftover
check (``stop_leftover_daemons``, ``DAEMON_NAMESPACES``).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnm.osl.namespace import NetNamespace, delete_netns
from cnm.unixhttp import UnixHTTPConnection
from tests.support.netns import make_test_netns, unmount_namespaces_under

CNM = str(Path(sys.executable).parent / "cnm")
DOCKER_CLIS = [path for path in ("/usr/local/bin/docker", "/usr/bin/docker") if Path(path).exists()]
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0

DAEMON_NAMESPACES: list[str] = []  # the namespaces make_netns made in this session
STARTED: list[subprocess.Popen[bytes]] = []  # every daemon process started in this session


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


@dataclass
class Daemon:
    root: Path
    netns: NetNamespace
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    environment: dict[str, str] = field(default_factory=dict)  # added to the daemon's

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
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=log, env={**os.environ, **self.environment}
            )
        STARTED.append(self.process)
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
        connection = UnixHTTPConnection(str(self.socket), 30)
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
    """A throwaway "host" namespace for a daemon, which the client tests' leftover check knows
    about."""
    netns = make_test_netns("cli")
    DAEMON_NAMESPACES.append(netns.path)
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


def unique_names(daemon: Daemon, delete_path: str) -> Iterator[Callable[[str], str]]:
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


def stop_leftover_daemons() -> list[int]:
    """Kill the daemons of this session that still run; return their PIDs."""
    running = [process for process in STARTED if process.poll() is None]
    for process in running:
        process.kill()
        process.wait()
    return [process.pid for process in running]
