"""Terminals and stdin under runc and on the host: what the process sees, input queued before
the start, StdinOnce's end of input, resize at start and later, an exec's resize, and a
runtime restart (live restore) with a terminal and with a stdin pipe."""

from __future__ import annotations

import os
import re
import select
import time
from collections.abc import Callable
from pathlib import Path

from cnm.runtime.execs import ExecProcess
from cnm.runtime.runtime import HOST_IMAGE, Runtime
from tests.support.runtime import config, host, logged, make_network


def _log(runtime: Runtime, ref: str) -> str:
    return logged(runtime, ref)


def _wait_for_log(runtime: Runtime, ref: str, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while text not in (found := _log(runtime, ref)):
        assert time.monotonic() < deadline, f"{text!r} never logged by {ref}: {found!r}"
        time.sleep(0.02)
    return found


def test_a_terminal_merges_the_output_into_the_log(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "tty",
        config(busybox, "sh", "-c", "tty; echo to-err >&2; echo $TERM; stty size", tty=True),
        host(network_mode="none", console_size=[33, 77]),
        {},
    )
    runtime.start_container("tty")
    assert runtime.wait_container("tty", timeout=10) == 0
    assert _log(runtime, "tty") == "/dev/pts/0\r\nto-err\r\nxterm\r\n33 77\r\n"
    assert logged(runtime, "tty", 2) == ""  # a terminal has one stream


def test_input_is_queued_until_the_start_and_its_end_closes_the_pipe(
    runtime: Runtime, busybox: str
) -> None:
    runtime.create_container(
        "reader",
        config(busybox, "sh", "-c", "read x; echo got $x; cat; echo end", open_stdin=True),
        host(network_mode="none"),
        {},
    )
    runtime.write_stdin("reader", b"hello\nmore\n")
    runtime.close_stdin("reader")
    runtime.write_stdin("reader", b"dropped\n")  # after the end of input
    runtime.start_container("reader")
    assert runtime.wait_container("reader", timeout=10) == 0
    assert _log(runtime, "reader") == "got hello\nmore\nend\n"

    # Each run has its own stdin: the next one reads new input.
    runtime.start_container("reader")
    runtime.write_stdin("reader", b"again\n")
    runtime.close_stdin("reader")
    assert runtime.wait_container("reader", timeout=10) == 0
    assert _log(runtime, "reader").endswith("got again\nend\n")


def test_typing_into_a_terminal_and_resizing_it(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "shell",
        config(busybox, "sh", tty=True, open_stdin=True),
        host(network_mode="none"),
        {},
    )
    runtime.start_container("shell")
    runtime.resize_container("shell", 40, 100)
    runtime.write_stdin("shell", b"stty size; echo $((6 * 7))\n")
    logged = _wait_for_log(runtime, "shell", "42\r\n")
    assert "40 100\r\n" in logged
    runtime.write_stdin("shell", b"exit 3\n")
    assert runtime.wait_container("shell", timeout=10) == 3


def _read_until(process: ExecProcess, text: bytes, ask: bool = False) -> None:
    """Read the exec's output until ``text`` (for at most 10 s); with ``ask``, send an empty
    line every 0.2 s (by the clock: the terminal's echo of each comes back at once)."""
    seen = b""
    deadline = time.monotonic() + 10
    next_ask = 0.0
    while text not in seen:
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"{text!r} never printed: {seen!r}")
        if ask and now >= next_ask:
            process.stdin.write(b"\n")
            next_ask = now + 0.2
        if select.select([process.stdout], [], [], 0.05)[0]:
            seen += os.read(process.stdout.fileno(), 4096)


def test_an_exec_terminal_is_resized(runtime: Runtime, busybox: str) -> None:
    runtime.create_container("box", config(busybox, "sleep", "1000"), host(network_mode="none"), {})
    runtime.start_container("box")
    exec_id = runtime.exec_create(
        "box", ["sh", "-c", "echo ready; while read x; do stty size; done"], [], True,
        open_stdin=True, console_size=(20, 60),
    )  # fmt: skip
    process = runtime.exec_start(exec_id)
    _read_until(process, b"ready")  # input sent before runc relays it may be lost
    # runc sizes the container's terminal just after its process starts (a first `stty size`
    # may see no size yet), and passes a new size on when its SIGWINCH arrives.
    _read_until(process, b"20 60", ask=True)
    runtime.exec_resize(exec_id, 25, 90)
    _read_until(process, b"25 90", ask=True)
    process.stdin.write(b"\x04")  # Ctrl-D: the end of input
    assert process.wait(10) == 0
    runtime.exec_resize(exec_id, 1, 1)  # ended: nothing to do


def test_host_filesystem_container_with_a_terminal(runtime: Runtime) -> None:
    make_network(runtime, "hostty", "10.86.0.0/24")
    runtime.create_container(
        "htty",
        config(HOST_IMAGE, "sh", "-c", "tty; read x; echo got $x", tty=True, open_stdin=True),
        host(network_mode="hostty"),
        {},
    )
    runtime.write_stdin("htty", b"typed\n")
    runtime.start_container("htty")
    assert runtime.wait_container("htty", timeout=10) == 0
    logged = _log(runtime, "htty")
    # The terminal echoes the input when it is written: before or after `tty` prints.
    assert logged.count("typed\r\n") == 2, logged
    assert re.fullmatch(r"/dev/pts/\d+\r\ngot typed\r\n", logged.replace("typed\r\n", "", 1))


def test_a_terminal_survives_a_runtime_restart(
    make_runtime: Callable[[], Runtime], busybox_tar: Path
) -> None:
    first = make_runtime()
    with open(busybox_tar, "rb") as stream:
        first.import_image(stream, "busybox:local")
    first.create_container(
        "live",
        config("busybox:local", "sh", tty=True, open_stdin=True),
        host(network_mode="none"),
        {},
    )
    first.create_container(
        "piped",
        config("busybox:local", "sh", "-c", "cat; echo eof; sleep 1000", open_stdin=True),
        host(network_mode="none"),
        {},
    )
    first.start_container("live")
    first.start_container("piped")
    first.write_stdin("live", b"echo before\n")
    _wait_for_log(first, "live", "before\r\n")
    first.close()
    first.controller.close()

    second = make_runtime()
    # The terminal was kept open and is ours again: input, output and resize work.
    assert second.container("live").state.running
    second.resize_container("live", 30, 70)
    second.write_stdin("live", b"echo after; stty size\n")
    assert "after\r\n30 70\r\n" in _wait_for_log(second, "live", "30 70\r\n")
    # The stdin pipe died with the first runtime: its process read EOF, and keeps running.
    _wait_for_log(second, "piped", "eof\n")
    assert second.container("piped").state.running
    second.write_stdin("piped", b"dropped\n")

    second.write_stdin("live", b"exit 4\n")
    assert second.wait_container("live", timeout=10) == 4
    second.stop_container("piped", timeout=0)
