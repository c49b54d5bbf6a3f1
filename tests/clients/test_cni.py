"""``cnm-cni`` driven by a CNI runtime that follows the spec (``tests/support/cni.py``) against
the session's daemon: ADD, CHECK, DEL, GC, STATUS in the spec's shapes (beside the reference
``bridge`` plugin's on the same kind of configuration), versions, chaining with the reference
plugins, a CNI container and a Docker-API container on one network (packets, names both ways),
``portMappings`` through cnm's firewall, several attachments of one container, a DEL after the
runtime removed the namespace, and nothing left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dns.queries import addresses, ask
from tests.support.cni import (
    Attachment,
    CniRuntime,
    container_netns,
    netns_run,
)
from tests.support.daemon import DOCKER_CLIS, Daemon, DockerCli
from tests.support.lan import lan

pytestmark = pytest.mark.skipif(
    not Path("/usr/lib/cni/bridge").exists(),
    reason="the reference CNI plugins (containernetworking-plugins) are not installed",
)

WEB = ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]  # fmt: skip


def _conflist(
    daemon: Daemon, network: str, *plugins: dict[str, Any], version: str = "1.1.0"
) -> dict[str, Any]:
    cnm = {
        "type": "cnm-cni",
        "network": network,
        "socket": str(daemon.socket),
        "capabilities": {"portMappings": True, "ips": True, "mac": True, "aliases": True},
    }
    return {"cniVersion": version, "name": f"cni-{network}", "plugins": [cnm, *plugins]}


def _network(daemon: Daemon, name: str, **body: Any) -> dict[str, Any]:
    reply = daemon.request("POST", "/networks/create", {"Name": name, **body})
    assert reply.status == 201, reply.body
    shown = daemon.request("GET", f"/networks/{name}").json()
    assert isinstance(shown, dict)
    return shown


def _attached(daemon: Daemon, network: str) -> dict[str, Any]:
    shown = daemon.request("GET", f"/networks/{network}").json()
    assert isinstance(shown, dict)
    return shown["Containers"]  # type: ignore[no-any-return]


def _links(netns: str) -> list[str]:
    return [link["ifname"] for link in json.loads(netns_run(netns, "ip", "-j", "link").stdout)]


def _host_links(daemon: Daemon) -> set[str]:
    return set(_links(daemon.netns.path))


_GET = r"""
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
conn.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
data = b""
while chunk := conn.recv(4096):
    data += chunk
print(data.split(b"\r\n\r\n", 1)[-1].decode().strip())
"""


def _fetch(netns: str, address: str, port: int = 80, timeout_s: float = 5) -> str:
    """The page at http://address:port/ fetched from ``netns``, retried while the server
    starts; "" if it never answered. The route must use an interface the test made."""
    (route,) = json.loads(netns_run(netns, "ip", "-j", "route", "get", address).stdout)
    assert route["dev"].startswith(("eth", "lan", "wire")), f"{address} would leave via {route}"
    deadline = time.monotonic() + timeout_s
    while True:
        done = netns_run(netns, sys.executable, "-c", _GET, address, str(port))
        if done.returncode == 0 or time.monotonic() > deadline:
            return done.stdout.strip()
        time.sleep(0.1)


def _shape(value: Any) -> Any:
    """The keys of a result at every level, without the values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


@pytest.fixture
def cni(
    daemon: Daemon, names: Callable[[str], str]
) -> Iterator[Callable[[dict[str, Any]], CniRuntime]]:
    """``cni(conflist)``: a runtime in the daemon's namespace; whatever it still has attached
    when the test ends is deleted (before the test's networks go)."""
    made: list[CniRuntime] = []

    def make(conflist: dict[str, Any]) -> CniRuntime:
        made.append(CniRuntime(conflist, daemon.netns.path))
        return made[-1]

    yield make
    for runtime in made:
        for container_id, ifname in list(runtime.results):
            runtime.delete(Attachment(container_id, "", ifname), with_netns=False)


@pytest.fixture
def netns() -> Iterator[str]:
    with container_netns() as path:
        yield path


@pytest.fixture
def docker_cli(daemon: Daemon, tmp_path: Path) -> DockerCli:
    if not DOCKER_CLIS:
        pytest.skip("no docker CLI on this machine")
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "DOCKER_HOST": daemon.host,
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
    }
    return DockerCli(DOCKER_CLIS[0], env)


# ----------------------------------------------------------------------------- the verbs


def test_add_check_del_in_the_specs_shape_as_the_reference_bridge_plugin(
    daemon: Daemon,
    cni: Callable[[dict[str, Any]], CniRuntime],
    names: Callable[[str], str],
    netns: str,
    tmp_path: Path,
) -> None:
    net = names("cni")
    shown = _network(daemon, net)
    subnet, gateway = shown["IPAM"]["Config"][0]["Subnet"], shown["IPAM"]["Config"][0]["Gateway"]
    runtime = cni(_conflist(daemon, net, version="1.0.0"))
    attachment = Attachment("ctr-shape", netns, "eth0")
    before = _host_links(daemon)

    result = runtime.add(attachment)

    bridge, veth, inner = result["interfaces"]
    assert bridge["name"] == f"br-{shown['Id'][:12]}" and "sandbox" not in bridge
    assert veth["name"].startswith("veth") and "sandbox" not in veth
    assert inner["name"] == "eth0" and inner["sandbox"] == netns
    (ip,) = result["ips"]
    assert ip["interface"] == 2 and ip["gateway"] == gateway
    assert ip["address"].endswith("/" + subnet.split("/")[1])
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": gateway}]
    assert result["dns"] == {"nameservers": ["127.0.0.11"], "options": ["ndots:0"]}
    # the kernel agrees with the result
    shown_link = json.loads(netns_run(netns, "ip", "-j", "addr", "show", "eth0").stdout)[0]
    assert shown_link["address"] == inner["mac"]
    assert ip["address"] in [f"{a['local']}/{a['prefixlen']}" for a in shown_link["addr_info"]]
    assert f"default via {gateway} dev eth0" in netns_run(netns, "ip", "route").stdout
    assert [c["IPv4Address"] for c in _attached(daemon, net).values()] == [ip["address"]]

    # the reference bridge plugin on the same kind of configuration, in the same host
    with container_netns("ref") as ref_netns:
        reference = CniRuntime(
            {
                "cniVersion": "1.0.0",
                "name": "refnet",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cniref0",
                        "isGateway": True,
                        "ipam": {
                            "type": "host-local",
                            "subnet": "10.254.77.0/24",
                            "dataDir": str(tmp_path / "host-local"),
                            "routes": [{"dst": "0.0.0.0/0", "gw": "10.254.77.1"}],
                        },
                        "dns": {"nameservers": ["10.254.77.1"], "options": ["ndots:0"]},
                    }
                ],
            },
            daemon.netns.path,
        )
        ref_attachment = Attachment("ctr-ref", ref_netns, "eth0")
        theirs = reference.add(ref_attachment)
        assert _shape(theirs) == _shape(result)
        reference.delete(ref_attachment)
        subprocess.run(["nsenter", f"--net={daemon.netns.path}", "ip", "link", "del", "cniref0"], check=True)  # fmt: skip

    runtime.check(attachment)
    runtime.delete(attachment)
    runtime.delete(attachment)  # DEL again: a success, nothing to do

    assert _links(netns) == ["lo"]  # cnm's interface is gone; the namespace is the runtime's
    assert Path(netns).exists()
    assert _host_links(daemon) == before
    assert _attached(daemon, net) == {}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_each_version_gets_its_result_shape(
    daemon: Daemon,
    cni: Callable[[dict[str, Any]], CniRuntime],
    names: Callable[[str], str],
    netns: str,
    version: str,
) -> None:
    net = names("ver")
    _network(daemon, net)
    runtime = cni(_conflist(daemon, net, version=version))
    attachment = Attachment("ctr-version", netns)
    result = runtime.add(attachment)
    assert result["cniVersion"] == version
    assert all(("version" in ip) == version.startswith("0.") for ip in result["ips"])
    assert all(("mtu" in iface) == (version == "1.1.0") for iface in result["interfaces"])
    if version != "0.3.0":  # CHECK came with 0.4.0; the spec's runtimes do not send it before
        runtime.check(attachment)
    runtime.delete(attachment)


def test_chained_with_the_reference_plugins(
    daemon: Daemon,
    cni: Callable[[dict[str, Any]], CniRuntime],
    names: Callable[[str], str],
    netns: str,
) -> None:
    """loopback before cnm-cni (a prevResult to pass on), tuning after it (a real plugin that
    must parse cnm's result and hand it back): ADD in order, CHECK, DEL in reverse."""
    net = names("chain")
    _network(daemon, net)
    conflist = _conflist(daemon, net, {"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}}, version="1.0.0")  # fmt: skip
    conflist["plugins"].insert(0, {"type": "loopback"})
    runtime = cni(conflist)
    attachment = Attachment("ctr-chain", netns)

    result = runtime.add(attachment)

    interfaces = [i["name"] for i in result["interfaces"]]
    assert (interfaces[0], interfaces[-1]) == ("lo", "eth0")
    assert {ip["address"]: ip["interface"] for ip in result["ips"]}["127.0.0.1/8"] == 0
    ours = [ip for ip in result["ips"] if not ip["address"].startswith(("127.", "::1"))]
    assert [ip["interface"] for ip in ours] == [3]
    assert netns_run(netns, "cat", "/proc/sys/net/core/somaxconn").stdout.strip() == "512"
    runtime.check(attachment)
    runtime.delete(attachment)
    assert _links(netns) == ["lo"] and _attached(daemon, net) == {}


# ----------------------------------------------------------------------------- sharing


def test_a_cni_container_and_a_docker_container_talk_and_resolve_each_other(
    daemon: Daemon,
    cni: Callable[[dict[str, Any]], CniRuntime],
    docker_cli: DockerCli,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
    netns: str,
) -> None:
    net, web = names("shared"), containers("web")
    _network(daemon, net)
    docker_cli("run", "-d", "--name", web, "--network", net, busybox, *WEB)
    runtime = cni(_conflist(daemon, net))
    attachment = Attachment(
        "ctr-shared",
        netns,
        args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=cnipod",
        capability_args={"aliases": ["cni-alias"]},
    )
    result = runtime.add(attachment)
    ours = result["ips"][0]["address"].split("/")[0]
    web_ip = _attached(daemon, net)
    (web_address,) = [c["IPv4Address"].split("/")[0] for c in web_ip.values() if c["Name"] == web]

    # the CNI container asks the embedded DNS (the runtime writes the result's dns to its
    # resolv.conf) for the Docker container, and fetches from it
    assert addresses(ask(netns, web)) == [web_address]
    assert _fetch(netns, web_address) == "hello-from-web"
    # the Docker container resolves the CNI container by its pod name and its alias
    for name in ("cnipod", "cni-alias"):
        docker_cli("exec", web, "ping", "-c1", "-W2", name)
        answer = docker_cli("exec", web, "nslookup", name).stdout
        assert ours in answer, answer
    # and docker network inspect lists it beside the Docker container
    assert sorted(c["IPv4Address"].split("/")[0] for c in _attached(daemon, net).values()) == sorted([ours, web_address])  # fmt: skip

    runtime.delete(attachment)
    assert docker_cli("exec", web, "nslookup", "cnipod", check=False).returncode != 0


def test_port_mappings_are_published_through_cnms_firewall(
    daemon: Daemon,
    cni: Callable[[dict[str, Any]], CniRuntime],
    names: Callable[[str], str],
    netns: str,
    tmp_path: Path,
) -> None:
    net = names("ports")
    _network(daemon, net)
    host_port = 18080
    runtime = cni(_conflist(daemon, net))
    attachment = Attachment(
        "ctr-ports",
        netns,
        capability_args={
            "portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]
        },
    )
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello-from-cni\n")
    runtime.add(attachment)
    server = subprocess.Popen(
        ["nsenter", f"--net={netns}", "busybox", "httpd", "-f", "-p", "80", "-h", str(www)]
    )
    try:
        with lan(daemon.netns.path, ["10.173.0.1/24"]) as outside:
            netns_run(
                daemon.netns.path, "ip", "addr", "add", "10.173.0.2/24", "dev", outside.parent
            )
            assert _fetch(outside.outside, "10.173.0.2", host_port) == "hello-from-cni"
            ruleset = netns_run(daemon.netns.path, "nft", "list", "table", "inet", "cnm").stdout
            assert str(host_port) in ruleset
            runtime.delete(attachment)
            ruleset = netns_run(daemon.netns.path, "nft", "list", "table", "inet", "cnm").stdout
            assert str(host_port) not in ruleset
            assert _fetch(outside.outside, "10.173.0.2", host_port, timeout_s=0) == ""
    finally:
        server.kill()
        server.wait()


def test_two_attachments_of_one_container_share_its_sandbox(
    daemon: Daemon,
    cni: Callable[[dict[str, Any]], CniRuntime],
    names: Callable[[str], str],
    netns: str,
) -> None:
    first, second = names("one"), names("two")
    _network(daemon, first)
    _network(daemon, second)
    one = cni(_conflist(daemon, first))
    two = cni(_conflist(daemon, second))
    eth0, net1 = Attachment("ctr-two", netns, "eth0"), Attachment("ctr-two", netns, "net1")
    one.add(eth0)
    result = two.add(net1)
    assert result["interfaces"][-1]["name"] == "net1"
    assert "routes" not in result  # the default route stays with eth0, which joined first
    assert sorted(_links(netns)) == ["eth0", "lo", "net1"]
    two.delete(net1)
    assert sorted(_links(netns)) == ["eth0", "lo"]
    one.check(eth0)
    one.delete(eth0)
    assert _links(netns) == ["lo"]
    assert _attached(daemon, first) == {} and _attached(daemon, second) == {}


def test_del_after_the_runtime_removed_the_namespace(
    daemon: Daemon, cni: Callable[[dict[str, Any]], CniRuntime], names: Callable[[str], str]
) -> None:
    net = names("gone")
    _network(daemon, net)
    runtime = cni(_conflist(daemon, net))
    before = _host_links(daemon)
    with container_netns() as path:
        attachment = Attachment("ctr-gone", path)
        runtime.add(attachment)
    # the runtime unmounted its namespace first; cnm's own mount kept it (and the veth) alive
    runtime.delete(attachment, with_netns=False)
    # the kernel frees a namespace (and the veth end it took along) in a worker, a little later
    # (``before`` may still hold an earlier test's bridge that is deleted in the background)
    deadline = time.monotonic() + 10
    while _host_links(daemon) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_links(daemon) - before == set()
    assert _attached(daemon, net) == {}


def test_gc_removes_the_attachments_the_runtime_no_longer_lists(
    daemon: Daemon, cni: Callable[[dict[str, Any]], CniRuntime], names: Callable[[str], str]
) -> None:
    net = names("gc")
    _network(daemon, net)
    runtime = cni(_conflist(daemon, net))
    other = cni({**_conflist(daemon, net), "name": "another-config"})
    with container_netns("a") as kept_ns, container_netns("b") as stale_ns, container_netns("c") as foreign_ns:  # fmt: skip
        kept, stale = Attachment("ctr-kept", kept_ns), Attachment("ctr-stale", stale_ns)
        foreign = Attachment("ctr-foreign", foreign_ns)
        runtime.add(kept)
        runtime.add(stale)
        other.add(foreign)  # another network configuration's: not this GC's business

        assert runtime.gc([kept]) == []

        assert _links(stale_ns) == ["lo"]
        assert sorted(_links(kept_ns)) == ["eth0", "lo"]
        assert sorted(_links(foreign_ns)) == ["eth0", "lo"]
        runtime.check(kept)
        runtime.delete(stale)  # the runtime's late DEL finds nothing to do
        runtime.delete(kept)
        other.delete(foreign)
    assert _attached(daemon, net) == {}


def test_status_says_whether_the_network_can_take_containers(
    daemon: Daemon,
    cni: Callable[[dict[str, Any]], CniRuntime],
    names: Callable[[str], str],
    tmp_path: Path,
) -> None:
    net = names("status")
    _network(daemon, net)
    ready = cni(_conflist(daemon, net)).status()
    assert [(o.returncode, o.output) for o in ready] == [(0, None)]
    (missing,) = cni(_conflist(daemon, "no-such-net")).status()
    assert missing.code == 50 and "network no-such-net not found" in missing.message
    down = _conflist(daemon, net)
    down["plugins"][0]["socket"] = str(tmp_path / "nobody.sock")
    (unreachable,) = cni(down).status()
    assert unreachable.code == 50 and "cannot reach the cnm daemon" in unreachable.message
