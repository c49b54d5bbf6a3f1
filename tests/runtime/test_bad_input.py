"""Bad input gets Docker's error class and message and leaves nothing half-made: no sandbox,
endpoint, overlay mount, runc container or process beyond what existed before."""

from __future__ import annotations

import pytest

from cnm.errors import Conflict, Forbidden, InvalidParameter, NotFound
from cnm.runtime.model import EndpointRequest, PortBinding
from cnm.runtime.runtime import HOST_IMAGE, Runtime
from tests.support.runtime import config, host, logged, make_network, output


def _snapshot(runtime: Runtime) -> tuple[set[str], set[str], set[str], set[str]]:
    """Sandboxes, endpoints, overlay mounts and runc containers that exist now."""
    exec_root = runtime.config.exec_root
    with open("/proc/self/mountinfo") as mounts:
        overlays = {
            line.split()[4]
            for line in mounts
            if line.split()[4].startswith(str(exec_root / "containers"))
        }
    return (
        {s.id for s in runtime.controller.sandboxes()},
        {e.id for e in runtime.controller.endpoints()},
        overlays,
        {p.name for p in (exec_root / "runc").iterdir()},
    )


@pytest.fixture
def net(runtime: Runtime, busybox: str) -> str:
    make_network(runtime, "user-net", "10.90.0.0/24")
    return "user-net"


def test_create_refusals(runtime: Runtime, busybox: str, net: str) -> None:
    sleeper = config(busybox, "sleep", "1000")
    with pytest.raises(NotFound, match="No such image: nope:1"):
        runtime.create_container("x1", config("nope:1", "true"), host(), {})
    with pytest.raises(NotFound, match="network nonet not found"):
        runtime.create_container("x1", sleeper, host(network_mode="nonet"), {})
    with pytest.raises(NotFound, match="network ghost not found"):
        runtime.create_container("x1", sleeper, host(), {"ghost": EndpointRequest()})
    with pytest.raises(InvalidParameter, match="invalid container format"):
        runtime.create_container("x1", sleeper, host(network_mode="container:"), {})
    with pytest.raises(NotFound, match="No such container: ghost"):
        runtime.create_container("x1", sleeper, host(network_mode="container:ghost"), {})
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        runtime.create_container("-bad", sleeper, host(), {})
    with pytest.raises(InvalidParameter, match="no command specified"):
        runtime.create_container("x1", config(busybox), host(), {})
    with pytest.raises(InvalidParameter, match="user defined networks only"):
        runtime.create_container(
            "x1", sleeper, host(), {"bridge": EndpointRequest(ipv4_address="172.17.0.9")}
        )
    with pytest.raises(InvalidParameter, match="no configured subnet"):
        runtime.create_container(
            "x1", sleeper, host(network_mode=net), {net: EndpointRequest(ipv4_address="10.91.0.9")}
        )
    with pytest.raises(InvalidParameter, match="invalid IPv4 address"):
        runtime.create_container(
            "x1", sleeper, host(network_mode=net), {net: EndpointRequest(ipv4_address="fd00::1")}
        )
    runtime.create_container("x0", sleeper, host(), {})
    published = host(network_mode="container:x0", port_bindings={"80/tcp": [PortBinding()]})
    with pytest.raises(InvalidParameter, match="port publishing"):
        runtime.create_container("x1", sleeper, published, {})
    with pytest.raises(InvalidParameter, match="cannot be connected to network endpoints"):
        runtime.create_container(
            "x1",
            sleeper,
            host(network_mode="host"),
            {"host": EndpointRequest(), net: EndpointRequest()},
        )

    first = runtime.create_container("taken", sleeper, host(), {})
    with pytest.raises(Conflict) as caught:
        runtime.create_container("/taken", sleeper, host(), {})
    assert str(caught.value) == (
        f'Conflict. The container name "/taken" is already in use by container "{first.id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert {c.name for c in runtime.containers(all=True)} == {"x0", "taken"}


def test_start_refusals_leave_nothing_behind(runtime: Runtime, busybox: str, net: str) -> None:
    runtime.create_container("target", config(busybox, "sleep", "1000"), host(network_mode=net), {})
    side = runtime.create_container(
        "side", config(busybox, "sleep", "1000"), host(network_mode="container:target"), {}
    )
    before = _snapshot(runtime)
    with pytest.raises(Conflict, match="non running container"):
        runtime.start_container("side")
    assert _snapshot(runtime) == before

    runtime.create_container(
        "missing", config(busybox, "no-such-command"), host(network_mode=net), {}
    )
    with pytest.raises(InvalidParameter, match="executable file not found"):
        runtime.start_container("missing")
    state = runtime.container("missing").state
    assert state.status == "created" and state.exit_code == 127 and "not found" in state.error
    assert logged(runtime, "missing") == ""  # runc's own error is not the container's output
    assert _snapshot(runtime) == before

    runtime.create_container(
        "nohost", config(HOST_IMAGE, "no-such-command"), host(network_mode=net), {}
    )
    with pytest.raises(InvalidParameter, match="executable file not found"):
        runtime.start_container("nohost")
    assert _snapshot(runtime) == before

    runtime.create_container(
        "holder",
        config(busybox, "sleep", "1000"),
        host(network_mode=net),
        {net: EndpointRequest(ipv4_address="10.90.0.7")},
    )
    runtime.create_container(
        "rival",
        config(busybox, "sleep", "1000"),
        host(network_mode=net),
        {net: EndpointRequest(ipv4_address="10.90.0.7")},
    )
    runtime.start_container("holder")
    during = _snapshot(runtime)
    with pytest.raises(Conflict, match="Address already in use"):
        runtime.start_container("rival")
    assert _snapshot(runtime) == during
    assert not runtime.container("rival").state.running
    assert side.id in {c.id for c in runtime.containers(all=True)}


def test_runtime_refusals(runtime: Runtime, busybox: str, net: str) -> None:
    runtime.create_container("idle", config(busybox, "sleep", "1000"), host(network_mode=net), {})
    with pytest.raises(Conflict, match="is not running"):
        runtime.exec_create("idle", ["true"], [], False)
    with pytest.raises(Conflict, match="is not running"):
        runtime.kill_container("idle")
    with pytest.raises(NotFound, match="No such container: nobody"):
        runtime.start_container("nobody")

    runtime.start_container("idle")
    idle_id = runtime.container("idle").id
    with pytest.raises(Forbidden, match=f"endpoint with name idle already exists in network {net}"):
        runtime.connect("idle", net, EndpointRequest())
    with pytest.raises(Forbidden, match=f"container {idle_id} is not connected to network bridge"):
        runtime.disconnect("idle", "bridge")
    with pytest.raises(InvalidParameter, match="user defined networks only"):
        runtime.connect("idle", "bridge", EndpointRequest(ipv4_address="172.17.0.9"))
    with pytest.raises(Conflict, match="You cannot remove a running container"):
        runtime.remove_container("idle")
    with pytest.raises(InvalidParameter, match="Invalid signal"):
        runtime.kill_container("idle", "SIGNOPE")
    with pytest.raises(InvalidParameter, match="invalid condition"):
        runtime.wait_container("idle", "whenever")
    with pytest.raises(TimeoutError):
        runtime.wait_container("idle", timeout=0.05)
    assert set(runtime.container("idle").networks) == {net}

    runtime.create_container(
        "hosted", config(busybox, "sleep", "1000"), host(network_mode="host"), {}
    )
    with pytest.raises(Forbidden, match="host network"):
        runtime.connect("hosted", net, EndpointRequest())
    runtime.create_container(
        "shared", config(busybox, "sleep", "1000"), host(network_mode="container:idle"), {}
    )
    with pytest.raises(Forbidden, match="sharing network namespace"):
        runtime.connect("shared", net, EndpointRequest())
    runtime.create_container(
        "private", config(busybox, "sleep", "1000"), host(network_mode="none"), {}
    )
    with pytest.raises(Forbidden, match=r"private \(none\) mode"):
        runtime.connect("private", net, EndpointRequest())


def test_host_and_none_modes_run(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "alone", config(busybox, "sleep", "1000"), host(network_mode="none"), {}
    )
    runtime.start_container("alone")
    assert list(runtime.network_state(runtime.container("alone")).networks) == ["none"]
    assert output(runtime, "alone", "ls", "/sys/class/net").split() == ["lo"]
    runtime.create_container(
        "hostnet", config(busybox, "sleep", "1000"), host(network_mode="host"), {}
    )
    runtime.start_container("hostnet")
    sandbox = runtime.controller.sandbox(runtime.container("hostnet").sandbox_id or "")
    assert sandbox.use_host_network
    assert list(runtime.network_state(runtime.container("hostnet")).networks) == ["host"]
    # the controller's host namespace (the test's), with its default bridge
    assert "cnm0" in output(runtime, "hostnet", "ls", "/sys/class/net").split()
