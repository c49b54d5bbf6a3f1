"""Fixtures that several suites share: throwaway "host" network namespaces, containers under
runc, and the leftover check. Their helpers are in ``tests/support``.

Every kernel-touching test runs against a fresh network namespace that plays the host
(``host_netns``), so tests never see the machine's real interfaces and cleanup is deleting that
namespace. Sandbox namespaces live under the test's own exec root (a tmp_path) and are unmounted
at teardown.

``make_runtime`` starts runtimes, each with its own controller, in-process in that namespace,
with data and exec roots in tmp_path. Teardown removes every container the test left (force:
the process is killed and reaped), by starting one more runtime on the same roots if the test
closed its own; that runtime restores from the store, as a restarted daemon would. Overlays
under tmp_path are unmounted, and a container process still alive by then (none should be) is
killed by the pid we recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from cnm.controller import Controller, ControllerConfig
from cnm.osl.namespace import NetNamespace, delete_netns, setns
from cnm.runtime import bundle, pidwatch
from cnm.runtime.runtime import Runtime, RuntimeConfig
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller
from tests.support.netns import (
    MADE_NAMESPACES,
    make_test_netns,
    remove_leftovers,
    unmount_namespaces_under,
)
from tests.support.runtime import BUSYBOX, BUSYBOX_TAR, HOST_RESOLV_CONF, mounts_under

# Property-based tests keep no example database in the work tree, and the kernel's pace is no
# test's deadline.
settings.register_profile("cnm", database=None, deadline=None)
settings.load_profile("cnm")


@pytest.fixture
def host_netns(tmp_path: Path) -> Iterator[NetNamespace]:
    """Run the test's main thread inside a fresh namespace acting as the host."""
    ns = make_test_netns()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    setns(ns.fd)
    try:
        yield ns
    finally:
        setns(home)
        os.close(home)
        unmount_namespaces_under(tmp_path)
        ns.close()
        delete_netns(ns.path)


@pytest.fixture
def exec_root(tmp_path: Path) -> Path:
    return tmp_path / "exec"


@pytest.fixture
def busybox_tar() -> Path:
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"no busybox rootfs at {BUSYBOX_TAR}")
    return BUSYBOX_TAR


@pytest.fixture
def make_runtime(host_netns: NetNamespace, tmp_path: Path) -> Iterator[Callable[[], Runtime]]:
    """Start runtimes (each with its own controller) on the test's store and roots."""
    resolv = tmp_path / "host-resolv.conf"
    resolv.write_text(HOST_RESOLV_CONF)
    made: list[tuple[Runtime, Controller, SqliteStore]] = []
    pids: set[tuple[int, int]] = set()

    def make() -> Runtime:
        store = SqliteStore(tmp_path / "cnm.db")
        controller = build_controller(
            ControllerConfig(exec_root=tmp_path / "exec", host_resolv_conf=resolv), store
        )
        controller.start()
        runtime = Runtime(
            RuntimeConfig(data_root=tmp_path / "data", exec_root=tmp_path / "exec"),
            store,
            controller,
        )
        runtime.start()
        made.append((runtime, controller, store))
        return runtime

    def shut(runtime: Runtime, controller: Controller, store: SqliteStore) -> None:
        for container in runtime.containers(all=True):
            if container.state.running:
                pids.add((container.state.pid, container.state.pid_start_time))
        runtime.close()
        controller.close()
        store.close()

    yield make
    if made:
        for entry in made:
            shut(*entry)
        janitor = make()
        for container in janitor.containers(all=True):
            with contextlib.suppress(Exception):
                janitor.remove_container(container.id, force=True)
        shut(*made[-1])
    for pid, started in pids:
        if pidwatch.alive(pid, started):
            os.kill(pid, signal.SIGKILL)
    for point in sorted(mounts_under(tmp_path), reverse=True):
        if "/netns/" not in point:
            bundle.unmount(Path(point))


@pytest.fixture
def runtime(make_runtime: Callable[[], Runtime]) -> Runtime:
    return make_runtime()


@pytest.fixture
def busybox(runtime: Runtime, busybox_tar: Path) -> str:
    with open(busybox_tar, "rb") as stream:
        runtime.import_image(stream, BUSYBOX)
    return BUSYBOX


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the session if it left namespaces behind. Only what this session made counts:
    mounts below its base temp directory and the host namespaces it created (other runs may be
    going on beside it), and those are removed before failing."""
    yield
    leftovers = remove_leftovers(tmp_path_factory.getbasetemp(), MADE_NAMESPACES)
    if leftovers:
        pytest.fail(f"the suite left namespaces behind: {leftovers}")
