"""``cnm.Lab`` in-process and against a daemon, its clean-up after a failure, the pytest
plugin's fixtures (also under pytest-xdist), and the examples of docs/library.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import cnm
from cnm.lab import LabError, Network, Sandbox
from cnm.osl.namespace import is_netns_mount
from tests.support.daemon import running_daemon
from tests.support.netns import nsfs_mounts_under
from tests.support.runtime import BUSYBOX_TAR

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def serve_echo(port: int) -> None:
    """A TCP server that sends back the first line it gets, upper-cased."""
    import socket

    with socket.create_server(("", port)) as server:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.sendall(conn.recv(1024).upper())


def _talk(address: str, port: int, text: str) -> str:
    import socket

    with socket.create_connection((address, port), timeout=5) as conn:
        conn.sendall(text.encode())
        return conn.recv(1024).decode()


def test_an_in_process_lab_runs_names_and_publishes(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    with cnm.Lab(root=root) as lab:
        net = lab.network("backend", subnet="10.77.0.0/24")
        assert isinstance(net, Network) and net.subnet == "10.77.0.0/24"
        server = lab.sandbox("server", net, target=serve_echo, args=(7000,))
        client = lab.sandbox("client", net)
        assert isinstance(server, Sandbox)
        assert (server.name, server.ip, client.ip) == ("server", "10.77.0.2", "10.77.0.3")
        server.wait_for_port(7000)
        probe = "import socket; c = socket.create_connection(('server', 7000), 5); "
        probe += "c.sendall(b'hi'); print(c.recv(9).decode())"
        assert client.exec(sys.executable, "-c", probe).stdout == "HI\n"
        assert client.exec("hostname").stdout == "client\n"
        host, port = server.publish(7000)
        assert host == "127.0.0.1" and server.publish(7000) == (host, port)
        with lab.entered():
            assert _talk(host, port, "published") == "PUBLISHED"
        failed = client.exec("sh", "-c", "echo oops >&2; exit 3", check=False)
        assert (failed.returncode, failed.stderr) == (3, "oops\n")
        with pytest.raises(LabError, match="exited 3: oops"):
            client.exec("sh", "-c", "echo oops >&2; exit 3")
        assert is_netns_mount(root / "host.netns")
    assert not root.exists()
    assert not nsfs_mounts_under(root)


def test_everything_goes_even_after_an_exception(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    with pytest.raises(RuntimeError, match="the test failed"), cnm.Lab(root=root) as lab:
        net = lab.network("n")
        lab.sandbox("a", net, command=["sleep", "600"])
        lab.sandbox("b", net)
        raise RuntimeError("the test failed")
    assert not root.exists() and not nsfs_mounts_under(tmp_path)
    sleeping = subprocess.run(
        ["pgrep", "-f", f"--unmount-under={root}"], capture_output=True, text=True, check=False
    )
    assert sleeping.stdout == "", sleeping.stdout
    with pytest.raises(LabError, match="closed"):
        lab.network("late")


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    with cnm.Lab(root=tmp_path / "lab") as lab:
        with pytest.raises(LabError, match="invalid subnet"):
            lab.network("x", subnet="10.1.2.300/24")
        net = lab.network("n")
        lab.sandbox("one", net)
        with pytest.raises(LabError, match="already"):
            lab.sandbox("one", net)
        with pytest.raises(LabError, match="a command or a target, not both"):
            lab.sandbox("two", net, command=["true"], target=serve_echo)
        with pytest.raises(LabError, match="importable module"):
            lab.sandbox("three", net, target=lambda: None)
        with pytest.raises(LabError, match=r"lab.image\(tarball, 'busybox:local'\) first"):
            lab.sandbox("four", net, image="busybox:local")
        with pytest.raises(LabError, match="no image tarball"):
            lab.image(tmp_path / "missing.tar", "x:y")
        assert [s.name for s in lab.sandboxes] == ["one"]


def test_busybox_sandboxes_in_process(tmp_path: Path) -> None:
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox fixture at {BUSYBOX_TAR}")
    root = tmp_path / "lab"
    with cnm.Lab(root=root) as lab:
        image = lab.image(BUSYBOX_TAR, "busybox:local")
        net = lab.network("n", subnet="10.78.0.0/24")
        server = lab.sandbox("server", net, target=serve_echo, args=(7000,))
        box = lab.sandbox(
            "box", net, image=image, command=["sh", "-c", "echo made > /made; sleep 600"]
        )
        other = lab.sandbox("other", net, image=image)
        server.wait_for_port(7000)
        assert box.exec("cat", "/made").stdout == "made\n"
        assert other.exec("cat", "/made", check=False).returncode != 0  # a tree of its own
        assert "10.78.0.2" in box.exec("nslookup", "server").stdout
        assert box.exec("sh", "-c", "echo hey | nc server 7000").stdout == "HEY\n"
        assert box.exec("cat", "/etc/hostname").stdout == "box\n"
        assert (root / "rootfs").exists()
    assert not root.exists()


def test_a_lab_on_a_daemon(tmp_path: Path) -> None:
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox fixture at {BUSYBOX_TAR}")
    with running_daemon(tmp_path / "daemon") as daemon:
        with daemon.netns.entered(), cnm.Lab(daemon.host) as lab:
            lab.image(BUSYBOX_TAR, "busybox:local")
            front, back = lab.network("front"), lab.network("back")
            server = lab.sandbox(
                "server", front, back, target=serve_echo, args=(7000,), publish=[7000]
            )
            box = lab.sandbox("box", back, image="busybox:local")
            server.wait_for_port(7000)
            assert set(server.ips) == {"front", "back"}
            assert box.exec("nslookup", "server").returncode == 0
            said = box.exec("sh", "-c", "echo hey | nc server 7000").stdout
            assert said == "HEY\n"
            host, port = server.publish(7000)
            assert _talk(host, port, "published") == "PUBLISHED"
            with pytest.raises(LabError, match="publish=\\[80\\]"):
                box.publish(80)
            names = [c["Names"][0] for c in daemon_json(daemon, "/containers/json")]
            assert all(re.fullmatch(r"/lab-[0-9a-f]{6}-(server|box)", n) for n in names), names
        assert daemon_json(daemon, "/containers/json?all=1") == []
        networks = {n["Name"] for n in daemon_json(daemon, "/networks")}
        assert networks == {"bridge", "host", "none"}


def daemon_json(daemon: object, path: str) -> list[dict[str, object]]:
    reply = daemon.request("GET", path)  # type: ignore[attr-defined]
    assert reply.status == 200
    data = reply.json()
    assert isinstance(data, list)
    return data


def test_the_fixtures_run_the_examples_in_parallel() -> None:
    """docs/examples/test_lab_example.py with two xdist workers: the fixtures come from the
    entry point alone (no conftest there)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-n", "2", "-p", "no:cacheprovider",
         str(EXAMPLES / "test_lab_example.py")],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"= 5 passed", done.stdout), done.stdout
    workers = set(re.findall(r"\[(gw\d)\] .*PASSED", done.stdout))
    assert workers == {"gw0", "gw1"}, done.stdout


def test_the_library_page_examples_run() -> None:
    """Each ``python`` block of docs/library.md that makes a lab runs as a script from the
    repository's root and prints what the comments beside its print calls say."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "library.md").read_text(), re.S)
    runnable = [b for b in blocks if "with cnm.Lab()" in b]
    assert len(runnable) >= 3
    for block in runnable:
        if "busybox-rootfs.tar" in block and not BUSYBOX_TAR.exists():
            continue
        done = subprocess.run(
            [sys.executable, "-c", block],
            capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
            env={"PYTHONPATH": str(EXAMPLES), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        )  # fmt: skip
        assert done.returncode == 0, block + done.stderr
        expected = re.findall(r"print\(.*# (.*)$", block, re.M)
        assert done.stdout.splitlines() == expected, block
