"""The real docker CLIs (28.x at /usr/local/bin, 20.10 at /usr/bin) as clients of cnm."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.support.daemon import DockerCli
from tests.support.docker_shapes import DOCKER_NETWORK_KEYS


def _inspect(docker: DockerCli, *refs: str) -> list[dict[str, object]]:
    data = json.loads(docker("network", "inspect", *refs).stdout)
    assert isinstance(data, list)
    return data


def test_ls_shows_the_predefined_networks(docker: DockerCli) -> None:
    table = docker("network", "ls").stdout.splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = {tuple(line.split()[1:]) for line in table[1:]}
    assert {
        ("bridge", "bridge", "local"),
        ("host", "host", "local"),
        ("none", "null", "local"),
    } <= rows
    # Go decodes every field into its type (Created into a time.Time, for one).
    formatted = docker("network", "ls", "--format", "{{.Name}} {{.CreatedAt}} {{.IPv6}}").stdout
    assert "bridge " in formatted


def test_version_and_info(docker: DockerCli) -> None:
    version = docker("version").stdout
    assert "API version:      1.47 (minimum version 1.24)" in version
    assert docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.47"
    info = docker("info", "--format", "{{.ServerVersion}} {{.OSType}} {{.Plugins.Network}}")
    expected = "linux [bridge host ipvlan macvlan null overlay]"
    assert info.stdout.split(" ", 1)[1].strip() == expected
    assert docker("info").returncode == 0


def test_create_inspect_rm(docker: DockerCli, names: Callable[[str], str]) -> None:
    name = names("cli")
    created = docker(
        "network",
        "create",
        "--subnet",
        "10.91.0.0/24",
        "--gateway",
        "10.91.0.254",
        "--ip-range",
        "10.91.0.128/25",
        "--aux-address",
        "router=10.91.0.5",
        "--label",
        "team=net",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "--internal",
        "--attachable",
        name,
    ).stdout.strip()
    assert len(created) == 64
    (network,) = _inspect(docker, name)
    assert set(network) == DOCKER_NETWORK_KEYS
    assert network["Id"] == created
    assert network["IPAM"] == {
        "Driver": "default",
        "Options": {},
        "Config": [
            {
                "Subnet": "10.91.0.0/24",
                "IPRange": "10.91.0.128/25",
                "Gateway": "10.91.0.254",
                "AuxiliaryAddresses": {"router": "10.91.0.5"},
            }
        ],
    }
    assert network["Labels"] == {"team": "net"}
    assert network["Options"] == {"com.docker.network.driver.mtu": "1400"}
    assert (network["Internal"], network["Attachable"], network["EnableIPv6"]) == (
        True,
        True,
        False,
    )
    template = "{{.Name}} {{.Created}} {{json .IPAM.Config}}"
    line = docker("network", "inspect", "-f", template, created[:12]).stdout
    assert line.startswith(f"{name} ")
    assert docker("network", "rm", name).stdout.strip() == name
    gone = docker("network", "inspect", name, check=False)
    assert gone.returncode == 1
    assert "No such network" in gone.stderr or "not found" in gone.stderr


def test_dual_stack_network(docker: DockerCli, names: Callable[[str], str]) -> None:
    name = names("v6")
    docker("network", "create", "--ipv6", "--subnet", "fd00:91::/64", name)
    (network,) = _inspect(docker, name)
    assert network["EnableIPv6"] is True
    configs = network["IPAM"]["Config"]  # type: ignore[index]
    assert {"Subnet": "fd00:91::/64", "Gateway": "fd00:91::1"} in configs
    assert any("." in c["Subnet"] for c in configs)  # an automatic IPv4 pool too


def test_ls_filters_quiet_and_no_trunc(docker: DockerCli, names: Callable[[str], str]) -> None:
    a, b = names("fa"), names("fb")
    id_a = docker("network", "create", "--label", f"set={a}", "--label", "x=1", a).stdout.strip()
    docker("network", "create", "--label", f"set={a}", b)
    assert docker(
        "network", "ls", "-q", "--filter", f"label=set={a}", "--filter", "label=x=1"
    ).stdout.split() == [id_a[:12]]
    listed = docker("network", "ls", "--no-trunc", "-q", "--filter", f"name={a}").stdout.split()
    assert listed == [id_a]
    by_type = docker("network", "ls", "--filter", "type=builtin", "--format", "{{.Name}}")
    assert sorted(by_type.stdout.split()) == ["bridge", "host", "none"]
    null = docker("network", "ls", "--filter", "driver=null", "--format", "{{.Name}}").stdout
    assert null.split() == ["none"]
    dangling = docker("network", "ls", "--filter", "dangling=true", "--format", "{{.Name}}")
    assert {a, b} <= set(dangling.stdout.split())
    bad = docker("network", "ls", "--filter", "colour=red", check=False)
    assert bad.returncode == 1
    assert "invalid filter 'colour'" in bad.stderr


def test_prune_with_label_filters(docker: DockerCli, names: Callable[[str], str]) -> None:
    keep, drop = names("pk"), names("pd")
    docker("network", "create", "--label", "prune=keep", keep)
    docker("network", "create", "--label", "prune=drop", drop)
    out = docker("network", "prune", "-f", "--filter", "label=prune=drop").stdout
    assert out.splitlines()[:2] == ["Deleted Networks:", drop]
    out = docker("network", "prune", "-f", "--filter", "label!=prune=keep").stdout
    assert keep not in out
    assert docker("network", "inspect", keep, check=False).returncode == 0


def test_errors_reach_the_user(docker: DockerCli, names: Callable[[str], str]) -> None:
    removed = docker("network", "rm", "bridge", check=False)
    assert removed.returncode == 1
    assert "Error response from daemon: bridge is a pre-defined network" in removed.stderr

    name = names("err")
    docker("network", "create", name)
    duplicate = docker("network", "create", name, check=False)
    assert duplicate.returncode == 1
    assert f"network with name {name} already exists" in duplicate.stderr

    bad_subnet = docker("network", "create", "--subnet", "10.92.0.0/33", names("err"), check=False)
    assert bad_subnet.returncode == 1
    assert "invalid subnet" in bad_subnet.stderr

    # The docker CLI itself refuses a gateway outside every subnet, before any request.
    outside = docker(
        "network",
        "create",
        "--subnet",
        "10.93.0.0/24",
        "--gateway",
        "10.94.0.1",
        names("err"),
        check=False,
    )
    assert outside.returncode == 1
    assert "no matching subnet for gateway 10.94.0.1" in outside.stderr

    driver = docker("network", "create", "-d", "no-such-driver", names("err"), check=False)
    assert driver.returncode == 1
    assert "could not find network driver 'no-such-driver'" in driver.stderr

    unserved = docker("volume", "ls", check=False)
    assert unserved.returncode == 1
    assert "cnm does not serve GET" in unserved.stderr
