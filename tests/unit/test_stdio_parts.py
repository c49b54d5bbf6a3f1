"""The pure parts of terminals and stdin: -i/-t to request bodies, ConsoleSize, the OCI
process's terminal, and the input queue of one run (cnm.runtime.console.Stdin)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from cnm.api.container_json import ContainerPaths, container_inspect_json, parse_container_create
from cnm.cli.container import create_body
from cnm.cli.main import build_parser
from cnm.errors import InvalidParameter
from cnm.runtime import ocispec
from cnm.runtime.console import Stdin
from cnm.runtime.model import Container, ContainerConfig, HostConfig


def _body(command: str, *argv: str) -> dict[str, object]:
    return create_body(build_parser().parse_args([command, *argv]))


def test_interactive_and_tty_flags_as_the_docker_cli_sends_them() -> None:
    body = _body("run", "-it", "busybox:local", "sh")
    flags = ("AttachStdin", "Tty", "OpenStdin", "StdinOnce")
    assert [body[k] for k in flags] == [True, True, True, True]
    detached = _body("run", "-d", "-i", "busybox:local", "sh")
    assert [detached[k] for k in flags] == [False, False, True, False]
    created = _body("create", "-i", "busybox:local", "sh")  # docker create -i: StdinOnce too
    assert [created[k] for k in flags] == [True, False, True, True]


def test_console_size_and_stdin_once_are_kept_and_shown() -> None:
    create = parse_container_create(
        {
            "Image": "busybox:local",
            "Tty": True,
            "OpenStdin": True,
            "StdinOnce": True,
            "HostConfig": {"ConsoleSize": [40, 120]},
        }
    )
    assert create.config.stdin_once and create.host_config.console_size == [40, 120]
    container = Container("c" * 64, "x", "", "", create.config, create.host_config)
    shown = container_inspect_json(container, {}, ContainerPaths(), [])
    assert shown["Config"]["StdinOnce"] is True
    assert shown["HostConfig"]["ConsoleSize"] == [40, 120]
    for size in ([1], [1, -1], ["24", "80"], [70000, 1]):
        with pytest.raises(InvalidParameter, match="ConsoleSize"):
            parse_container_create({"Image": "b", "HostConfig": {"ConsoleSize": size}})


def test_oci_process_terminal() -> None:
    def process(terminal: bool = False, size: list[int] | None = None) -> dict[str, object]:
        container = Container(
            "c" * 64, "x", "", "i", ContainerConfig("i", tty=terminal),
            HostConfig(console_size=size or [0, 0]),
        )  # fmt: skip
        spec = ocispec.build(
            ocispec.SpecRequest(
                container=container, args=["sh"], env=[], cwd="", hostname="h",
                rootfs=Path("/r"), netns="/n", sandbox_files={},
            )
        )  # fmt: skip
        return dict(spec["process"])

    assert process()["terminal"] is False and "consoleSize" not in process()
    sized = process(True, [30, 100])
    assert sized["terminal"] is True
    assert sized["consoleSize"] == {"height": 30, "width": 100}
    assert "consoleSize" not in process(True, [0, 0])


def test_stdin_queues_until_fed_and_ends_with_eof() -> None:
    stdin = Stdin()
    stdin.write(b"before the start\n")
    stdin.close()
    stdin.write(b"after the end\n")  # dropped
    read_end, write_end = os.pipe()
    stdin.feed(write_end, "test-stdin")
    with os.fdopen(read_end, "rb") as reader:
        assert reader.read() == b"before the start\n"  # then EOF: the pump closed its end


def test_stdin_stop_ends_the_pump() -> None:
    stdin = Stdin()
    read_end, write_end = os.pipe()
    stdin.feed(write_end, "test-stdin")
    stdin.write(b"x")
    stdin.stop()
    done = threading.Event()

    def drain() -> None:
        with os.fdopen(read_end, "rb") as reader:
            assert reader.read() == b"x"
        done.set()

    threading.Thread(target=drain).start()
    assert done.wait(5)
