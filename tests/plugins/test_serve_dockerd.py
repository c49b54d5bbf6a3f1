"""A real dockerd (Debian's docker.io 20.10) using ``cnm plugin serve``: ``docker network create
-d cnm --ipam-driver cnm``, containers on it reaching each other by name, a published port, with
cnm making the bridge, the veths and the nftables rules.

How dockerd is kept off the machine, as /work/shared/peers does and more:

* it runs in a network namespace of its own (made by the test; nothing in it is routed
  anywhere), with ``--iptables=false --ip6tables=false --bridge=none``: it writes no firewall
  rule at all, and the test checks that the machine's own tables are as they were;
* in a private mount namespace (``unshare -m``) where the test's directories are bind-mounted
  over /run (so /run/docker/plugins is the test's, holding only cnm's socket) and over
  /etc/docker (its key.json); its data, exec root, pid file, socket, cgroup parent and
  containerd are its own;
* ``--dns`` names a stub in that namespace that answers everything itself
  (tests/dns/stub_upstream.py), so not even a DNS query leaves.

Everything is stopped by PID and removed afterwards: containers, dockerd and its containerd,
anything else left in its namespace, the namespace, and the cgroup directories it made.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnm.osl.namespace import NetNamespace, delete_netns
from tests.support.netns import make_test_netns
from tests.support.runtime import BUSYBOX_TAR

from .processes import ServedPlugin

DOCKERD = Path("/usr/sbin/dockerd")
DOCKER = Path("/usr/bin/docker")  # the 20.10 CLI, dockerd's own
STUB_DNS = Path(__file__).parents[1] / "dns" / "stub_upstream.py"
STUB_ADDRESS = "198.19.53.53"  # RFC 2544 benchmarking space, held by a bridge in the namespace
START_TIMEOUT_S = 60.0

pytestmark = pytest.mark.skipif(
    not (DOCKERD.exists() and DOCKER.exists() and shutil.which("unshare")),
    reason="needs dockerd, the docker 20.10 CLI and unshare (scripts/setup.sh --test)",
)


def _machine_firewall() -> tuple[str, str]:
    """The machine's nftables tables and iptables chains, to compare before and after."""
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    chains = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return tables, "\n".join(line for line in chains.splitlines() if line[:1] in (":", "*"))


@dataclass
class Dockerd:
    root: Path
    netns: NetNamespace
    cgroup_parent: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(DOCKER), "-H", f"unix://{self.socket}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.root), "DOCKER_CONFIG": str(self.root)},
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def start(self) -> None:
        for directory in ("run/docker/plugins", "etc-docker", "data", "exec"):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        (self.root / "daemon.json").write_text("{}")
        script = (
            f"mount --bind {self.root / 'run'} /run && "
            f"mount --bind {self.root / 'etc-docker'} /etc/docker && "
            f"exec {DOCKERD} --data-root {self.root / 'data'} --exec-root {self.root / 'exec'} "
            f"--pidfile {self.root / 'dockerd.pid'} -H unix://{self.socket} "
            f"--config-file {self.root / 'daemon.json'} --iptables=false --ip6tables=false "
            f"--bridge=none --storage-driver vfs --dns {STUB_ADDRESS} "
            f"--cgroup-parent /{self.cgroup_parent}"
        )
        command = ["nsenter", f"--net={self.netns.path}", "unshare", "-m", "--propagation",
                   "private", "sh", "-c", script]  # fmt: skip
        with open(self.root / "dockerd.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.docker("version", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start:\n{(self.root / 'dockerd.log').read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to dockerd (it stops its containerd), SIGKILL if it hangs; then anything
        still in the namespace (container shims) by PID."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in _pids_in(self.netns):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            made = hierarchy / self.cgroup_parent
            for directory in sorted(made.glob("**/"), reverse=True) if made.is_dir() else []:
                with suppress(OSError):
                    directory.rmdir()


def _pids_in(netns: NetNamespace) -> list[int]:
    wanted = os.stat(netns.path).st_ino
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino == wanted:
                    found.append(int(entry.name))
    return found


def _in_netns(netns: NetNamespace, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={netns.path}", *command], capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def dockerd(tmp_path: Path) -> Iterator[tuple[Dockerd, ServedPlugin]]:
    before = _machine_firewall()
    netns = make_test_netns("dockerd")
    # containerd's socket paths must stay under 104 characters: a short root of our own
    root = Path(tempfile.mkdtemp(prefix="cnmd-", dir="/tmp"))
    daemon = Dockerd(root, netns, f"cnm-test-{secrets.token_hex(4)}")
    plugin = ServedPlugin(
        root / "run" / "docker" / "plugins" / "cnm.sock",
        tmp_path / "plugin-data",
        tmp_path / "plugin.log",
        netns=netns.path,
    )
    stub: subprocess.Popen[str] | None = None
    try:
        assert _in_netns(netns, "ip", "link", "add", "stubdns0", "type", "bridge").returncode == 0
        _in_netns(netns, "ip", "addr", "add", f"{STUB_ADDRESS}/32", "dev", "stubdns0")
        _in_netns(netns, "ip", "link", "set", "stubdns0", "up")
        stub = subprocess.Popen(
            ["nsenter", f"--net={netns.path}", sys.executable, str(STUB_DNS), "--log",
             str(tmp_path / "stub.log"), f"{STUB_ADDRESS}=ok"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert stub.stdout is not None and stub.stdout.readline().strip() == "ready"
        (root / "run" / "docker" / "plugins").mkdir(parents=True)
        plugin.start()
        daemon.start()
        yield daemon, plugin
    finally:
        if daemon.process is not None:
            names = daemon.docker("ps", "-aq", check=False).stdout.split()
            if names:
                daemon.docker("rm", "-f", *names, check=False)
            daemon.docker("network", "prune", "-f", check=False)
        daemon.stop()
        plugin.stop()
        if stub is not None:
            stub.kill()
            stub.wait()
            if stub.stdout is not None:
                stub.stdout.close()
        netns.close()
        delete_netns(netns.path)
        shutil.rmtree(root, ignore_errors=True)
    assert _machine_firewall() == before, "dockerd or cnm changed the machine's firewall"


def test_dockerd_runs_containers_on_cnm(dockerd: tuple[Dockerd, ServedPlugin]) -> None:
    daemon, plugin = dockerd
    daemon.docker("import", str(BUSYBOX_TAR), "busybox:local")
    daemon.docker("network", "create", "-d", "cnm", "--ipam-driver", "cnm", "cnmnet")
    (network,) = json.loads(daemon.docker("network", "inspect", "cnmnet").stdout)
    assert (network["Driver"], network["IPAM"]["Driver"]) == ("cnm", "cnm")
    subnet = network["IPAM"]["Config"][0]["Subnet"]
    assert subnet == "172.17.0.0/16"  # cnm's IPAM chose it (Docker's order)

    # cnm made the bridge, tagged with the network's id
    bridge = f"br-{network['Id'][:12]}"
    shown = json.loads(_in_netns(daemon.netns, "ip", "-d", "-j", "link", "show", bridge).stdout)
    assert shown[0]["ifalias"] == f"cnm:net:{network['Id']}"

    web = "mkdir /www && echo hello-from-cnm > /www/index.html && exec httpd -f -p 80 -h /www"
    daemon.docker("run", "-d", "--name", "web", "--network", "cnmnet", "-p", "18080:80",
                  "busybox:local", "sh", "-c", web)  # fmt: skip
    inside = daemon.docker("exec", "web", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "inet 172.17.0.2/16" in inside
    routes = daemon.docker("exec", "web", "ip", "route").stdout
    assert "default via 172.17.0.1 dev eth0" in routes
    veths = json.loads(_in_netns(daemon.netns, "ip", "-j", "link", "show", "master", bridge).stdout)
    assert len(veths) == 1 and veths[0]["ifname"].startswith("veth")

    def fetched() -> str:
        return daemon.docker(
            "run", "--rm", "--network", "cnmnet", "busybox:local",
            "timeout", "3", "wget", "-qO-", "http://web/", check=False,
        ).stdout  # fmt: skip

    deadline = time.monotonic() + 10
    while (answer := fetched()) != "hello-from-cnm\n" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer == "hello-from-cnm\n"

    # the published port goes through cnm's nftables table in dockerd's namespace
    ruleset = _in_netns(daemon.netns, "nft", "list", "table", "inet", "cnm").stdout
    assert "18080" in ruleset
    published = _in_netns(
        daemon.netns, sys.executable, "-c",
        "import urllib.request; print(urllib.request.urlopen('http://172.17.0.1:18080/', timeout=5).read().decode(), end='')",
    )  # fmt: skip
    assert published.stdout == "hello-from-cnm\n", published.stderr

    # names outside the network go to the stub, never further
    looked_up = daemon.docker(
        "run", "--rm", "--network", "cnmnet", "busybox:local", "nslookup", "example.com"
    ).stdout
    assert "198.51.100.7" in looked_up

    daemon.docker("rm", "-f", "web")
    daemon.docker("network", "rm", "cnmnet")
    gone = _in_netns(daemon.netns, "ip", "link", "show", bridge)
    deadline = time.monotonic() + 5
    while gone.returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        gone = _in_netns(daemon.netns, "ip", "link", "show", bridge)
    assert gone.returncode != 0, "the plugin's bridge outlived the network"
    calls = [line for line in plugin.log().splitlines() if "plugin call" in line]
    assert any("method=NetworkDriver.Join" in line for line in calls)
    assert any("method=NetworkDriver.DeleteNetwork" in line for line in calls)
