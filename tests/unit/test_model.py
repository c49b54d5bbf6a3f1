from cnm.model import Endpoint, Network, PoolRecord, Sandbox


def test_network_round_trips_through_json_with_pools() -> None:
    network = Network(
        id="a" * 64,
        name="n",
        driver="bridge",
        scope="local",
        created="2026-01-01T00:00:00.000000000Z",
        options={"k": "v"},
        ipv4_pools=[PoolRecord("LocalDefault/10.0.0.0/24", "10.0.0.0/24", None, "10.0.0.1/24")],
        ipv6_pools=[PoolRecord("LocalDefault/fd00::/64", "fd00::/64", None, "fd00::1/64")],
    )
    again = Network.from_json(network.to_json())
    assert again == network
    assert isinstance(again.ipv4_pools[0], PoolRecord)


def test_records_ignore_unknown_fields_from_newer_versions() -> None:
    raw = b'{"id":"e","name":"n","network_id":"x","future_field":1}'
    assert Endpoint.from_json(raw) == Endpoint(id="e", name="n", network_id="x")


def test_sandbox_round_trip() -> None:
    sandbox = Sandbox(
        id="s", container_id="c", key="/run/cnm/netns/s", hostname="h", dns=["1.2.3.4"]
    )
    assert Sandbox.from_json(sandbox.to_json()) == sandbox
