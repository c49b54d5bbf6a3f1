"""runc's failures in Docker's terms: the message from its JSON log, the error class and the
exit code a failed start reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnm.errors import CnmError, InvalidParameter
from cnm.runtime.runc import read_error, start_error, start_exit_code

NOT_FOUND = 'exec: "nope": executable file not found in $PATH'


def test_the_last_error_of_runcs_log_is_the_reason(tmp_path: Path) -> None:
    log = tmp_path / "runc.log"
    entries = [
        {"level": "warning", "msg": "cgroup: ignored"},
        {"level": "error", "msg": "first"},
        {"level": "fatal", "msg": f"runc run failed: {NOT_FOUND}"},
        {"level": "info", "msg": "bye"},
    ]
    lines = [json.dumps(entry) for entry in entries]
    log.write_text("\n".join([lines[0], "not json at all", *lines[1:]]) + "\n")
    assert read_error(log) == f"runc run failed: {NOT_FOUND}"
    assert read_error(tmp_path / "missing.log") == ""


@pytest.mark.parametrize(
    ("message", "kind", "code"),
    [
        (NOT_FOUND, InvalidParameter, 127),
        ('exec: "/etc": no such file or directory', InvalidParameter, 127),
        ('exec: "/etc/hosts": permission denied', InvalidParameter, 126),
        ("unable to apply cgroup configuration", CnmError, 128),
    ],
)
def test_a_start_error_gets_dockers_class_and_exit_code(
    message: str, kind: type[CnmError], code: int
) -> None:
    error = start_error(message)
    assert type(error) is kind
    assert str(error) == (
        f"failed to create task for container: OCI runtime create failed: {message}: unknown"
    )
    assert start_exit_code(str(error)) == code
