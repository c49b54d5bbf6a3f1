"""``cnm daemon`` itself: socket, pid file, logs, shutdown, restart, one daemon per root/socket.

Each test runs its own daemon (the session daemon must stay up for the other tests).
"""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
from pathlib import Path

from tests.clients.conftest import Daemon, running_daemon


def _run_beside(first: Daemon, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Start a second daemon in the first one's namespace, expecting it to refuse to start."""
    command = Daemon(root, first.netns).command(*args)
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_socket_pid_file_logs_and_graceful_shutdown(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as daemon:
        assert daemon.process is not None
        pid = daemon.process.pid
        mode = daemon.socket.stat()
        assert stat.S_ISSOCK(mode.st_mode)
        assert stat.S_IMODE(mode.st_mode) == 0o660
        assert (mode.st_uid, mode.st_gid) == (0, 0)
        pid_file = tmp_path / "exec" / "cnm.pid"
        assert pid_file.read_text() == f"{pid}\n"
        assert daemon.request("GET", "/v1.47/networks").status == 200
        assert daemon.stop() == 0
        assert not daemon.socket.exists()
        assert not pid_file.exists()
        log = daemon.log()
        assert f'level=info msg="cnm daemon started" version=0.1.0 pid={pid}' in log
        assert "level=debug msg=request method=GET path=/v1.47/networks status=200" in log
        assert 'level=info msg="shutting down" signal=SIGTERM' in log
        assert 'level=info msg="cnm daemon stopped"' in log


def test_restart_keeps_networks(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as daemon:
        body = {"Name": "kept", "IPAM": {"Config": [{"Subnet": "10.60.0.0/24"}]}}
        created = daemon.request("POST", "/networks/create", body).json()
        before = {n["Name"]: n for n in daemon.request("GET", "/networks").json()}  # type: ignore[union-attr]
        assert daemon.stop() == 0
        daemon.start()
        after = {n["Name"]: n for n in daemon.request("GET", "/networks").json()}  # type: ignore[union-attr]
        assert after == before
        assert after["kept"]["Id"] == created["Id"]  # type: ignore[index]
        assert daemon.request("DELETE", "/networks/kept").status == 204


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "cnm.sock"))
    stale.close()
    with running_daemon(tmp_path) as daemon:
        assert daemon.request("GET", "/_ping").body == b"OK"
        assert 'msg="removed stale socket"' in daemon.log()
        assert daemon.stop(signal.SIGINT) == 0
        assert 'msg="shutting down" signal=SIGINT' in daemon.log()
        assert not daemon.socket.exists()


def test_one_daemon_per_socket_and_root(tmp_path: Path) -> None:
    with running_daemon(tmp_path / "first") as first:
        assert first.process is not None
        same_socket = _run_beside(first, tmp_path / "second", "--socket", str(first.socket))
        assert same_socket.returncode == 1
        assert f"another daemon is already serving on {first.socket}" in same_socket.stderr
        same_root = _run_beside(
            first, tmp_path / "third", "--exec-root", str(tmp_path / "first" / "exec")
        )
        assert same_root.returncode == 1
        assert f"another cnm daemon (pid {first.process.pid}) is using exec root" in (
            same_root.stderr
        )
        bad_pool = _run_beside(first, tmp_path / "fourth", "--default-address-pool", "10.0.0.0/8")
        assert bad_pool.returncode == 1
        assert "invalid --default-address-pool" in bad_pool.stderr
        assert first.request("GET", "/_ping").status == 200


def test_daemon_options(tmp_path: Path) -> None:
    options = (
        "--default-address-pool",
        "base=10.123.0.0/16,size=24",
        "--bridge-name",
        "cnmtest0",
        "--mtu",
        "1400",
    )
    with running_daemon(tmp_path, *options) as daemon:
        bridge = daemon.request("GET", "/networks/bridge").json()
        assert isinstance(bridge, dict)
        assert bridge["Options"]["com.docker.network.bridge.name"] == "cnmtest0"
        assert bridge["Options"]["com.docker.network.driver.mtu"] == "1400"
        assert bridge["IPAM"]["Config"][0]["Subnet"] == "10.123.0.0/24"
        daemon.request("POST", "/networks/create", {"Name": "auto"})
        auto = daemon.request("GET", "/networks/auto").json()
        assert auto["IPAM"]["Config"][0]["Subnet"] == "10.123.1.0/24"  # type: ignore[index]
        info = daemon.request("GET", "/info").json()
        assert info["DefaultAddressPools"] == [{"Base": "10.123.0.0/16", "Size": 24}]  # type: ignore[index]
