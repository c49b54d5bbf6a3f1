"""docker-py 7 as a client of cnm: negotiation, the network API, errors with status codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import docker
import pytest
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool

from tests.support.daemon import Daemon


@pytest.fixture
def client(daemon: Daemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=daemon.host)
    yield client
    client.close()


def test_negotiation_ping_info(client: docker.DockerClient, daemon: Daemon) -> None:
    assert client.api.api_version == "1.47"  # docker-py 7 asks /version for it
    pinned = docker.DockerClient(base_url=daemon.host, version="1.41")
    assert pinned.networks.get("bridge").name == "bridge"
    pinned.close()
    assert client.ping() is True
    assert client.version()["Components"][0]["Name"] == "Engine"
    assert client.info()["Plugins"]["Network"] == [
        "bridge",
        "host",
        "ipvlan",
        "macvlan",
        "null",
        "overlay",
    ]


def test_list_predefined(client: docker.DockerClient) -> None:
    predefined = client.networks.list(names=["bridge", "host", "none"])
    assert sorted((n.name, n.attrs["Driver"]) for n in predefined) == [
        ("bridge", "bridge"),
        ("host", "host"),
        ("none", "null"),
    ]


def test_create_get_remove(client: docker.DockerClient, names: Callable[[str], str]) -> None:
    name = names("py")
    ipam = IPAMConfig(
        pool_configs=[
            IPAMPool(
                subnet="10.95.0.0/24",
                iprange="10.95.0.64/26",
                gateway="10.95.0.1",
                aux_addresses={"printer": "10.95.0.9"},
            ),
            IPAMPool(subnet="fd00:95::/64"),
        ]
    )
    network = client.networks.create(
        name,
        driver="bridge",
        ipam=ipam,
        labels={"owner": "py"},
        options={"com.docker.network.bridge.enable_icc": "false"},
        enable_ipv6=True,
        internal=True,
        attachable=True,
    )
    fetched = client.networks.get(network.id[:10])
    assert fetched.name == name
    attrs = fetched.attrs
    assert attrs["IPAM"]["Config"][0] == {
        "Subnet": "10.95.0.0/24",
        "IPRange": "10.95.0.64/26",
        "Gateway": "10.95.0.1",
        "AuxiliaryAddresses": {"printer": "10.95.0.9"},
    }
    assert attrs["IPAM"]["Config"][1]["Subnet"] == "fd00:95::/64"
    assert attrs["Labels"] == {"owner": "py"}
    assert attrs["Options"] == {"com.docker.network.bridge.enable_icc": "false"}
    assert (attrs["Internal"], attrs["Attachable"], attrs["EnableIPv6"]) == (True, True, True)
    assert [n.id for n in client.networks.list(filters={"label": "owner=py"})] == [network.id]
    network.remove()
    with pytest.raises(NotFound):
        client.networks.get(name)


def test_prune(client: docker.DockerClient, names: Callable[[str], str]) -> None:
    drop = names("pyprune")
    client.networks.create(drop, labels={"pyprune": "yes"})
    assert client.networks.prune(filters={"label": "pyprune=yes"}) == {"NetworksDeleted": [drop]}
    assert client.networks.prune(filters={"label": "pyprune=yes"}) == {"NetworksDeleted": None}


def _status(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(APIError) as info:
        call()
    return info.value.status_code, str(info.value.explanation)


def test_errors_carry_dockers_status_codes(
    client: docker.DockerClient, names: Callable[[str], str]
) -> None:
    api = client.api
    name = names("pyerr")
    api.create_network(name)

    def with_pool(**pool: str) -> Callable[[], object]:
        return lambda: api.create_network(
            names("pyerr"), ipam=IPAMConfig(pool_configs=[IPAMPool(**pool)])
        )

    assert _status(lambda: api.create_network(name))[0] == 409
    assert _status(with_pool(subnet="10.96.0.0/40"))[0] == 400
    assert _status(with_pool(subnet="10.96.0.0/24", gateway="10.97.0.1"))[0] == 400
    assert _status(with_pool(subnet="10.96.0.0/24", iprange="10.97.0.0/25"))[0] == 400
    assert _status(lambda: api.create_network("   "))[0] == 400
    assert _status(lambda: api.create_network(names("pyerr"), driver="nope"))[0] == 404
    assert _status(lambda: api.remove_network("host"))[0] == 403
    assert _status(lambda: api.remove_network("f" * 64))[0] == 404
    assert _status(lambda: api.inspect_network("f" * 64))[0] == 404
    assert _status(lambda: api.connect_container_to_network("c", "f" * 64))[0] == 404
    assert _status(lambda: api.disconnect_container_from_network("c", "f" * 64))[0] == 404
    status, message = _status(lambda: api.create_network(names("pyerr"), ingress=True))
    assert (status, "swarm mode" in message) == (400, True)
    assert _status(lambda: client.volumes.list())[0] == 501
