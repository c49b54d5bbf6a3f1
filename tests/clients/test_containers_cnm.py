"""The ``cnm`` CLI runs containers: import with progress, run (foreground, detached, on the
host's filesystem), exec, ps, logs, port, rename, network connect/disconnect."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from tests.support.daemon import Daemon
from tests.support.runtime import BUSYBOX_TAR


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_image_import_ls_rm(daemon: Daemon, busybox: str) -> None:
    out = _ok(daemon.cnm("image", "import", str(BUSYBOX_TAR), "busybox:cnm"))
    lines = out.splitlines()
    assert lines[0].startswith("Importing ")
    assert lines[-1].startswith("sha256:")
    table = _ok(daemon.cnm("image", "ls")).splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(row.split()[:2] == ["busybox", "cnm"] for row in table[1:])
    assert _ok(daemon.cnm("image", "rm", "busybox:cnm")) == "Untagged: busybox:cnm\n"
    missing = daemon.cnm("image", "import", "/nonexistent.tar", "x:y")
    assert missing.returncode == 1
    assert "cannot read /nonexistent.tar" in missing.stderr


def test_run_foreground_and_detached(
    daemon: Daemon,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    hi = daemon.cnm("run", "--rm", busybox, "sh", "-c", "echo hi; echo err >&2; exit 5")
    assert (hi.returncode, hi.stdout, hi.stderr) == (5, "hi\n", "err\n")

    net, other = names("cnm"), names("cnm2")
    _ok(daemon.cnm("network", "create", "--subnet", "10.73.0.0/24", net))
    _ok(daemon.cnm("network", "create", "--subnet", "10.74.0.0/24", other))
    web = containers("web")
    web_id = _ok(
        daemon.cnm(
            "run", "-d", "--name", web, "--network", net, "--ip", "10.73.0.50",
            "--hostname", "webhost", "--dns", "10.0.0.53", "--add-host", "db:10.0.0.9",
            "-p", "8080:80", "--expose", "443", busybox, "sh", "-c", "echo up; sleep 1000",
        )
    ).strip()  # fmt: skip
    ps = _ok(daemon.cnm("ps", "--filter", f"name={web}")).splitlines()
    assert ps[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
    assert ps[1].startswith(web_id[:12])
    assert "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 443/tcp" in ps[1]
    (data,) = json.loads(_ok(daemon.cnm("inspect", web)))
    assert data["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert (data["HostConfig"]["Dns"], data["HostConfig"]["ExtraHosts"]) == (
        ["10.0.0.53"],
        ["db:10.0.0.9"],
    )
    assert _ok(daemon.cnm("port", web, "80")).split() == ["0.0.0.0:8080", "[::]:8080"]
    unbound = daemon.cnm("port", web, "443")
    assert unbound.returncode == 1
    assert "No public port '443/tcp' published" in unbound.stderr

    files = _ok(daemon.cnm("exec", web, "cat", "/etc/hostname", "/etc/resolv.conf", "/etc/hosts"))
    assert files.startswith("webhost\n")
    assert "nameserver " in files  # --dns: the server itself, or the embedded DNS forwarding to it
    assert "10.0.0.9\tdb" in files or "10.0.0.9 db" in files
    assert "10.73.0.50" in files
    failed = daemon.cnm("exec", web, "sh", "-c", "exit 9")
    assert failed.returncode == 9

    _ok(daemon.cnm("network", "connect", "--ip", "10.74.0.60", other, web))
    assert "inet 10.74.0.60/24" in _ok(daemon.cnm("exec", web, "ip", "-4", "addr"))
    _ok(daemon.cnm("network", "disconnect", other, web))
    assert "10.74.0.60" not in _ok(daemon.cnm("exec", web, "ip", "-4", "addr"))

    renamed = containers("renamed")
    _ok(daemon.cnm("rename", web, renamed))
    assert _ok(daemon.cnm("logs", renamed)) == "up\n"
    (data,) = json.loads(_ok(daemon.cnm("inspect", renamed)))
    assert data["Name"] == f"/{renamed}"
    assert _ok(daemon.cnm("inspect", "-f", "{{.Config.Hostname}}", renamed)) == "webhost\n"
    assert _ok(daemon.cnm("stop", "-t", "1", renamed)) == f"{renamed}\n"
    assert _ok(daemon.cnm("rm", renamed)) == f"{renamed}\n"


def test_exec_forwards_stdin(
    daemon: Daemon, busybox: str, containers: Callable[[str], str]
) -> None:
    name = containers("stdin")
    _ok(daemon.cnm("run", "-d", "--name", name, busybox, "sleep", "1000"))
    echoed = daemon.cnm("exec", "-i", name, "sh", "-c", "tr a-z A-Z", stdin="piped text\n")
    assert (echoed.returncode, echoed.stdout) == (0, "PIPED TEXT\n")


def test_host_filesystem_run(
    daemon: Daemon,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    """``cnm run -- COMMAND`` (no image): the host's programs, in a sandbox of its own."""
    net = names("host-fs")
    _ok(daemon.cnm("network", "create", "--subnet", "10.75.0.0/24", net))
    py = containers("py")
    _ok(
        daemon.cnm(
            "run", "-d", "--name", py, "--network", net, "--ip", "10.75.0.8", "--",
            "python3", "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", "/etc",
        )
    )  # fmt: skip
    (data,) = json.loads(_ok(daemon.cnm("inspect", py)))
    assert data["Config"]["Image"] == "cnm/host"
    fetched = daemon.cnm(
        "run", "--rm", "--network", net, busybox, "sh", "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do "
        "timeout 5 wget -qO- http://10.75.0.8:8000/hostname && exit 0; sleep 0.3; done; exit 1",
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    host = daemon.cnm("run", "--rm", "--network", net, "--", "cat", "/etc/hostname")
    assert host.returncode == 0, host.stderr
    assert len(host.stdout.strip()) == 12  # the container's generated hostname, not the host's


def test_errors_reach_the_user(daemon: Daemon, busybox: str) -> None:
    absent = daemon.cnm("run", "--rm", "busybox:absent", "true")
    assert absent.returncode == 1
    assert "Error response from daemon: No such image: busybox:absent" in absent.stderr
    no_image = daemon.cnm("run", "--rm")
    assert no_image.returncode == 1
    assert "need an image" in no_image.stderr
    gone = daemon.cnm("stop", "no-such-container")
    assert gone.returncode == 1
    assert "No such container: no-such-container" in gone.stderr
