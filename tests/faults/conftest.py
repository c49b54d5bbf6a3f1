"""Fixtures for the fault-injection tests: the daemons they start are the client tests' kind
(``tests/support/daemon.py``), and so is the leftover check."""

from __future__ import annotations

from tests.clients.conftest import _nothing_left_behind

__all__ = ["_nothing_left_behind"]
