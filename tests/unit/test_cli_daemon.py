"""Pure parts of ``cnm daemon``: socket paths, logfmt lines, stale and live sockets, locks."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

import pytest

from cnm.daemon import DaemonError, LogfmtFormatter, claim_socket, locked_file, socket_path


def test_socket_path_forms() -> None:
    assert socket_path("unix:///run/x.sock") == Path("/run/x.sock")
    assert socket_path("/run/x.sock") == Path("/run/x.sock")
    with pytest.raises(DaemonError, match="Unix socket only"):
        socket_path("tcp://0.0.0.0:2375")
    with pytest.raises(DaemonError, match="absolute"):
        socket_path("x.sock")


def _record(msg: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("cnm.daemon", level, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_logfmt_line() -> None:
    line = LogfmtFormatter().format(
        _record("API listening", socket="/run/cnm/cnm.sock", path='a "b"', empty="")
    )
    assert line.startswith("time=")
    assert line.split(" ", 1)[1] == (
        'level=info msg="API listening" socket=/run/cnm/cnm.sock path="a \\"b\\"" empty=""'
    )


def test_logfmt_names_other_loggers_and_appends_tracebacks() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "cnm.controller", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    lines = LogfmtFormatter().format(record).splitlines()
    assert lines[0].endswith("level=error msg=failed logger=cnm.controller")
    assert lines[-1] == "    ValueError: boom"


def test_claim_socket(tmp_path: Path) -> None:
    path = tmp_path / "cnm.sock"
    claim_socket(path)  # nothing there

    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    claim_socket(path)
    assert not path.exists()

    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(DaemonError, match="another daemon is already serving"):
            claim_socket(path)
    path.unlink()

    path.write_text("not a socket")
    with pytest.raises(DaemonError, match="is not a socket"):
        claim_socket(path)


def test_lock_file_is_exclusive_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "cnm.pid"
    with locked_file(path, "exec root", "123\n"):
        assert path.read_text() == "123\n"
        with (
            pytest.raises(DaemonError, match=r"another cnm daemon \(pid 123\) is using exec root"),
            locked_file(path, "exec root", "456\n"),
        ):
            pass
    assert not path.exists()
