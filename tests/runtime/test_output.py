"""A container's output through its FIFOs, in-process: a message per line with the time it was
read, Docker's filters (since, until, tail), rotation and compression, the local and none
drivers, and followers that see every byte once, from before the start to the run's end."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import pytest

from cnm.runtime.logdriver import STDERR, STDOUT, NotSupported
from cnm.runtime.model import LogConfig
from cnm.runtime.outputs import LINES, RAW, Chunk
from cnm.runtime.runtime import Runtime
from tests.support.runtime import config, host, logged


def _run(runtime: Runtime, name: str, script: str, **host_options: object) -> None:
    runtime.create_container(
        name, config("busybox:local", "sh", "-c", script), host(**host_options), {}
    )
    runtime.start_container(name)
    assert runtime.wait_container(name, timeout=20) == 0


def test_messages_are_lines_with_their_times(runtime: Runtime, busybox: str) -> None:
    _run(
        runtime,
        "lines",
        "echo one; echo two >&2; printf 'a\\nb\\nc'; sleep 1.2; echo late; printf end",
    )
    messages = runtime.read_logs("lines")
    assert [(m.stream, m.data) for m in messages if m.stream == STDERR] == [(STDERR, b"two\n")]
    out = [m.data for m in messages if m.stream == STDOUT]
    # Docker's copier: "c" waits for its line's end; what is left at the stream's end comes too.
    assert out == [b"one\n", b"a\n", b"b\n", b"clate\n", b"end"]
    times = [m.time_ns for m in messages]
    assert times == sorted(times) or len({m.stream for m in messages}) == 2
    late = next(m for m in messages if m.data == b"clate\n")
    since = runtime.read_logs("lines", since_ns=late.time_ns)
    assert [m.data for m in since] == [b"clate\n", b"end"]
    early = runtime.read_logs("lines", until_ns=late.time_ns - 500_000_000)
    assert b"clate\n" not in [m.data for m in early] and b"one\n" in [m.data for m in early]
    assert [m.data for m in runtime.read_logs("lines", tail=2)] == [b"clate\n", b"end"]
    path = runtime.log_path("lines")
    assert path.name.endswith("-json.log")
    first = path.read_text().splitlines()[0]
    assert first.startswith('{"log":"') and '"stream":"' in first and '"time":"' in first


def test_rotation_compression_and_drivers(runtime: Runtime, busybox: str) -> None:
    script = "i=0; while [ $i -lt 200 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"
    _run(
        runtime, "rotated", script,
        log_config=LogConfig("json-file", {"max-size": "2k", "max-file": "3", "compress": "true"}),
    )  # fmt: skip
    path = runtime.log_path("rotated")
    assert path.stat().st_size <= 2048
    assert sorted(p.name.removeprefix(path.name) for p in path.parent.glob(f"{path.name}.*")) == [
        ".1.gz",
        ".2.gz",
    ]
    with gzip.open(f"{path}.1.gz", "rt") as rotated:
        assert '"stream":"stdout"' in rotated.readline()
    kept = [m.data.decode() for m in runtime.read_logs("rotated")]
    assert kept[-1] == "line-199-" + "x" * 32 + "\n" and len(kept) < 200  # the oldest went
    assert kept == sorted(kept, key=lambda line: int(line.split("-")[1]))  # in order over files

    _run(runtime, "local", "echo local", log_config=LogConfig("local"))
    assert runtime.log_path("local").parts[-2:] == ("local-logs", "container.log")
    assert logged(runtime, "local") == "local\n"

    _run(runtime, "silent", "echo nothing kept", log_config=LogConfig("none"))
    with pytest.raises(NotSupported, match="does not support reading"):
        runtime.read_logs("silent")
    assert not runtime.log_path("silent").exists()


def test_followers_see_each_byte_once_and_the_end(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "followed",
        config(busybox, "sh", "-c", "printf 'prompt> '; echo one; sleep 0.3; echo two"),
        host(log_config=LogConfig("none")),  # followers get the output even without a log
        {},
    )
    raw: list[list[Chunk] | None] = []
    lines: list[list[Chunk] | None] = []
    done = threading.Event()

    def on_lines(chunks: list[Chunk] | None) -> None:
        lines.append(chunks)
        if chunks is None:
            done.set()

    raw_follower, _ = runtime.follow_output("followed", RAW, frozenset({STDOUT}), raw.append)
    line_follower, _ = runtime.follow_output("followed", LINES, frozenset({STDOUT}), on_lines)
    runtime.start_container("followed")  # the followers came first: they get the whole run
    assert done.wait(20)
    assert runtime.wait_container("followed", timeout=20) == 0  # its exit handled, too
    assert raw[-1] is None and lines[-1] is None
    raw_bytes = b"".join(c.data for batch in raw[:-1] if batch for c in batch)
    assert raw_bytes == b"prompt> one\ntwo\n"
    assert [c.data for batch in lines[:-1] if batch for c in batch] == [b"prompt> one\n", b"two\n"]
    raw_follower.close()
    line_follower.close()


def test_a_follower_of_this_run_that_comes_during_the_exit_is_ended(
    runtime: Runtime, busybox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``logs -f`` between the end of the output and the exit's record (the teardown, made
    slow here) still ends: it must not wait for a next run that never comes."""
    runtime.create_container("quick", config(busybox, "sleep", "1000"), host(), {})
    networking = runtime._networking
    release = networking.release
    tearing_down = threading.Event()

    def slow_release(*args: object) -> None:
        tearing_down.set()
        time.sleep(1.0)
        release(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(networking, "release", slow_release)
    runtime.start_container("quick")
    killing = threading.Thread(target=runtime.kill_container, args=("quick",))
    killing.start()  # it returns once the container is torn down
    assert tearing_down.wait(20)
    assert runtime.container("quick").state.running  # the window: output ended, no exit yet
    ended = threading.Event()
    follower, _ = runtime.follow_output(
        "quick", LINES, frozenset({STDOUT}), lambda c: c is None and ended.set(), True, True
    )
    assert ended.wait(5)
    follower.close()
    killing.join()


def test_output_waits_in_the_fifo_while_no_daemon_reads_it(
    make_runtime: object, busybox_tar: Path
) -> None:
    """The container holds its FIFO open for reading too: with no daemon, its writes wait in the
    pipe instead of killing it with SIGPIPE, and the next daemon logs them."""
    assert callable(make_runtime)
    first = make_runtime()
    with open(busybox_tar, "rb") as stream:
        first.import_image(stream, "busybox:local")
    first.create_container(
        "writer",
        config(
            "busybox:local",
            "sh",
            "-c",
            "sleep 0.5; i=0; while [ $i -lt 50 ]; do echo x$i; i=$((i+1)); done; sleep 1000",
        ),
        host(),
        {},
    )
    first.start_container("writer")
    first.close()
    first.controller.close()
    time.sleep(1.0)  # it writes while nobody reads

    second = make_runtime()
    deadline = time.monotonic() + 10
    while logged(second, "writer").count("\n") < 50:
        assert time.monotonic() < deadline, logged(second, "writer")
        time.sleep(0.05)
    assert second.container("writer").state.running
    assert logged(second, "writer").splitlines()[-1] == "x49"
