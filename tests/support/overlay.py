"""Daemons on simulated hosts sharing an etcd: the setting of the overlay's end-to-end tests.

Each ``ClusterHost`` is a ``cnm daemon`` in one simulated host's namespace, started with
``--cluster-store`` naming the simulated etcd and ``--cluster-advertise`` its underlay address,
and a docker CLI pointed at it. Short leases (``discovery.ttl``) keep expiry tests quick.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.cluster import SimHost, SimulatedCluster
from tests.support.daemon import Daemon, DockerCli
from tests.support.runtime import BUSYBOX_TAR

TTL_S = 2
HEARTBEAT_S = 1
DOCKER = "/usr/bin/docker"  # the 20.10 CLI, which still knows --cluster-store's era


@dataclass
class ClusterHost:
    sim: SimHost
    daemon: Daemon
    docker: DockerCli

    def stop(self) -> None:
        """Remove every container (a stopped daemon would leave them running: live restore),
        then stop the daemon."""
        if self.daemon.process is not None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
        self.daemon.stop()

    def kill(self) -> None:
        """SIGKILL the daemon (its containers keep running, its lease is not revoked)."""
        process = self.daemon.process
        assert process is not None
        process.kill()
        process.wait()
        self.daemon.process = None


def start_host(
    cluster: SimulatedCluster,
    sim: SimHost,
    root: Path,
    *extra: str,
    import_busybox: bool = True,
) -> ClusterHost:
    args = [
        "--cluster-store",
        cluster.cluster_store,
        "--cluster-advertise",
        f"{sim.address}:2376",
        "--cluster-store-opt",
        f"discovery.ttl={TTL_S}",
        "--cluster-store-opt",
        f"discovery.heartbeat={HEARTBEAT_S}",
        *extra,
    ]
    daemon = Daemon(root, sim.namespace, args)
    daemon.start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root / "home"),
        "DOCKER_HOST": daemon.host,
        "DOCKER_CONFIG": str(root / "docker-config"),
    }
    host = ClusterHost(sim, daemon, DockerCli(DOCKER, env))
    if import_busybox:
        host.docker("import", str(BUSYBOX_TAR), "busybox:local")
    return host


def eventually(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what or check}")


def fdb(host: ClusterHost, network_id: str) -> str:
    """The FDB entries of an overlay network's VXLAN device on a host (``bridge fdb show``,
    inside the network's namespace; empty while the host has none)."""
    namespace = host.daemon.root / "exec" / "overlay-netns" / network_id
    return subprocess.run(
        ["nsenter", f"--net={namespace}", "bridge", "fdb", "show", "dev", "vxlan0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    ).stdout
