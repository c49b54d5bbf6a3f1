"""Docker network JSON <-> model translation (cnm.api.translate)."""

from __future__ import annotations

import pytest

from cnm.api.translate import network_to_json, parse_network_create
from cnm.errors import InvalidParameter
from cnm.model import Endpoint, IpamRequest, Network, NetworkRequest, PoolRecord, Sandbox
from tests.support.docker_shapes import DOCKER_NETWORK_KEYS


def _network(**overrides: object) -> Network:
    fields: dict[str, object] = {
        "id": "ab" * 32,
        "name": "my-net",
        "driver": "bridge",
        "scope": "local",
        "created": "2025-01-02T03:04:05.123456789Z",
        "ipv4_pools": [
            PoolRecord("LocalDefault/10.10.0.0/24", "10.10.0.0/24", None, "10.10.0.1/24")
        ],
    }
    fields.update(overrides)
    return Network(**fields)  # type: ignore[arg-type]


def test_full_docker_cli_request() -> None:
    body = {
        "Name": "my-net",
        "Driver": "bridge",
        "Scope": "local",
        "EnableIPv6": True,
        "IPAM": {
            "Driver": "default",
            "Config": [
                {
                    "Subnet": "10.10.0.0/24",
                    "IPRange": "10.10.0.128/25",
                    "Gateway": "10.10.0.1",
                    "AuxiliaryAddresses": {"router": "10.10.0.2"},
                },
                {"Subnet": "fd00:1::/64"},
            ],
            "Options": {"o": "1"},
        },
        "Internal": True,
        "Attachable": True,
        "Ingress": False,
        "ConfigOnly": False,
        "ConfigFrom": {"Network": ""},
        "Options": {"com.docker.network.driver.mtu": "1400"},
        "Labels": {"team": "a"},
        "CheckDuplicate": True,
    }
    assert parse_network_create(body) == NetworkRequest(
        name="my-net",
        driver="bridge",
        scope="local",
        options={"com.docker.network.driver.mtu": "1400"},
        labels={"team": "a"},
        internal=True,
        attachable=True,
        enable_ipv6=True,
        ipam_driver="default",
        ipam_options={"o": "1"},
        ipam_config=[
            IpamRequest("10.10.0.0/24", "10.10.0.128/25", "10.10.0.1", {"router": "10.10.0.2"}),
            IpamRequest("fd00:1::/64"),
        ],
    )


def test_docker_py_nulls_mean_defaults() -> None:
    body = {
        "Name": "n",
        "Driver": None,
        "Options": None,
        "IPAM": {
            "Driver": "default",
            "Config": [
                {
                    "Subnet": "10.0.0.0/24",
                    "IPRange": None,
                    "Gateway": None,
                    "AuxiliaryAddresses": None,
                }
            ],
            "Options": None,
        },
        "CheckDuplicate": None,
    }
    request = parse_network_create(body)
    assert request.driver == "bridge"
    assert request.options == {}
    assert request.ipam_options is None
    assert request.ipam_config == [IpamRequest("10.0.0.0/24")]


def test_ipam_options_are_echoed_as_given() -> None:
    """docker-py gives no IPAM options and Docker shows null; the docker CLI gives {}."""
    for given, shown in ((None, None), ({}, {}), ({"o": "1"}, {"o": "1"})):
        request = parse_network_create({"Name": "n", "IPAM": {"Options": given}})
        assert request.ipam_options == given
        data = network_to_json(_network(ipam_options=request.ipam_options))
        assert data["IPAM"]["Options"] == shown
    assert parse_network_create({"Name": "n"}).ipam_options is None


def test_field_names_match_case_insensitively_exact_first() -> None:
    request = parse_network_create(
        {"name": "lower", "ipam": {"config": [{"subnet": "10.0.0.0/8"}]}}
    )
    assert request.name == "lower"
    assert request.ipam_config == [IpamRequest("10.0.0.0/8")]
    assert parse_network_create({"name": "folded", "Name": "exact"}).name == "exact"


def test_minimal_request_defaults() -> None:
    assert parse_network_create({"Name": "n"}) == NetworkRequest(name="n")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the request body must be a JSON object, not an array"),
        ({"Name": 5}, "Name must be a string, not a number"),
        ({"Name": "n", "Internal": "yes"}, "Internal must be a boolean, not a string"),
        ({"Name": "n", "Labels": ["a"]}, "Labels must be an object of strings, not an array"),
        ({"Name": "n", "Options": {"k": 1}}, "Options['k'] must be a string, not a number"),
        ({"Name": "n", "IPAM": "x"}, "IPAM must be a JSON object, not a string"),
        ({"Name": "n", "IPAM": {"Config": {}}}, "IPAM.Config must be an array, not an object"),
        ({"Name": "n", "IPAM": {"Config": [1]}}, "IPAM.Config[0] must be a JSON object"),
        (
            {"Name": "n", "IPAM": {"Config": [{"Subnet": True}]}},
            "IPAM.Config[0].Subnet must be a string, not a boolean",
        ),
        ({"Name": "n", "Ingress": True}, "swarm mode"),
        ({"Name": "n", "ConfigOnly": True}, "config-only"),
        ({"Name": "n", "ConfigFrom": {"Network": "cfg"}}, "config-only network"),
        ({"Name": "n", "Scope": "swarm"}, "swarm scope needs swarm mode"),
        ({"Name": "n", "EnableIPv4": False}, "EnableIPv4=false"),
    ],
)
def test_refused_requests(body: object, message: str) -> None:
    with pytest.raises(InvalidParameter, match=None) as info:
        parse_network_create(body)
    assert message in str(info.value)


def test_network_json_has_dockers_shape() -> None:
    data = network_to_json(_network(ipam_options={}))
    assert set(data) == DOCKER_NETWORK_KEYS
    assert data["IPAM"] == {
        "Driver": "default",
        "Options": {},
        "Config": [{"Subnet": "10.10.0.0/24", "Gateway": "10.10.0.1"}],
    }
    assert data["ConfigFrom"] == {"Network": ""}
    assert data["Containers"] == {}
    assert data["EnableIPv4"] is True
    assert data["Ingress"] is False


def test_ipam_config_omits_empty_fields_and_lists_v6_after_v4() -> None:
    network = _network(
        enable_ipv6=True,
        ipv4_pools=[
            PoolRecord("p4", "10.1.0.0/16", "10.1.2.0/24", "10.1.0.1/16", {"r": "10.1.0.9"})
        ],
        ipv6_pools=[PoolRecord("p6", "fd00::/64", None, "fd00::1/64")],
    )
    assert network_to_json(network)["IPAM"]["Config"] == [
        {
            "Subnet": "10.1.0.0/16",
            "IPRange": "10.1.2.0/24",
            "Gateway": "10.1.0.1",
            "AuxiliaryAddresses": {"r": "10.1.0.9"},
        },
        {"Subnet": "fd00::/64", "Gateway": "fd00::1"},
    ]


def test_predefined_networks_show_null_ipam_options() -> None:
    host = _network(name="host", driver="host", predefined=True, ipv4_pools=[])
    data = network_to_json(host)
    assert data["IPAM"] == {"Driver": "default", "Options": None, "Config": []}


def test_containers_are_keyed_by_container_id() -> None:
    endpoint = Endpoint(
        id="e" * 64,
        name="web",
        network_id="ab" * 32,
        ipv4_address="10.10.0.2/24",
        mac_address="02:42:0a:0a:00:02",
        sandbox_id="s" * 64,
    )
    sandbox = Sandbox(id="s" * 64, container_id="c" * 64, key="/run/cnm/netns/s", hostname="h")
    data = network_to_json(_network(), [(endpoint, sandbox)])
    assert data["Containers"] == {
        "c" * 64: {
            "Name": "web",
            "EndpointID": "e" * 64,
            "MacAddress": "02:42:0a:0a:00:02",
            "IPv4Address": "10.10.0.2/24",
            "IPv6Address": "",
        }
    }
