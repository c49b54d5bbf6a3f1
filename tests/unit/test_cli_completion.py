"""``cnm completion bash``: the script parses, and completes commands, flags and choices."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cnm.cli.completion import bash_script
from cnm.cli.main import build_parser

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def _complete(words: list[str]) -> list[str]:
    """Run the completion function for ``words`` (the last one is being typed)."""
    line = " ".join(words)
    program = (
        f"{bash_script(build_parser())}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        "_cnm; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    result = subprocess.run(
        ["bash", "--norc", "-c", program], capture_output=True, text=True, check=True
    )
    return sorted(filter(None, result.stdout.splitlines()))


def test_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n"], input=bash_script(build_parser()), text=True, check=True)


def test_commands() -> None:
    top = _complete(["cnm", "''"])
    assert {
        *("completion", "daemon", "info", "network", "version", "image"),
        *("run", "create", "start", "stop", "kill", "restart", "rm", "rename"),
        *("ps", "inspect", "logs", "exec", "port"),
    } <= set(top)
    assert all(not word.startswith("-") for word in top)
    assert _complete(["cnm", "network", "''"]) == [
        "connect",
        "create",
        "disconnect",
        "inspect",
        "list",
        "ls",
        "prune",
        "remove",
        "rm",
    ]
    assert _complete(["cnm", "-H", "unix:///x", "network", "p"]) == ["prune"]


def test_flags_and_choices() -> None:
    flags = _complete(["cnm", "network", "create", "--s"])
    assert flags == ["--subnet"]
    assert "--aux-address" in _complete(["cnm", "network", "create", "--subnet", "x", "--"])
    assert _complete(["cnm", "daemon", "--log-level", "de"]) == ["debug"]
    # -f is --force (no value) for prune but --filter (a value) for ls
    assert _complete(["cnm", "network", "prune", "-f", "--f"]) == ["--filter", "--force"]
    assert _complete(["cnm", "network", "ls", "-f", "x", "--n"]) == ["--no-trunc"]
