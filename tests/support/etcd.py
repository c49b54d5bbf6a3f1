"""Real etcd servers for the tests, each listening only inside a namespace a test made.

Why: the global-scope store is only worth what its tests against the etcd users run prove
(Debian's etcd-server, 3.4), so there is no fake. A server is started with
``nsenter --net=PATH /usr/bin/etcd`` (nsenter execs etcd, so the PID we hold is etcd's own),
listens on loopback or an underlay address of that namespace, never on the real host, and is
stopped by that PID. Its data and log live in a directory the test owns.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnm.osl.namespace import NetNamespace

ETCD = "/usr/bin/etcd"
CLIENT_PORT = 2379
PEER_PORT = 2380
START_TIMEOUT = 20.0


@dataclass
class EtcdServer:
    """One etcd member: ``start`` it, ``wait_healthy``, ``kill`` it, ``start`` it again (it
    keeps its data directory, so it rejoins its cluster)."""

    name: str
    netns: str
    address: str
    data_dir: Path
    initial_cluster: str  # "name=http://addr:2380,..." for every member
    heartbeat_ms: int = 100
    election_ms: int = 1000
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{CLIENT_PORT}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}.log")

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError(f"etcd {self.name} is already running (pid {self.process.pid})")
        client_url = f"http://{self.endpoint}"
        peer_url = f"http://{self.address}:{PEER_PORT}"
        command = [
            "nsenter",
            f"--net={self.netns}",
            ETCD,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={self.initial_cluster}",
            "--initial-cluster-state=new",  # ignored once the data directory exists
            "--initial-cluster-token=cnm-test",
            f"--heartbeat-interval={self.heartbeat_ms}",
            f"--election-timeout={self.election_ms}",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        with self.log_path.open("ab") as log:
            # A clean environment: no ETCD_* variable of the machine reaches the test server.
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
            )

    def _ask(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        """GET (or POST ``payload`` to) this member's ``path``, from its own namespace."""
        data = None if payload is None else json.dumps(payload).encode()
        namespace = NetNamespace(self.netns)
        try:
            url = f"http://{self.endpoint}{path}"
            with namespace.entered(), urllib.request.urlopen(url, data, timeout=1) as reply:
                return json.load(reply)
        finally:
            namespace.close()

    def healthy(self) -> bool:
        """True if this member answers /health with a leader."""
        try:
            return bool(self._ask("/health").get("health") == "true")
        except OSError:
            return False

    def status(self) -> dict[str, Any]:
        """The member's status: ``header.member_id`` is its id, ``leader`` its leader's."""
        status: dict[str, Any] = self._ask("/v3/maintenance/status", {})
        return status

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"etcd {self.name} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd {self.name} not healthy in {timeout}s: {self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL this member by its PID and reap it (a crash, not a clean stop)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def single_node(name: str, netns: str, address: str, data_root: Path) -> EtcdServer:
    """A one-member cluster with short raft timers (lease TTLs down to 1 s)."""
    return EtcdServer(
        name=name,
        netns=netns,
        address=address,
        data_dir=data_root / name,
        initial_cluster=f"{name}=http://{address}:{PEER_PORT}",
        heartbeat_ms=50,
        election_ms=500,
    )
