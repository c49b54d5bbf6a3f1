"""The resolver in a real daemon: containers made through the Engine API resolve each other,
the daemon's --dns is the upstream, ``cnm dns lookup`` explains, ``/cnm/metrics`` counts, the
docker CLI's ``nslookup`` works, and after a daemon restart the running containers are served
again. The daemon runs in a namespace of its own; its stub upstream runs there too."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.support.daemon import DOCKER_CLIS, Daemon, running_daemon
from tests.support.runtime import BUSYBOX, BUSYBOX_TAR

from .queries import addresses, ask, send_raw, start_stubs

STUB = "127.0.0.53"  # loopback of the daemon's namespace


def _run(daemon: Daemon, name: str, network: str, aliases: list[str] | None = None) -> str:
    body = {
        "Image": BUSYBOX,
        "Cmd": ["sleep", "1000"],
        "HostConfig": {"NetworkMode": network},
        "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": aliases or []}}},
    }
    reply = daemon.request("POST", f"/containers/create?name={name}", body)
    assert reply.status == 201, reply.body
    reply = daemon.request("POST", f"/containers/{name}/start")
    assert reply.status == 204, reply.body
    return _inspect(daemon, name)["NetworkSettings"]["SandboxKey"]


def _inspect(daemon: Daemon, name: str) -> dict[str, object]:
    data = daemon.request("GET", f"/containers/{name}/json").json()
    assert isinstance(data, dict)
    return data


def _ip(daemon: Daemon, name: str, network: str) -> str:
    settings = _inspect(daemon, name)["NetworkSettings"]
    assert isinstance(settings, dict)
    return str(settings["Networks"][network]["IPAddress"])


def test_daemon_serves_explains_counts_and_comes_back_after_restart(tmp_path: Path) -> None:
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox fixture at {BUSYBOX_TAR}")
    with running_daemon(tmp_path / "daemon", "--dns", STUB) as daemon:
        stub = start_stubs(tmp_path / "stub.log", f"{STUB}=ok", netns=daemon.netns.path)
        try:
            reply = daemon.request(
                "POST",
                "/images/create?fromSrc=-&repo=busybox&tag=local",
                BUSYBOX_TAR.read_bytes(),
                {"Content-Type": "application/x-tar"},
            )
            assert reply.status == 200, reply.body
            reply = daemon.request("POST", "/networks/create", {"Name": "dnsnet"})
            assert reply.status == 201, reply.body
            _run(daemon, "web", "dnsnet", ["www"])
            client = _run(daemon, "client", "dnsnet")
            legacy = _run(daemon, "legacy", "bridge")
            web_ip = _ip(daemon, "web", "dnsnet")

            assert addresses(ask(client, "www")) == [web_ip]
            assert addresses(ask(client, "www.example.org")) == ["198.51.100.7"]
            assert send_raw(legacy, dns.message.make_query("web", "A").to_wire(), 0.3) is None

            found = daemon.cnm("dns", "lookup", "client", "www")
            assert found.returncode == 0, found.stderr
            assert "client asks www A: records" in found.stdout
            assert "record: container web (alias)" in found.stdout
            assert f"IN A {web_ip}" in found.stdout
            forwarded = daemon.cnm("dns", "lookup", "client", "www.example.org", "-f", "json")
            data = json.loads(forwarded.stdout)
            assert data["Source"] == "forwarded" and data["Upstreams"] == [STUB]
            assert data["Tries"][0]["Result"] == "NOERROR"
            host = daemon.cnm("dns", "lookup", "legacy", "web")
            assert "host resolvers" in host.stdout, host.stdout
            missing = daemon.cnm("dns", "lookup", "nosuch", "web")
            assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr
            metrics = daemon.request("GET", "/cnm/metrics").json()
            assert isinstance(metrics, dict)
            assert metrics["DNS"]["Sandboxes"] == 2
            assert metrics["DNS"]["Queries"]["local"] >= 2
            assert metrics["DNS"]["Upstream"]["tries"] >= 2

            for cli in DOCKER_CLIS:
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(tmp_path),
                    "DOCKER_HOST": daemon.host,
                    "DOCKER_CONFIG": str(tmp_path / "docker-config"),
                }
                done = subprocess.run(
                    [cli, "exec", "client", "nslookup", "www"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode == 0 and f"Address: {web_ip}" in done.stdout, done

            daemon.stop()
            daemon.start()
            assert addresses(ask(client, "web.dnsnet")) == [web_ip]
            assert ask(client, "legacy").rcode() == dns.rcode.NXDOMAIN
            metrics = daemon.request("GET", "/cnm/metrics").json()
            assert isinstance(metrics, dict) and metrics["DNS"]["Sandboxes"] == 2
        finally:
            stub.stop()
            for name in ("web", "client", "legacy"):
                daemon.request("DELETE", f"/containers/{name}?force=1")
            daemon.request("DELETE", "/networks/dnsnet")
