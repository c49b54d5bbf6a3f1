"""The Engine API over raw HTTP: headers, versions, routing, and the issue's bad-input list."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.support.daemon import Daemon

UNKNOWN_ID = "0123456789abcdef" * 4


def _filters(**filters: list[str]) -> str:
    return quote(json.dumps({key: dict.fromkeys(values, True) for key, values in filters.items()}))


def test_ping_get_and_head(daemon: Daemon) -> None:
    for method in ("GET", "HEAD"):
        reply = daemon.request(method, "/_ping")
        assert reply.status == 200
        assert reply.body == (b"OK" if method == "GET" else b"")
        assert reply.headers["Api-Version"] == "1.47"
        assert reply.headers["Docker-Experimental"] == "false"
        assert reply.headers["Ostype"] == "linux"
        assert reply.headers["Server"].startswith("cnm/")
        assert reply.headers["Builder-Version"]
        assert reply.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert reply.headers["Pragma"] == "no-cache"


def test_versioned_and_unversioned_paths(daemon: Daemon) -> None:
    for path in ("/version", "/v1.24/version", "/v1.41/version", "/v1.47/version"):
        reply = daemon.request("GET", path)
        assert reply.status == 200, path
        assert reply.headers["Content-Type"] == "application/json"
        data = reply.json()
        assert isinstance(data, dict)
        assert (data["ApiVersion"], data["MinAPIVersion"]) == ("1.47", "1.24")


def test_version_bounds(daemon: Daemon) -> None:
    old = daemon.request("GET", "/v1.23/networks")
    assert old.status == 400
    assert old.message.startswith(
        "client version 1.23 is too old. Minimum supported API version is 1.24"
    )
    new = daemon.request("GET", "/v1.99/networks")
    assert new.status == 400
    assert "client version 1.99 is too new" in new.message


def test_unknown_routes_and_methods(daemon: Daemon) -> None:
    for method, path in (("GET", "/nothing"), ("GET", "/v1.47/nothing"), ("PUT", "/networks/x")):
        reply = daemon.request(method, path)
        assert (reply.status, reply.message) == (404, "page not found"), path


def test_unserved_endpoints_fail_cleanly(daemon: Daemon) -> None:
    reply = daemon.request("GET", "/v1.47/volumes")
    assert reply.status == 501
    assert reply.message == "cnm does not serve GET /v1.47/volumes"
    assert daemon.request("POST", "/swarm/init").status == 501


def test_info(daemon: Daemon) -> None:
    data = daemon.request("GET", "/info").json()
    assert isinstance(data, dict)
    assert data["Plugins"]["Network"] == ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"]
    assert data["Containers"] == 0
    assert data["OSType"] == "linux"
    assert data["DockerRootDir"] == str(daemon.root / "data")


def test_create_inspect_delete(daemon: Daemon, names: Callable[[str], str]) -> None:
    name = names("http")
    reply = daemon.request(
        "POST",
        "/v1.47/networks/create",
        {"Name": name, "IPAM": {"Config": [{"Subnet": "10.77.0.0/24"}]}},
    )
    assert reply.status == 201
    created = reply.json()
    assert isinstance(created, dict)
    assert set(created) == {"Id", "Warning"}
    network_id = created["Id"]
    for ref in (name, network_id, network_id[:12]):
        shown = daemon.request("GET", f"/networks/{ref}?verbose=true&scope=local").json()
        assert isinstance(shown, dict)
        assert shown["Id"] == network_id
    assert daemon.request("GET", f"/networks/{name}?scope=swarm").status == 404
    deleted = daemon.request("DELETE", f"/networks/{network_id[:12]}")
    assert (deleted.status, deleted.body) == (204, b"")
    assert daemon.request("GET", f"/networks/{name}").status == 404


def test_list_filters(daemon: Daemon, names: Callable[[str], str]) -> None:
    name = names("flt")
    daemon.request("POST", "/networks/create", {"Name": name, "Labels": {"suite": name}})
    listed = daemon.request("GET", f"/networks?filters={_filters(label=[f'suite={name}'])}")
    assert [n["Name"] for n in listed.json()] == [name]  # type: ignore[union-attr]
    builtin = daemon.request("GET", f"/networks?filters={_filters(type=['builtin'])}").json()
    assert sorted(n["Name"] for n in builtin) == ["bridge", "host", "none"]  # type: ignore[union-attr]
    for filters, message in (
        (_filters(colour=["red"]), "invalid filter 'colour'"),
        (_filters(type=["odd"]), "invalid filter 'type=odd'"),
        (_filters(dangling=["maybe"]), "invalid value for filter 'dangling'"),
        ("not-json", "invalid filters"),
    ):
        reply = daemon.request("GET", f"/networks?filters={filters}")
        assert reply.status == 400
        assert message in reply.message


def test_prune_with_until_and_labels(daemon: Daemon, names: Callable[[str], str]) -> None:
    keep, drop = names("keep"), names("drop")
    daemon.request("POST", "/networks/create", {"Name": keep, "Labels": {"prune-test": "keep"}})
    daemon.request("POST", "/networks/create", {"Name": drop, "Labels": {"prune-test": "drop"}})
    # created just now, so "until 1h ago" spares both
    early = daemon.request("POST", f"/networks/prune?filters={_filters(until=['1h'])}")
    assert early.json() == {"NetworksDeleted": None}
    filters = _filters(label=["prune-test"], **{"label!": ["prune-test=keep"]})
    reply = daemon.request("POST", f"/networks/prune?filters={filters}")
    assert reply.json() == {"NetworksDeleted": [drop]}
    assert daemon.request("GET", f"/networks/{keep}").status == 200
    bad = daemon.request("POST", f"/networks/prune?filters={_filters(until=['someday'])}")
    assert bad.status == 400
    assert "failed to parse value as time or duration" in bad.message
    assert daemon.request("POST", f"/networks/prune?filters={_filters(name=['x'])}").status == 400


# --------------------------------------------------------------------------------- bad input


def _create(daemon: Daemon, body: object, **headers: str) -> tuple[int, str]:
    reply = daemon.request("POST", "/v1.47/networks/create", body, headers)
    return reply.status, reply.message


def _subnet(name: str, **config: object) -> dict[str, object]:
    return {"Name": name, "IPAM": {"Config": [config]}}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"Subnet": "10.78.0.0/33"}, "invalid subnet"),
        ({"Subnet": "not-a-cidr"}, "invalid subnet"),
        ({"Subnet": "10.78.0.1/24"}, "host bits are set"),
        ({"Subnet": "10.78.0.0/24", "Gateway": "10.79.0.1"}, "not within subnet"),
        ({"Subnet": "10.78.0.0/24", "Gateway": "bogus"}, "gateway"),
        ({"Subnet": "10.78.0.0/24", "IPRange": "10.79.0.0/25"}, "not within subnet"),
        (
            {"Subnet": "10.78.0.0/24", "AuxiliaryAddresses": {"r": "10.79.0.5"}},
            "not within subnet",
        ),
    ],
)
def test_invalid_ipam_config_is_400(
    daemon: Daemon, names: Callable[[str], str], config: dict[str, object], message: str
) -> None:
    status, text = _create(daemon, _subnet(names("bad"), **config))
    assert status == 400
    assert message in text


def test_overlapping_subnets(daemon: Daemon, names: Callable[[str], str]) -> None:
    first, second = names("ovl"), names("ovl")
    assert _create(daemon, _subnet(first, Subnet="10.80.0.0/16"))[0] == 201
    status, text = _create(daemon, _subnet(second, Subnet="10.80.1.0/24"))
    assert status == 409
    assert "overlaps" in text


def test_duplicate_name_is_409(daemon: Daemon, names: Callable[[str], str]) -> None:
    name = names("dup")
    assert _create(daemon, {"Name": name})[0] == 201
    assert _create(daemon, {"Name": name}) == (409, f"network with name {name} already exists")


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_blank_names_are_refused(daemon: Daemon, name: str) -> None:
    status, text = _create(daemon, {"Name": name})
    assert status == 400
    assert text.startswith("invalid name: ")


@pytest.mark.parametrize("suffix", [" with space", "/slash", ";semi", "-é"])
def test_names_docker_takes(daemon: Daemon, suffix: str) -> None:
    """Docker 20.10 takes any name that is not blank; one with a slash is reached by its id."""
    name = f"odd-{secrets.token_hex(3)}{suffix}"
    reply = daemon.request("POST", "/v1.41/networks/create", {"Name": name})
    assert reply.status == 201, reply.body
    network_id = json.loads(reply.body)["Id"]
    listed = daemon.request("GET", "/networks?filters=" + quote(json.dumps({"id": [network_id]})))
    assert [n["Name"] for n in listed.json()] == [name]
    assert daemon.request("DELETE", f"/networks/{network_id}").status == 204


@pytest.mark.parametrize("name", ["bridge", "host", "none"])
def test_predefined_networks_cannot_be_created_or_removed(daemon: Daemon, name: str) -> None:
    assert _create(daemon, {"Name": name})[0] == 403
    reply = daemon.request("DELETE", f"/networks/{name}")
    assert reply.status == 403
    assert "pre-defined network" in reply.message


def test_unknown_drivers_are_404(daemon: Daemon, names: Callable[[str], str]) -> None:
    status, text = _create(daemon, {"Name": names("drv"), "Driver": "no-such-driver"})
    assert (status, "could not find network driver") == (404, text[:29])
    status, text = _create(daemon, {"Name": names("drv"), "IPAM": {"Driver": "no-such-ipam"}})
    assert (status, "could not find IPAM driver") == (404, text[:26])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"Name": "x",', "invalid JSON"),
        (b"", "the request body is empty"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"Name": 5}', "Name must be a string, not a number"),
        (b'{"Name": "x", "Internal": "yes"}', "Internal must be a boolean"),
        (b'{"Name": "x", "Labels": {"a": 1}}', "Labels['a'] must be a string"),
        (b'{"Name": "x", "IPAM": {"Config": {"Subnet": "x"}}}', "IPAM.Config must be an array"),
        (b'{"Name": "x", "Ingress": true}', "swarm mode"),
        (b'{"Name": "x", "EnableIPv4": false}', "EnableIPv4=false"),
    ],
)
def test_malformed_bodies_are_400(daemon: Daemon, body: bytes, message: str) -> None:
    status, text = _create(daemon, body)
    assert status == 400
    assert message in text


def test_wrong_content_type_is_400(daemon: Daemon) -> None:
    status, text = _create(daemon, b'{"Name": "x"}', **{"Content-Type": "text/plain"})
    assert status == 400
    assert "unsupported Content-Type header" in text


def test_oversized_body_is_413(daemon: Daemon) -> None:
    body = json.dumps({"Name": "big", "Labels": {"pad": "x" * (2 << 20)}}).encode()
    status, text = _create(daemon, body)
    assert status == 413
    assert "request body too large: the limit is 1048576 bytes" in text
    assert daemon.request("GET", "/networks/big").status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/networks/{id}"),
        ("GET", "/v1.41/networks/{id}"),
        ("DELETE", "/networks/{id}"),
        ("POST", "/networks/{id}/connect"),
        ("POST", "/networks/{id}/disconnect"),
    ],
)
def test_unknown_network_is_404_in_every_call(daemon: Daemon, method: str, path: str) -> None:
    reply = daemon.request(method, path.format(id=UNKNOWN_ID), {"Container": "x"})
    assert reply.status == 404
    assert reply.message == f"network {UNKNOWN_ID} not found"
