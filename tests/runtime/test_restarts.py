"""Restart policies, as Docker applies them, in-process: ``always`` brings a container back with
a growing back-off until a user stops it; ``on-failure:N`` gives up after N; a stop while it
waits to restart leaves it exited; a new daemon (runtime) starts what its policy says, and not
an ``unless-stopped`` container that a user stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cnm.errors import Conflict
from cnm.runtime.model import RestartPolicy
from cnm.runtime.runtime import Runtime
from tests.support.runtime import config, host, logged


def _until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_always_restarts_with_back_off_until_stopped(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "again", config(busybox, "sh", "-c", "echo run; exit 3"),
        host(restart_policy=RestartPolicy("always")), {},
    )  # fmt: skip
    runtime.start_container("again")
    assert runtime.wait_container("again", timeout=10) == 3  # an exit counts, restart or not
    _until(lambda: logged(runtime, "again").count("run\n") >= 3)
    assert runtime.container("again").restart_count >= 2
    with pytest.raises(Conflict, match=r"You cannot remove a (restarting|running) container"):
        runtime.remove_container("again")
    runtime.stop_container("again", timeout=1)
    stopped = runtime.container("again")
    assert stopped.state.status == "exited" and stopped.state.manually_stopped
    count = stopped.restart_count
    time.sleep(0.5)  # longer than any back-off it had reached
    assert runtime.container("again").restart_count == count
    assert runtime.container("again").state.status == "exited"


def test_on_failure_gives_up_after_its_count(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "flaky", config(busybox, "sh", "-c", "echo try; exit 1"),
        host(restart_policy=RestartPolicy("on-failure", 2)), {},
    )  # fmt: skip
    runtime.create_container(
        "fine", config(busybox, "true"), host(restart_policy=RestartPolicy("on-failure")), {}
    )
    runtime.start_container("flaky")
    runtime.start_container("fine")
    _until(
        lambda: (
            runtime.container("flaky").restart_count == 2
            and runtime.container("flaky").state.status == "exited"
        )
    )
    time.sleep(0.5)
    flaky = runtime.container("flaky")
    assert (flaky.restart_count, flaky.state.exit_code) == (2, 1)
    fine = runtime.container("fine")
    assert (fine.restart_count, fine.state.status) == (0, "exited")
    assert logged(runtime, "flaky").count("try\n") == 3
    runtime.start_container("flaky")  # a user's start: RestartCount back to 0, two more retries
    _until(lambda: logged(runtime, "flaky").count("try\n") == 6)
    _until(lambda: runtime.container("flaky").state.status == "exited")
    time.sleep(0.5)
    assert runtime.container("flaky").restart_count == 2
    assert logged(runtime, "flaky").count("try\n") == 6


def test_a_new_runtime_starts_what_the_policies_say(
    make_runtime: Callable[[], Runtime], busybox_tar: Path
) -> None:
    first = make_runtime()
    with open(busybox_tar, "rb") as stream:
        first.import_image(stream, "busybox:local")
    for name, policy in (("always", "always"), ("unless", "unless-stopped"), ("never", "no")):
        first.create_container(
            name, config("busybox:local", "sleep", "1000"),
            host(restart_policy=RestartPolicy(policy)), {},
        )  # fmt: skip
        first.start_container(name)
        first.stop_container(name, timeout=0)  # a user's stop
    first.close()
    first.controller.close()

    second = make_runtime()
    _until(lambda: second.container("always").state.running)
    assert not second.container("unless").state.running
    assert not second.container("never").state.running
    assert not second.container("always").state.manually_stopped
    assert second.container("always").restart_count == 1  # as dockerd 20.10 counts it


def test_a_forced_removal_wins_over_the_restart_due_at_start_up(
    make_runtime: Callable[[], Runtime], busybox_tar: Path
) -> None:
    """``docker rm -f`` right after the daemon's start: the restart it had due is cancelled
    or, if it was starting the container already, the container is killed and removed."""
    first = make_runtime()
    with open(busybox_tar, "rb") as stream:
        first.import_image(stream, "busybox:local")
    for name in ("one", "two", "three"):
        first.create_container(
            name, config("busybox:local", "sleep", "1000"),
            host(restart_policy=RestartPolicy("always")), {},
        )  # fmt: skip
        first.start_container(name)
        first.stop_container(name, timeout=0)
    first.close()
    first.controller.close()

    second = make_runtime()
    for index, name in enumerate(("one", "two", "three")):
        time.sleep(0.02 * index)  # before, while and after the restarts run
        second.remove_container(name, force=True)
    time.sleep(0.5)
    assert second.containers(all=True) == []


def test_a_new_runtime_leaves_an_on_failure_container_without_retries_left(
    make_runtime: Callable[[], Runtime], busybox_tar: Path
) -> None:
    """Docker's ShouldRestart at start-up counts the container's RestartCount."""
    first = make_runtime()
    with open(busybox_tar, "rb") as stream:
        first.import_image(stream, "busybox:local")
    first.create_container(
        "spent", config("busybox:local", "sh", "-c", "echo try; exit 1"),
        host(restart_policy=RestartPolicy("on-failure", 1)), {},
    )  # fmt: skip
    first.start_container("spent")
    _until(
        lambda: (
            first.container("spent").restart_count == 1
            and first.container("spent").state.status == "exited"
        )
    )
    first.close()
    first.controller.close()

    second = make_runtime()
    time.sleep(1.0)
    spent = second.container("spent")
    assert (spent.state.status, spent.restart_count) == ("exited", 1)
    assert logged(second, "spent").count("try\n") == 2
