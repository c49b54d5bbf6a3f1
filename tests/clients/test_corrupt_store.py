"""A corrupt store (issue 10, finding 6): the daemon says in one line which file is corrupt and
what the user can do, exits 1, and makes no kernel state (it used to print a 16-line traceback).
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cnm.osl.namespace import delete_netns
from tests.support.daemon import Daemon, make_netns, running_daemon


def _garbage(db: Path) -> None:
    db.write_bytes(b"not a database, just bytes " * 400)


def _damaged_page(db: Path) -> None:
    """A valid header, a page in the middle overwritten (the kind of damage a torn write or a
    bad disk leaves)."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) >= 3 * page, len(data)
    data[page : 2 * page] = b"\xa5" * page
    db.write_bytes(bytes(data))


def _bad_record(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE kv SET value = ? WHERE key LIKE 'network/%'", (b"{half a reco",))


@pytest.mark.parametrize("corrupt", [_garbage, _damaged_page, _bad_record])
def test_a_corrupt_store_is_one_line_and_no_kernel_state(
    tmp_path: Path, corrupt: Callable[[Path], None]
) -> None:
    root = tmp_path / "daemon"
    with running_daemon(root) as daemon:
        for index in range(12):  # records over several pages
            body = {"Name": f"net{index}", "Labels": {"padding": "x" * 2000}}
            assert daemon.request("POST", "/networks/create", body).status == 201
    db = root / "data" / "cnm.db"
    for leftover in db.parent.glob("cnm.db-*"):  # the WAL was checkpointed at close
        leftover.unlink()
    corrupt(db)
    netns = make_netns()
    try:
        result = subprocess.run(
            Daemon(root, netns).command(), capture_output=True, text=True, timeout=30, check=False
        )
        links = subprocess.run(
            ["nsenter", f"--net={netns.path}", "ip", "-o", "link"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "level=error" in lines[0]
        assert f"the store {db} is corrupt" in lines[0]
        assert "restore it from a backup, or move it aside" in lines[0]
        assert [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]
    finally:
        netns.close()
        delete_netns(netns.path)
