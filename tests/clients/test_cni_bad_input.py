"""``cnm-cni`` given bad input: the spec's error object on stdout, a non-zero exit status, the
right code, and nothing left behind. First the executable alone (VERSION, the environment, the
configuration, a daemon that is down or hangs), then the daemon's checks (unknown networks,
addresses, names, namespaces, CHECK against a broken attachment), the API called directly, and
a daemon restart with an attachment in place.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cni import (
    CNM_CNI,
    Attachment,
    CniRuntime,
    container_netns,
    invoke,
    netns_run,
)
from tests.support.daemon import Daemon, running_daemon

ENV = {"container_id": "ctr-bad", "netns": "/run/netns/none", "ifname": "eth0"}


def _config(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "net", "type": "cnm-cni", **extra}


def _run(command: str, stdin: bytes | dict[str, Any], **env: Any) -> Any:
    return invoke(CNM_CNI, command, stdin, host_netns=None, **{**ENV, **env})


def _links(netns: str) -> list[str]:
    return [link["ifname"] for link in json.loads(netns_run(netns, "ip", "-j", "link").stdout)]


@pytest.fixture
def netns() -> Iterator[str]:
    with container_netns() as path:
        yield path


# ----------------------------------------------------------------------------- the executable


def test_version_answers_without_a_daemon() -> None:
    for stdin, version in ((b"", "1.1.0"), ({"cniVersion": "0.4.0"}, "0.4.0")):
        outcome = _run("VERSION", stdin)
        assert outcome.returncode == 0
        assert outcome.output == {
            "cniVersion": version,
            "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        }


@pytest.mark.parametrize(
    ("command", "stdin", "env", "code", "says"),
    [
        ("ATTACH", _config(), {}, 4, "invalid CNI_COMMAND"),
        ("ADD", _config(), {"container_id": None}, 4, "[CNI_CONTAINERID] missing"),
        ("ADD", _config(), {"netns": None}, 4, "[CNI_NETNS] missing"),
        ("ADD", _config(), {"ifname": "x" * 16}, 4, "CNI_IFNAME"),
        ("ADD", _config(), {"container_id": "../etc"}, 4, "CNI_CONTAINERID"),
        ("ADD", _config(), {"args": "FOO=bar"}, 4, "unknown args ['FOO']"),
        ("GC", _config(), {"cni_path": None}, 4, "[CNI_PATH] missing"),
        ("ADD", b"{not json", {}, 6, "error decoding network config"),
        ("ADD", b"[1]", {}, 6, "expected a JSON object"),
        ("ADD", _config(cniVersion="0.2.0"), {}, 1, "incompatible CNI versions"),
        ("ADD", {"name": "net", "type": "cnm-cni"}, {}, 1, "no cniVersion"),
        ("ADD", _config(name=""), {}, 7, "missing network name"),
        ("ADD", _config(ipam={"type": "host-local"}), {}, 2, "ipam="),
        ("ADD", _config(runtimeConfig={"bandwidth": {}}), {}, 2, "runtimeConfig.bandwidth"),
        ("ADD", _config(runtimeConfig={"mac": "zz"}), {}, 7, "invalid mac"),
        ("ADD", _config(socket="relative.sock"), {}, 7, "invalid socket"),
        ("ADD", _config(timeout=-1), {}, 7, "invalid timeout"),
        ("GC", _config(), {}, 7, "cni.dev/valid-attachments"),
    ],
)
def test_bad_calls_fail_with_the_specs_codes(
    command: str, stdin: Any, env: dict[str, Any], code: int, says: str
) -> None:
    outcome = _run(command, stdin, **env)
    assert outcome.returncode != 0
    assert outcome.code == code
    assert says in outcome.message
    assert outcome.output["cniVersion"] in ("1.1.0", "0.2.0")


def test_a_daemon_that_is_down_is_try_again_later(tmp_path: Path) -> None:
    config = _config(socket=str(tmp_path / "nobody.sock"))
    for command in ("ADD", "DEL", "CHECK"):
        outcome = _run(command, config, netns=str(tmp_path))
        assert outcome.code == 11, outcome
        assert "cannot reach the cnm daemon" in outcome.message
    assert _run("STATUS", config).code == 50


def test_a_daemon_that_hangs_is_timed_out(tmp_path: Path) -> None:
    path = tmp_path / "hangs.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)  # accepted by the kernel, never answered
        outcome = _run("ADD", _config(socket=str(path), timeout=0.3))
    assert outcome.code == 11
    assert "did not answer in time" in outcome.message and "0.3s" in outcome.message


# ----------------------------------------------------------------------------- the daemon


@pytest.fixture
def cni_net(daemon: Daemon, names: Callable[[str], str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A network and the request configuration of a cnm-cni plugin on it."""
    net = names("bad")
    assert daemon.request("POST", "/networks/create", {"Name": net}).status == 201
    yield net, {**_config(name=f"cni-{net}", network=net, socket=str(daemon.socket))}


def _add(daemon: Daemon, config: dict[str, Any], target: str, **env: Any) -> Any:
    """ADD into the namespace at ``target`` (``env`` overrides any variable, CNI_NETNS too)."""
    return invoke(
        CNM_CNI, "ADD", config, host_netns=daemon.netns.path, **{**ENV, "netns": target, **env}
    )


def _containers(daemon: Daemon, network: str) -> dict[str, Any]:
    shown = daemon.request("GET", f"/networks/{network}").json()
    assert isinstance(shown, dict)
    return shown["Containers"]  # type: ignore[no-any-return]


def test_the_daemon_refuses_bad_attachments_and_keeps_nothing(
    daemon: Daemon,
    cni_net: tuple[str, dict[str, Any]],
    netns: str,
    tmp_path: Path,
) -> None:
    net, config = cni_net
    plain = tmp_path / "plain"
    plain.write_text("")
    subnet = daemon.request("GET", f"/networks/{net}").json()["IPAM"]["Config"][0]["Subnet"]  # type: ignore[index, call-overload]
    prefix = subnet.split("/")[1]
    base = subnet.rsplit(".", 2)[0]
    cases = [
        ({**config, "network": "no-such-network"}, {}, 7, "network no-such-network not found"),
        ({**config, "network": "host"}, {}, 7, "cannot take CNI containers"),
        ({**config, "runtimeConfig": {"ips": ["192.0.2.10"]}}, {}, 7, "invalid ips entry"),
        ({**config, "runtimeConfig": {"ips": [f"{base}.9.9/8"]}}, {}, 7, "prefix length"),
        (config, {"netns": str(tmp_path / "missing")}, 3, "does not exist"),
        (config, {"netns": str(plain)}, 4, "is not a network namespace"),
        (config, {"netns": daemon.netns.path}, 4, "the host's network namespace"),
    ]
    for request, env, code, says in cases:
        outcome = _add(daemon, request, env.pop("netns", netns), **env)
        assert (outcome.code, says in outcome.message) == (code, True), outcome
        assert _containers(daemon, net) == {} and _links(netns) == ["lo"]

    ok = _add(daemon, {**config, "runtimeConfig": {"ips": [f"{base}.0.77/{prefix}"]}}, netns)
    assert ok.returncode == 0, ok
    assert ok.output["ips"][0]["address"] == f"{base}.0.77/{prefix}"
    again = _add(daemon, config, netns)
    assert again.code == 100 and "already has an attachment eth0" in again.message
    with container_netns() as other:
        taken = _add(daemon, {**config, "runtimeConfig": {"ips": [f"{base}.0.77"]}}, other, container_id="ctr-other")  # fmt: skip
        assert taken.code == 100, taken
        same_name = _add(daemon, config, other, container_id="ctr-x", args="K8S_POD_NAME=ctr-bad")
        assert same_name.code == 100 and "already exists" in same_name.message
        assert _links(other) == ["lo"]
    deleted = invoke(CNM_CNI, "DEL", config, host_netns=daemon.netns.path, **ENV)
    assert (deleted.returncode, deleted.output) == (0, None)
    assert _containers(daemon, net) == {} and _links(netns) == ["lo"]


def test_check_reports_what_is_wrong(
    daemon: Daemon, cni_net: tuple[str, dict[str, Any]], netns: str
) -> None:
    net, config = cni_net
    unknown = invoke(CNM_CNI, "CHECK", config, host_netns=daemon.netns.path, **{**ENV, "netns": netns})  # fmt: skip
    assert unknown.code == 3
    added = _add(daemon, config, netns)
    assert added.returncode == 0
    env = {**ENV, "netns": netns}
    checked = invoke(CNM_CNI, "CHECK", config, host_netns=daemon.netns.path, **env)
    assert checked.code == 7 and "CHECK needs prevResult" in checked.message
    config_with_prev = {**config, "prevResult": added.output}
    good = invoke(CNM_CNI, "CHECK", config_with_prev, host_netns=daemon.netns.path, **env)
    assert (good.returncode, good.output) == (0, None)
    address = added.output["ips"][0]["address"]
    netns_run(netns, "ip", "addr", "del", address, "dev", "eth0")
    broken = invoke(CNM_CNI, "CHECK", config_with_prev, host_netns=daemon.netns.path, **env)
    assert broken.code == 101 and f"eth0 lacks address {address}" in broken.message
    netns_run(netns, "ip", "link", "set", "eth0", "down")
    down = invoke(CNM_CNI, "CHECK", config_with_prev, host_netns=daemon.netns.path, **env)
    assert "eth0 is down" in down.message
    assert invoke(CNM_CNI, "DEL", config, host_netns=daemon.netns.path, **ENV).returncode == 0
    assert _containers(daemon, net) == {}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", 6),
        (b"[]", 6),
        (json.dumps({"config": []}).encode(), 6),
        (json.dumps({"config": _config(), "env": {"CNI_IFNAME": 5}}).encode(), 6),
        (json.dumps({"config": _config(), "env": {}}).encode(), 4),
        (json.dumps({"config": _config(cniVersion="9.9.9"), "env": {}}).encode(), 4),
    ],
)
def test_the_api_answers_cni_errors(daemon: Daemon, body: bytes, code: int) -> None:
    reply = daemon.request("POST", "/cnm/cni/add", body)
    assert reply.status == 400
    answer = reply.json()
    assert isinstance(answer, dict) and answer["code"] == code and answer["msg"]


def test_an_attachment_survives_a_daemon_restart(tmp_path: Path, netns: str) -> None:
    with running_daemon(tmp_path / "d") as daemon:
        assert daemon.request("POST", "/networks/create", {"Name": "keep"}).status == 201
        conflist = {
            "cniVersion": "1.1.0",
            "name": "keep",
            "plugins": [{"type": "cnm-cni", "socket": str(daemon.socket)}],
        }
        runtime = CniRuntime(conflist, daemon.netns.path)
        attachment = Attachment("ctr-restart", netns)
        runtime.add(attachment)
        daemon.stop()
        daemon.start()
        runtime.check(attachment)
        runtime.delete(attachment)
        assert _links(netns) == ["lo"]
        assert _containers(daemon, "keep") == {}
        assert daemon.request("DELETE", "/networks/keep").status == 204
