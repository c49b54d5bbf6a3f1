"""What a crash or a failing store leaves, and how the runtime converges (issue 10, findings 1
and 2)."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from cnm.errors import CnmError
from cnm.model import EndpointOptions, PortRequest, SandboxOptions
from cnm.runtime.runtime import Runtime
from cnm.store.api import Delete, Put, StoreUnavailable
from cnm.store.sqlite import SqliteStore
from tests.support.runtime import BUSYBOX, config, host, ipv4_of, make_network


class FillableStore(SqliteStore):
    """SQLite whose disk can be made full: a commit then fails as SQLite's does."""

    full = False

    def _commit_locked(self, ops: Sequence[Put | Delete]):  # type: ignore[no-untyped-def]
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        return super()._commit_locked(ops)


@pytest.fixture
def fillable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.conftest.SqliteStore", FillableStore)


def _store(runtime: Runtime) -> FillableStore:
    store = runtime.controller.store
    assert isinstance(store, FillableStore)
    return store


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_a_crash_during_start_leaves_no_sandbox(
    make_runtime: Callable[[], Runtime], busybox_tar: Path
) -> None:
    """A start records the sandbox, its endpoints and ports before the container's record names
    the sandbox; a crash in between (kill -9) left them for good: the next start failed with
    "endpoint with name lk1 already exists", ``network rm`` with "has active endpoints"."""
    first = make_runtime()
    with open(busybox_tar, "rb") as stream:
        first.import_image(stream, BUSYBOX)
    make_network(first, "n3", "10.86.0.0/24")
    first.create_container("lk1", config(BUSYBOX, "sleep", "600"), host(network_mode="n3"), {})
    container = first.container("lk1")
    # What the start had done when the daemon was killed: the runtime's own steps, as its
    # networking part takes them, up to runc.
    controller = first.controller
    sandbox = controller.create_sandbox(SandboxOptions(container_id=container.id))
    controller.connect("n3", sandbox.id, EndpointOptions(name="lk1"))
    controller.publish(sandbox.id, [PortRequest("tcp", 80, host_port=18480)])
    assert not _port_is_free(18480)
    first.close()
    controller.close()  # no teardown: the state a SIGKILL leaves

    second = make_runtime()
    assert second.controller.sandboxes() == []
    assert second.controller.endpoints() == []
    assert _port_is_free(18480)
    assert not any((second.config.exec_root / "netns").iterdir())
    second.start_container("lk1")
    assert ipv4_of(second, "lk1", "n3") == "10.86.0.2"  # the leaked address is free again
    second.remove_container("lk1", force=True)
    second.controller.delete_network("n3")


def test_a_full_store_at_exit_surfaces_and_converges(
    fillable: None, make_runtime: Callable[[], Runtime], busybox_tar: Path
) -> None:
    """A store error in the exit's teardown killed the exit thread: the container stayed "Up"
    with nothing running, and ``rm -f`` and ``stop`` failed with "did not stop after SIGKILL"
    until a restart."""
    runtime = make_runtime()
    with open(busybox_tar, "rb") as stream:
        runtime.import_image(stream, BUSYBOX)
    make_network(runtime, "full", "10.87.0.0/24")
    for name in ("f3", "f4"):
        runtime.create_container(
            name, config(BUSYBOX, "sleep", "600"), host(network_mode="full"), {}
        )
        runtime.start_container(name)
    address = ipv4_of(runtime, "f4", "full")
    store = _store(runtime)

    store.full = True
    with pytest.raises(StoreUnavailable, match="database or disk is full"):
        runtime.remove_container("f3", force=True)
    assert not runtime.container("f3").state.running
    runtime.stop_container("f4", timeout=0)  # the exit is seen although it cannot be recorded
    state = runtime.container("f4").state
    assert not state.running and "database or disk is full" in state.error
    with pytest.raises(CnmError, match="database or disk is full"):
        runtime.start_container("f4")

    store.full = False
    runtime.start_container("f4")
    assert ipv4_of(runtime, "f4", "full") == address
    runtime.remove_container("f3", force=True)
    runtime.remove_container("f4", force=True)
    assert runtime.controller.sandboxes() == []
    assert runtime.controller.endpoints() == []
    runtime.controller.delete_network("full")
