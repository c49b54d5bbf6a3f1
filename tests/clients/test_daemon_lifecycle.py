"""``cnm daemon`` itself: socket, pid file, logs, shutdown, restart, one daemon per root/socket.

Each test runs its own daemon (the session daemon must stay up for the other tests).
"""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, running_daemon
from tests.support.runtime import BUSYBOX_TAR


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


def _pending_wait(daemon: Daemon, name: str, condition: str) -> socket.socket:
    """A wait request sent and left waiting (its headers read, the body never)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(daemon.socket))
    path = f"/v1.47/containers/{name}/wait?condition={condition}"
    client.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    assert client.recv(4096).startswith(b"HTTP/1.1 200"), name
    return client


def test_shutdown_is_prompt_with_waiters_and_keeps_containers(tmp_path: Path) -> None:
    """Waiters on a container that will not exit or be removed (one of them gone) let the
    daemon stop at once (it used to wait out the shutdown timeout); running containers keep
    running across the restart."""
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox fixture at {BUSYBOX_TAR}")
    with running_daemon(tmp_path) as daemon:
        tar = {"Content-Type": "application/x-tar"}
        reply = daemon.request(
            "POST", "/images/create?fromSrc=-&repo=bb&tag=t", BUSYBOX_TAR.read_bytes(), tar
        )
        assert reply.status == 200, reply.body
        for name, cmd, rm in (("up", ["sleep", "1000"], False), ("idle", ["true"], True)):
            body = {"Image": "bb:t", "Cmd": cmd, "HostConfig": {"AutoRemove": rm}}
            reply = daemon.request("POST", f"/containers/create?name={name}", body)
            assert reply.status == 201, reply.body
        try:
            assert daemon.request("POST", "/containers/up/start").status == 204
            waits = [
                _pending_wait(daemon, "idle", "removed"),
                _pending_wait(daemon, "idle", "next-exit"),
                _pending_wait(daemon, "up", "removed"),
                _pending_wait(daemon, "up", "not-running"),
            ]
            waits.pop().close()  # a client that went away
            started = time.monotonic()
            assert daemon.stop() == 0
            assert time.monotonic() - started < 2.0, daemon.log()
            for client in waits:
                client.close()
            daemon.start()
            state = daemon.request("GET", "/containers/up/json").json()
            assert isinstance(state, dict) and state["State"]["Running"], state
        finally:  # the running container must not outlive the test
            if daemon.process is None:
                daemon.start()
            for name in ("up", "idle"):
                assert daemon.request("DELETE", f"/containers/{name}?force=1").status == 204


def test_socket_of_another_daemon_is_left_alone(tmp_path: Path) -> None:
    """A daemon unlinks its socket at exit only if the path is still its own socket."""
    with running_daemon(tmp_path) as daemon:
        daemon.socket.unlink()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
            other.bind(str(daemon.socket))
            inode = daemon.socket.stat().st_ino
            assert daemon.stop() == 0
            assert daemon.socket.stat().st_ino == inode
            assert "left the socket alone" in daemon.log()
        daemon.socket.unlink()
