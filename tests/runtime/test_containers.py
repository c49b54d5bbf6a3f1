"""Containers on cnm's networks under runc: what a process sees inside, traffic between
containers, shared sandboxes, live connect/disconnect, stop/start address semantics, signals,
logs, exec, wait, removal, a runtime restart (live restore) and host-filesystem containers."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cnm.api.container_json import network_settings_json
from cnm.errors import Conflict
from cnm.runtime import pidwatch
from cnm.runtime.model import EndpointRequest
from cnm.runtime.runtime import HOST_IMAGE, NotModified, Runtime
from tests.support.runtime import (
    communicate,
    config,
    host,
    host_run,
    ipv4_of,
    logged,
    make_network,
    output,
    run_exec,
)


def _fetch(runtime: Runtime, ref: str, url: str, attempts: int = 50) -> str:
    """wget from inside ``ref`` (busybox wget -T crashes: bound it with timeout instead),
    retrying while the server starts."""
    for _ in range(attempts):
        code, out, _ = run_exec(runtime, ref, "timeout", "5", "wget", "-qO-", url)
        if code == 0:
            return out
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered from {ref}")


def _interfaces(runtime: Runtime, ref: str) -> set[str]:
    out = output(runtime, ref, "ip", "-o", "link", "show")
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _host_veths() -> list[str]:
    return host_run("ip", "-o", "link", "show", "type", "veth").splitlines()


def test_container_sees_its_network_hosts_resolv_conf_and_hostname(
    runtime: Runtime, busybox: str
) -> None:
    make_network(runtime, "front", "10.77.0.0/24")
    created = runtime.create_container(
        "web",
        config(busybox, "sleep", "1000"),
        host(network_mode="front", dns_search=["corp.test"], extra_hosts=["db:10.1.2.3"]),
        {"front": EndpointRequest(aliases=["www"])},
    )
    runtime.start_container("web")
    container = runtime.container("/web")
    assert container.state.running and container.state.pid > 0
    assert container.networks["front"].aliases == ["www"]

    settings = network_settings_json(container, runtime.network_state(container))
    front = settings["Networks"]["front"]
    assert front["IPAddress"].startswith("10.77.0.") and front["IPPrefixLen"] == 24
    assert front["Gateway"] == "10.77.0.1"
    assert front["Aliases"] == ["www"]
    assert front["DNSNames"] == ["web", "www", created.id[:12]]
    assert settings["SandboxKey"].startswith(str(runtime.config.exec_root / "netns"))

    addr = output(runtime, "web", "ip", "-o", "-4", "addr", "show", "eth0")
    assert f"{front['IPAddress']}/24" in addr
    hosts = output(runtime, "web", "cat", "/etc/hosts")
    assert f"{front['IPAddress']}\t{created.id[:12]}" in hosts
    assert "10.1.2.3\tdb" in hosts
    resolv = output(runtime, "web", "cat", "/etc/resolv.conf")  # a user-defined network: ours
    assert resolv == "nameserver 127.0.0.11\nsearch corp.test\noptions ndots:0\n"
    assert output(runtime, "web", "hostname").strip() == created.id[:12]
    assert output(runtime, "web", "cat", "/etc/hostname").strip() == created.id[:12]


def test_two_containers_talk_and_a_sidecar_shares_the_sandbox(
    runtime: Runtime, busybox: str
) -> None:
    make_network(runtime, "app", "10.78.0.0/24")
    runtime.create_container(
        "web",
        config(busybox, "sh", "-c", "mkdir -p /www && exec httpd -f -p 80 -h /www"),
        host(network_mode="app"),
        {},
    )
    runtime.start_container("web")
    output(runtime, "web", "sh", "-c", "echo hello > /www/index.html")
    runtime.create_container(
        "client", config(busybox, "sleep", "1000"), host(network_mode="app"), {}
    )
    runtime.start_container("client")
    web_ip = ipv4_of(runtime, "web", "app")
    assert "dev eth0" in output(runtime, "client", "ip", "route", "get", web_ip)
    assert _fetch(runtime, "client", f"http://{web_ip}/") == "hello\n"

    side = runtime.create_container(
        "side", config(busybox, "sleep", "1000"), host(network_mode="container:web"), {}
    )
    assert side.host_config.network_mode == f"container:{runtime.container('web').id}"
    runtime.start_container("side")
    assert _fetch(runtime, "side", "http://127.0.0.1:80/") == "hello\n"
    assert runtime.container("side").sandbox_id == runtime.container("web").sandbox_id
    assert runtime.network_state(runtime.container("side")).networks == {}

    # the sidecar ends without touching the sandbox it borrowed
    runtime.stop_container("side", timeout=0)
    assert _fetch(runtime, "client", f"http://{web_ip}/") == "hello\n"

    # web stops while the sidecar still holds its namespace: the interfaces leave it, so no
    # veth stays on the bridge with web's released address
    runtime.start_container("side")
    assert len(_host_veths()) == 2
    runtime.stop_container("web", timeout=0)
    assert len(_host_veths()) == 1
    assert _interfaces(runtime, "side") == {"lo"}


def test_live_connect_and_disconnect_are_seen_inside(runtime: Runtime, busybox: str) -> None:
    make_network(runtime, "one", "10.79.0.0/24")
    make_network(runtime, "two", "10.80.0.0/24")
    runtime.create_container("cc", config(busybox, "sleep", "1000"), host(network_mode="one"), {})
    runtime.start_container("cc")
    assert _interfaces(runtime, "cc") == {"lo", "eth0"}

    runtime.connect("cc", "two", EndpointRequest(aliases=["second"], ipv4_address="10.80.0.9"))
    assert _interfaces(runtime, "cc") == {"lo", "eth0", "eth1"}
    assert "10.80.0.9/24" in output(runtime, "cc", "ip", "-o", "-4", "addr", "show", "eth1")
    assert "10.80.0.9" in output(runtime, "cc", "cat", "/etc/hosts")  # rewritten in place
    assert ipv4_of(runtime, "cc", "two") == "10.80.0.9"

    runtime.disconnect("cc", "two")
    assert _interfaces(runtime, "cc") == {"lo", "eth0"}
    assert "10.80.0.9" not in output(runtime, "cc", "cat", "/etc/hosts")
    assert set(runtime.container("cc").networks) == {"one"}

    # a stopped container's connect is recorded and applied at the next start
    runtime.stop_container("cc", timeout=0)
    runtime.connect("cc", "two", EndpointRequest())
    runtime.start_container("cc")
    assert _interfaces(runtime, "cc") == {"lo", "eth0", "eth1"}


def test_stop_releases_addresses_and_start_reattaches_the_staticipv4_of(
    runtime: Runtime, busybox: str
) -> None:
    network = make_network(runtime, "fixed", "10.81.0.0/24")
    runtime.create_container(
        "ss",
        config(busybox, "sleep", "1000"),
        host(network_mode="fixed"),
        {"fixed": EndpointRequest(ipv4_address="10.81.0.50")},
    )
    runtime.start_container("ss")
    assert [e.ipv4_address for e in runtime.controller.endpoints(network.id)] == ["10.81.0.50/24"]
    sandbox_id = runtime.container("ss").sandbox_id

    runtime.stop_container("ss", timeout=0)
    assert runtime.controller.endpoints(network.id) == []
    assert sandbox_id not in {s.id for s in runtime.controller.sandboxes()}
    stopped = runtime.network_state(runtime.container("ss"))
    assert stopped.networks["fixed"].endpoint is None
    assert stopped.networks["fixed"].request.ipv4_address == "10.81.0.50"
    assert (stopped.sandbox_id, stopped.sandbox_key, stopped.ports) == ("", "", [])
    with pytest.raises(NotModified):
        runtime.stop_container("ss")

    runtime.start_container("ss")
    assert "10.81.0.50/24" in output(runtime, "ss", "ip", "-o", "-4", "addr", "show", "eth0")
    with pytest.raises(NotModified):
        runtime.start_container("ss")
    runtime.restart_container("ss", timeout=0)
    assert runtime.container("ss").state.running
    assert ipv4_of(runtime, "ss", "fixed") == "10.81.0.50"


def test_stop_escalates_to_sigkill_and_kill_sends_signals(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "stubborn",
        config(busybox, "sh", "-c", 'trap "" TERM; while true; do sleep 1; done'),
        host(),
        {},
    )
    runtime.start_container("stubborn")
    began = time.monotonic()
    runtime.stop_container("stubborn", timeout=1)
    assert 0.9 < time.monotonic() - began < 5
    state = runtime.container("stubborn").state
    assert state.status == "exited" and state.exit_code == 137

    runtime.create_container(
        "polite",
        config(busybox, "sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.1; done"),
        host(),
        {},
    )
    runtime.start_container("polite")
    time.sleep(0.2)  # let sh install its trap
    runtime.kill_container("polite", "TERM")
    assert runtime.wait_container("polite", timeout=10) == 3
    with pytest.raises(Conflict, match="is not running"):
        runtime.kill_container("polite")


def test_logs_exec_and_wait(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "talker", config(busybox, "sh", "-c", "echo to-out; echo to-err >&2; exit 7"), host(), {}
    )
    runtime.start_container("talker")
    assert runtime.wait_container("talker", timeout=10) == 7
    assert logged(runtime, "talker", 1) == "to-out\n"
    assert logged(runtime, "talker", 2) == "to-err\n"
    runtime.start_container("talker")  # a second run appends
    assert runtime.wait_container("talker", timeout=10) == 7
    assert logged(runtime, "talker", 1) == "to-out\nto-out\n"

    runtime.create_container("box", config(busybox, "sleep", "1000"), host(), {})
    runtime.start_container("box")
    code, out, err = run_exec(runtime, "box", "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert (code, out, err) == (3, "hi\n", "oops\n")
    exec_id = runtime.exec_create("box", ["sh", "-c", "pwd; echo $A"], ["A=1"], False, "/etc")
    process = runtime.exec_start(exec_id)
    assert communicate(process, timeout=10)[0] == b"/etc\n1\n"
    assert process.wait(10) == 0
    info = runtime.exec_inspect(exec_id)
    assert info.exit_code == 0 and not info.running and info.pid == process.pid
    assert info.container_id == runtime.container("box").id
    assert (info.cmd, info.tty, info.open_stdin) == (["sh", "-c", "pwd; echo $A"], False, False)
    tty_exec = runtime.exec_create("box", ["sh", "-c", "tty; exit 4"], [], True)
    process = runtime.exec_start(tty_exec)
    assert process.wait(timeout=10) == 4
    assert process.stderr is None and b"/dev/pts/" in process.stdout.read(64)
    assert runtime.exec_inspect(tty_exec).tty

    result: list[int] = []

    def wait_next() -> None:
        result.append(runtime.wait_container("box", "next-exit", timeout=10))

    thread = threading.Thread(target=wait_next)
    thread.start()
    time.sleep(0.1)
    runtime.kill_container("box", 9)
    thread.join(10)
    assert result == [137]


def test_remove_force_and_auto_remove(runtime: Runtime, busybox: str) -> None:
    network = make_network(runtime, "rmnet", "10.82.0.0/24")
    runtime.create_container(
        "doomed", config(busybox, "sleep", "1000"), host(network_mode="rmnet"), {}
    )
    runtime.start_container("doomed")
    runtime.create_container("other", config(busybox, "true"), host(), {})
    with pytest.raises(Conflict, match="already in use"):
        runtime.rename_container("doomed", "other")
    runtime.rename_container("doomed", "renamed")
    container = runtime.container("renamed")
    with pytest.raises(Conflict, match="You cannot remove a running container"):
        runtime.remove_container("renamed")
    runtime.remove_container("renamed", force=True)
    runtime.remove_container("other")
    assert runtime.containers(all=True) == []
    assert runtime.controller.endpoints(network.id) == []
    assert not (runtime.config.data_root / "containers" / container.id).exists()
    assert not (runtime.config.exec_root / "containers" / container.id).exists()

    runtime.create_container("brief", config(busybox, "true"), host(auto_remove=True), {})
    runtime.start_container("brief")
    assert runtime.wait_container("brief", "removed", timeout=10) == 0
    assert runtime.containers(all=True) == []


def test_live_restore_keeps_a_container_running_and_notices_its_exit_later(
    make_runtime: Callable[[], Runtime], busybox_tar: Path
) -> None:
    first = make_runtime()
    with open(busybox_tar, "rb") as stream:
        first.import_image(stream, "busybox:local")
    make_network(first, "keep", "10.83.0.0/24")
    first.create_container(
        "survivor",
        config(
            "busybox:local",
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo bye; exit 5",
        ),
        host(network_mode="keep"),
        {},
    )
    first.start_container("survivor")
    before = first.container("survivor")
    first.close()
    first.controller.close()

    second = make_runtime()
    after = second.container("survivor")
    assert after.state.running and after.state.pid == before.state.pid
    assert after.sandbox_id == before.sandbox_id
    assert "10.83.0." in output(second, "survivor", "ip", "-o", "-4", "addr", "show", "eth0")
    assert ipv4_of(second, "survivor", "keep").startswith("10.83.0.")

    output(second, "survivor", "touch", "/tmp/go")
    assert second.wait_container("survivor", timeout=10) == 5
    assert second.controller.endpoints() == []  # torn down: the address is back in the pool
    assert logged(second, "survivor") == "bye\n"


def test_host_filesystem_container_serves_a_busybox_client(
    runtime: Runtime, busybox: str, tmp_path: Path
) -> None:
    make_network(runtime, "pynet", "10.84.0.0/24")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("from the host\n")
    runtime.create_container(
        "py",
        config(HOST_IMAGE, "python3", "-m", "http.server", "8000", working_dir=str(site)),
        host(network_mode="pynet"),
        {"pynet": EndpointRequest(aliases=["pyserver"])},
    )
    runtime.start_container("py")
    assert output(runtime, "py", "hostname").strip() == runtime.container("py").id[:12]
    assert "10.84.0." in output(runtime, "py", "cat", "/etc/hosts")
    runtime.create_container("cl", config(busybox, "sleep", "1000"), host(network_mode="pynet"), {})
    runtime.start_container("cl")
    assert (
        _fetch(runtime, "cl", f"http://{ipv4_of(runtime, 'py', 'pynet')}:8000/")
        == "from the host\n"
    )
    runtime.stop_container("py")
    assert runtime.container("py").state.exit_code in (0, 143, 130)  # SIGTERM ends it


def test_a_container_that_died_while_the_runtime_was_down_is_torn_down_at_start(
    make_runtime: Callable[[], Runtime], busybox_tar: Path
) -> None:
    first = make_runtime()
    with open(busybox_tar, "rb") as stream:
        first.import_image(stream, "busybox:local")
    make_network(first, "gone", "10.85.0.0/24")
    first.create_container(
        "victim", config("busybox:local", "sleep", "1000"), host(network_mode="gone"), {}
    )
    first.start_container("victim")
    pid = first.container("victim").state.pid
    first.close()
    first.controller.close()
    os.kill(pid, signal.SIGKILL)  # our own container's process, by the pid we started
    while (stat := pidwatch.proc_stat(pid)) is not None and stat.state != "Z":
        time.sleep(0.01)

    second = make_runtime()
    state = second.container("victim").state
    assert state.status == "exited" and state.exit_code == 137  # read from the zombie
    assert second.controller.endpoints() == [] and second.controller.sandboxes() == []
    assert not (second.config.exec_root / "runc" / second.container("victim").id).exists()
    second.start_container("victim")  # and it starts again from there
    assert ipv4_of(second, "victim", "gone").startswith("10.85.0.")


def test_a_hyphenated_mac_address_is_given_to_eth0(runtime: Runtime, busybox: str) -> None:
    """``--mac-address 02-42-ac-11-00-02``: accepted at create, and the interface's at start."""
    runtime.create_container(
        "hyphens",
        config(busybox, "sleep", "1000"),
        host(),
        {"bridge": EndpointRequest(mac_address="02-42-ac-11-00-02")},
    )
    runtime.start_container("hyphens")
    assert output(runtime, "hyphens", "cat", "/sys/class/net/eth0/address") == "02:42:ac:11:00:02\n"
    endpoint = runtime.network_state(runtime.container("hyphens")).networks["bridge"].endpoint
    assert endpoint is not None and endpoint.mac_address == "02:42:ac:11:00:02"
