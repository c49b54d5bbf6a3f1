"""Fixtures for the store tests: a real etcd in a throwaway namespace, and ``store``, which
runs a contract test once on SQLite and once on etcd.

Each etcd test gets a fresh one-member etcd (about 0.3 s to start) listening on 127.0.0.1 of a
namespace of its own, and the test's main thread enters that namespace, so the store's
requests and the watch threads it starts reach that etcd and nothing else. Revisions then
start at 1 on etcd and at 0 on SQLite: contract tests compare revisions to ``revision()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cnm.osl.namespace import delete_netns
from cnm.store.api import Store
from cnm.store.etcd import EtcdStore
from cnm.store.sqlite import SqliteStore
from tests.support.etcd import EtcdServer, single_node
from tests.support.netns import make_test_netns


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A running one-member etcd; the test runs inside its namespace."""
    namespace = make_test_netns("etcd")
    server = single_node("etcd0", namespace.path, "127.0.0.1", tmp_path)
    try:
        server.start()
        server.wait_healthy()
        with namespace.entered():
            yield server
    finally:
        server.kill()
        namespace.close()
        delete_netns(namespace.path)


@pytest.fixture
def etcd_store(etcd: EtcdServer) -> Iterator[EtcdStore]:
    store = EtcdStore([etcd.endpoint])
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "etcd"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend: Store
    if request.param == "sqlite":
        backend = SqliteStore(tmp_path / "store.db")
    else:
        backend = EtcdStore([request.getfixturevalue("etcd").endpoint])
    yield backend
    backend.close()
