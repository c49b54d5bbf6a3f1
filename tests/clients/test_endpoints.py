"""What a container's endpoints are given, through the docker CLIs and docker-py: link-local
addresses and driver options, the order of a sandbox's endpoints (eth0 and the default route as
dockerd 20.10 gives them), ports on internal networks, the MAC of Config.MacAddress, the
host-gateway extra host, the domain name, and IPAM options echoed as given."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator

import docker
import pytest
from docker.errors import APIError

from tests.support.daemon import Daemon, DockerCli


@pytest.fixture
def api(daemon: Daemon) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=daemon.host, version="1.41")
    yield client
    client.close()


def _in_daemon_ns(daemon: Daemon, *args: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net={daemon.netns.path}", *args],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout  # fmt: skip


def test_link_local_ips_and_driver_opts(
    api: docker.APIClient,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    net = names("ll")
    api.create_network(net, enable_ipv6=True, ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.181.0.0/24"),
                      docker.types.IPAMPool(subnet="fd00:181::/64")]))  # fmt: skip
    endpoint = api.create_endpoint_config(
        link_local_ips=["169.254.8.8", "fe80::8"], driver_opt={"com.example.setting": "on"}
    )
    name = containers("ll")
    api.create_container(
        busybox, ["sleep", "1000"], name=name,
        host_config=api.create_host_config(network_mode=net),
        networking_config=api.create_networking_config({net: endpoint}),
    )  # fmt: skip
    api.start(name)
    settings = api.inspect_container(name)["NetworkSettings"]["Networks"][net]
    assert settings["IPAMConfig"] == {"LinkLocalIPs": ["169.254.8.8", "fe80::8"]}
    assert settings["DriverOpts"] == {"com.example.setting": "on"}
    inside = api.exec_start(api.exec_create(name, ["ip", "addr", "show", "eth0"])).decode()
    assert "inet 169.254.8.8/16" in inside and "inet6 fe80::8/64" in inside
    # On the default bridge, which has no IPv6, only an IPv4 link-local address can go.
    with pytest.raises(APIError) as refused:
        api.create_container(
            busybox, ["true"],
            networking_config=api.create_networking_config(
                {"bridge": api.create_endpoint_config(link_local_ips=["fe80::9"])}),
        )  # fmt: skip
    assert refused.value.status_code == 400
    assert "was created without IPv6" in refused.value.explanation
    with pytest.raises(APIError) as bad:
        api.create_container(
            busybox, ["true"],
            networking_config=api.create_networking_config(
                {"bridge": api.create_endpoint_config(link_local_ips=["10.0.0.1"])}),
        )  # fmt: skip
    assert bad.value.status_code == 400
    assert bad.value.explanation == "invalid link local IP address: 10.0.0.1"


def test_ipam_options_are_echoed_as_given(
    api: docker.APIClient, docker: DockerCli, names: Callable[[str], str]
) -> None:
    from_py, from_cli = names("ipam"), names("ipam")
    api.create_network(from_py)
    docker("network", "create", from_cli)
    assert api.inspect_network(from_py)["IPAM"]["Options"] is None  # as dockerd
    assert api.inspect_network(from_cli)["IPAM"]["Options"] == {}  # the CLI sends {}


def test_the_sandbox_order_gives_eth0_and_the_default_route(
    docker: DockerCli,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    """dockerd 20.10 with these four networks, whatever order they are connected in: eth0
    is the dual-stack one, then by name, the internal one last; a network connected later
    takes the default route only if it sorts first."""
    prefix = names("ord")
    net = {k: f"{prefix}-{k}" for k in ("c", "a", "b", "z", "0")}
    b = 183 if docker.is_legacy else 182  # each CLI's run has subnets of its own
    docker("network", "create", "--subnet", f"10.{b}.3.0/24", net["c"])
    docker("network", "create", "--internal", "--subnet", f"10.{b}.1.0/24", net["a"])
    docker("network", "create", "--subnet", f"10.{b}.2.0/24", net["b"])
    docker("network", "create", "--ipv6", "--subnet", f"10.{b}.26.0/24", "--subnet", f"fd00:{b}::/64", net["z"])  # fmt: skip
    docker("network", "create", "--subnet", f"10.{b}.10.0/24", net["0"])
    name = containers("ord")
    docker("create", "--name", name, "--network", net["c"], busybox, "sleep", "1000")
    for key in ("a", "b", "z"):
        docker("network", "connect", net[key], name)
    docker("start", name)
    interfaces = {
        line.split()[1]: line.split()[3]
        for line in docker("exec", name, "ip", "-4", "-o", "addr").stdout.splitlines()
        if "eth" in line
    }
    assert interfaces == {
        "eth0": f"10.{b}.26.2/24",
        "eth1": f"10.{b}.2.2/24",
        "eth2": f"10.{b}.3.2/24",
        "eth3": f"10.{b}.1.2/24",
    }
    route = docker("exec", name, "ip", "route", "show", "default").stdout
    assert route.split()[:5] == ["default", "via", f"10.{b}.26.1", "dev", "eth0"]
    assert f"fd00:{b}::1 dev eth0" in docker("exec", name, "ip", "-6", "route").stdout
    # A v4-only network sorting first does not beat the dual-stack one; once that one leaves
    # the default route goes to the first by name.
    docker("network", "connect", net["0"], name)
    assert f"via 10.{b}.26.1 dev eth0" in docker("exec", name, "ip", "route").stdout
    docker("network", "disconnect", net["z"], name)
    assert f"default via 10.{b}.10.1 dev eth4" in docker("exec", name, "ip", "route").stdout


def test_ports_on_an_internal_network_wait_for_a_gateway(
    daemon: Daemon,
    docker: DockerCli,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    sealed, open_ = names("sealed"), names("open")
    docker("network", "create", "--internal", sealed)
    docker("network", "create", open_)
    name = containers("sealed")
    port = "18093" if docker.is_legacy else "18094"
    serve = "echo hi > /tmp/index.html && exec httpd -f -p 80 -h /tmp"
    docker("run", "-d", "--name", name, "-p", f"{port}:80", "--network", sealed, busybox, "sh", "-c", serve)  # fmt: skip
    assert docker("port", name).stdout == ""
    assert json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", name).stdout) == {}
    docker("network", "connect", open_, name)
    assert f"80/tcp -> 0.0.0.0:{port}" in docker("port", name).stdout
    got = _in_daemon_ns(
        daemon, "timeout", "5", "busybox", "wget", "-qO-", f"http://127.0.0.1:{port}/"
    )
    assert got == "hi\n"


def test_mac_of_the_container_survives_a_reconnect(
    docker: DockerCli,
    busybox: str,
    names: Callable[[str], str],
    containers: Callable[[str], str],
) -> None:
    """docker 20.10 (API 1.41) sends --mac-address as Config.MacAddress: the container's, for
    its network mode's endpoint whenever it joins, as Compose's reconnect before start needs."""
    if not docker.is_legacy:
        pytest.skip("the 28.x CLI sends the MAC per endpoint (API 1.44 and later)")
    net, name = names("mac"), containers("mac")
    docker("network", "create", net)
    docker("create", "--name", name, "--network", net, "--mac-address", "02:42:0a:b5:00:09", busybox, "sleep", "1000")  # fmt: skip
    docker("network", "disconnect", net, name)
    docker("network", "connect", "--alias", "again", net, name)
    docker("start", name)
    assert (
        docker("exec", name, "cat", "/sys/class/net/eth0/address").stdout == "02:42:0a:b5:00:09\n"
    )
    assert docker("inspect", "-f", "{{.Config.MacAddress}}", name).stdout.strip() == (
        "02:42:0a:b5:00:09"
    )


def test_host_gateway_and_domainname(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    name = containers("hg")
    out = docker(
        "run", "--name", name, "--hostname", "web", "--domainname", "example.org",
        "--add-host", "host.docker.internal:host-gateway", busybox,
        "sh", "-c", "hostname; cat /proc/sys/kernel/domainname; grep -E 'host.docker|web' /etc/hosts",
    ).stdout.splitlines()  # fmt: skip
    gateway = docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "bridge")
    assert out[:2] == ["web", "example.org"]
    assert out[2] == f"{gateway.stdout.strip()}\thost.docker.internal"
    assert out[3].endswith("\tweb.example.org web")
    extra = docker("inspect", "-f", "{{json .HostConfig.ExtraHosts}}", name).stdout
    assert json.loads(extra) == ["host.docker.internal:host-gateway"]  # as given, as Docker
