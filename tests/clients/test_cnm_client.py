"""The ``cnm`` CLI as a subprocess against the daemon: output, filters, errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support.daemon import CNM, Daemon


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ls_table_and_formats(daemon: Daemon) -> None:
    lines = _ok(daemon.cnm("network", "ls")).splitlines()
    assert lines[0] == "NETWORK ID     NAME      DRIVER    SCOPE"
    rows = [line.split() for line in lines[1:]]
    assert all(len(row[0]) == 12 for row in rows)
    assert {(r[1], r[2], r[3]) for r in rows} >= {
        ("bridge", "bridge", "local"),
        ("host", "host", "local"),
        ("none", "null", "local"),
    }
    as_json = [
        json.loads(line)
        for line in _ok(daemon.cnm("network", "ls", "--format", "json")).splitlines()
    ]
    assert {"ID", "Name", "Driver", "Scope", "IPv6", "Internal", "Labels", "CreatedAt"} == set(
        as_json[0]
    )
    names = _ok(daemon.cnm("network", "ls", "--filter", "type=builtin", "--format", "{{.Name}}"))
    assert names.split() == ["bridge", "host", "none"]


def test_create_ls_inspect_rm(daemon: Daemon, names: Callable[[str], str]) -> None:
    name = names("cnm")
    network_id = _ok(
        daemon.cnm(
            "network",
            "create",
            "--subnet",
            "10.98.0.0/24",
            "--gateway",
            "10.98.0.1",
            "--ip-range",
            "10.98.0.0/25",
            "--aux-address",
            "a=10.98.0.200",
            "--label",
            "k=v",
            "--opt",
            "com.docker.network.driver.mtu=1450",
            "--internal",
            name,
        )
    ).strip()
    assert len(network_id) == 64
    quiet = _ok(daemon.cnm("network", "ls", "-q", "--filter", f"name={name}")).split()
    assert quiet == [network_id[:12]]
    full = _ok(daemon.cnm("network", "ls", "-q", "--no-trunc", "--filter", "label=k=v")).split()
    assert network_id in full

    shown = json.loads(_ok(daemon.cnm("network", "inspect", name)))
    api = daemon.request("GET", f"/networks/{network_id}").json()
    assert shown == [api]
    assert shown[0]["IPAM"]["Config"] == [
        {
            "Subnet": "10.98.0.0/24",
            "IPRange": "10.98.0.0/25",
            "Gateway": "10.98.0.1",
            "AuxiliaryAddresses": {"a": "10.98.0.200"},
        }
    ]
    assert _ok(daemon.cnm("network", "inspect", "-f", "{{.Name}} {{.Internal}}", name)) == (
        f"{name} true\n"
    )
    assert _ok(daemon.cnm("network", "inspect", "-f", "{{json .Labels}}", name)) == '{"k":"v"}\n'
    assert _ok(daemon.cnm("network", "rm", name)) == f"{name}\n"
    assert _ok(daemon.cnm("network", "rm", "-f", name)) == ""


def test_prune_asks_and_filters(daemon: Daemon, names: Callable[[str], str]) -> None:
    keep, drop = names("ck"), names("cd")
    _ok(daemon.cnm("network", "create", "--label", "cnm-prune=keep", keep))
    _ok(daemon.cnm("network", "create", "--label", "cnm-prune=drop", drop))
    declined = daemon.cnm("network", "prune", "--filter", "label=cnm-prune", stdin="n\n")
    assert "Are you sure you want to continue? [y/N]" in _ok(declined)
    assert daemon.request("GET", f"/networks/{drop}").status == 200
    out = _ok(
        daemon.cnm(
            "network",
            "prune",
            "-f",
            "--filter",
            "label!=cnm-prune=keep",
            "--filter",
            "label=cnm-prune",
        )
    )
    assert out == f"Deleted Networks:\n{drop}\n\n"
    assert daemon.request("GET", f"/networks/{keep}").status == 200


def test_errors_exit_1_with_a_readable_message(daemon: Daemon, names: Callable[[str], str]) -> None:
    removed = daemon.cnm("network", "rm", "none", "no-such-network")
    assert removed.returncode == 1
    assert removed.stderr.splitlines() == [
        "Error response from daemon: none is a pre-defined network and cannot be removed",
        "Error response from daemon: network no-such-network not found",
    ]
    missing = daemon.cnm("network", "inspect", "bridge", "no-such-network")
    assert missing.returncode == 1
    assert [n["Name"] for n in json.loads(missing.stdout)] == ["bridge"]
    assert "network no-such-network not found" in missing.stderr

    bad = daemon.cnm(
        "network", "create", "--subnet", "10.99.0.0/24", "--gateway", "10.1.1.1", names("e")
    )
    assert (bad.returncode, bad.stderr) == (1, "no matching subnet for gateway 10.1.1.1\n")
    invalid = daemon.cnm("network", "create", "--subnet", "nope", names("e"))
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("Error response from daemon: invalid subnet")


def test_unreachable_daemon(tmp_path: Path) -> None:
    env = dict(os.environ, CNM_HOST=f"unix://{tmp_path}/absent.sock")
    result = subprocess.run([CNM, "network", "ls"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == (
        f"Cannot connect to the cnm daemon at unix://{tmp_path}/absent.sock. "
        "Is the cnm daemon running?\n"
    )


def test_host_from_environment_version_and_info(daemon: Daemon) -> None:
    env = dict(os.environ, CNM_HOST=daemon.host)
    version = subprocess.run([CNM, "version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0, version.stderr
    assert "API version:      1.47 (minimum version 1.24)" in version.stdout
    info = _ok(daemon.cnm("info"))
    assert "Network Plugins: bridge host ipvlan macvlan null overlay" in info
    assert _ok(daemon.cnm("info", "--format", "{{.OSType}}")) == "linux\n"
