"""The cluster-store option and the etcd store's constructor: pure parsing, no etcd needed."""

from __future__ import annotations

import pytest

from cnm.errors import InvalidParameter
from cnm.store.etcd import EtcdStore, parse_cluster_store


@pytest.mark.parametrize(
    ("url", "endpoints"),
    [
        ("etcd://10.77.0.10:2379", ["10.77.0.10:2379"]),
        ("etcd://h1:2379,h2:22379,h3", ["h1:2379", "h2:22379", "h3:2379"]),
        ("etcd://etcd.example:2379/", ["etcd.example:2379"]),
        ("etcd://[fd00::10]:2379,[fd00::11]", ["[fd00::10]:2379", "[fd00::11]:2379"]),
    ],
)
def test_parse_cluster_store(url: str, endpoints: list[str]) -> None:
    assert parse_cluster_store(url) == endpoints


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("consul://h1:8500", "the only cluster store"),
        ("zk://h1:2181", "the only cluster store"),
        ("h1:2379", "the only cluster store"),
        ("etcd:/h1:2379", "the only cluster store"),
        ("etcd://", "expected etcd://host:port"),
        ("etcd://h1:2379/custom_prefix", "expected etcd://host:port"),
        ("etcd://user@h1:2379", "expected etcd://host:port"),
        ("etcd://h1:2379?x=1", "expected etcd://host:port"),
        ("etcd://h1:port", "'h1:port'"),
        ("etcd://h1:70000", "'h1:70000'"),
        ("etcd://h1:0", "'h1:0'"),
        ("etcd://h1:2379,,h2:2379", "''"),
        ("etcd://h1:2379, h2:2379", "' h2:2379'"),
        ("etcd://fd00::10:2379", "'fd00::10:2379'"),
    ],
)
def test_parse_cluster_store_rejects(url: str, complaint: str) -> None:
    with pytest.raises(InvalidParameter, match=complaint.replace("?", r"\?")) as caught:
        parse_cluster_store(url)
    assert caught.value.status == 400


def test_store_needs_endpoints_and_a_directory_prefix() -> None:
    with pytest.raises(InvalidParameter, match="at least one endpoint"):
        EtcdStore([])
    with pytest.raises(InvalidParameter, match="must end with '/'"):
        EtcdStore(["127.0.0.1:2379"], prefix="/cnm")
    with pytest.raises(InvalidParameter, match="'h1:x'"):
        EtcdStore(["h1:x"])


def test_store_names_its_endpoints_normalised() -> None:
    store = EtcdStore(["h1", "[fd00::1]:2380"], prefix="/lab/")
    try:
        assert store.endpoints == ["h1:2379", "[fd00::1]:2380"]
        assert store.scope == "global"
    finally:
        store.close()
