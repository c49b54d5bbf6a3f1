"""A remote IPAM driver: pools and addresses come from the plugin, in its address space, and go
back to it in libnetwork's order."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cnm.controller import Controller
from cnm.errors import CnmError
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest
from tests.kernel.probes import addresses, snapshot

from .processes import SamplePlugin


def test_pools_and_addresses_come_from_the_plugin(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    ipam = start_plugin("sampleipam", "--implements", "IpamDriver")
    network = controller.create_network(
        NetworkRequest(name="n", ipam_driver="sampleipam", ipam_options={"zone": "a"})
    )
    assert ipam.methods() == [
        "Plugin.Activate",
        "IpamDriver.GetCapabilities",
        "IpamDriver.GetDefaultAddressSpaces",
        "IpamDriver.RequestPool",
        "IpamDriver.RequestAddress",
    ]
    assert ipam.calls("IpamDriver.RequestPool")[0]["body"] == {
        "AddressSpace": "SampleSpace",
        "Pool": "",
        "SubPool": "",
        "Options": {"zone": "a"},
        "V6": False,
    }
    assert ipam.calls("IpamDriver.RequestAddress")[0]["body"] == {
        "PoolID": "SampleSpace/10.210.0.0/24",
        "Address": "",
        "Options": {"RequestAddressType": "com.docker.network.gateway"},
    }
    pool = network.ipv4_pools[0]
    assert (pool.subnet, pool.gateway, pool.address_space) == (
        "10.210.0.0/24",
        "10.210.0.1/24",
        "SampleSpace",
    )
    assert addresses(f"br-{network.id[:12]}", family="4") == ["10.210.0.1/24"]

    sandbox = controller.create_sandbox()
    endpoint = controller.connect("n", sandbox.id, EndpointOptions())
    fixed = controller.connect(
        "n", controller.create_sandbox().id, EndpointOptions(ipv4_address="10.210.0.77")
    )
    assert (endpoint.ipv4_address, fixed.ipv4_address) == ("10.210.0.2/24", "10.210.0.77/24")
    assert ipam.calls("IpamDriver.RequestAddress")[-1]["body"]["Address"] == "10.210.0.77"

    ipam.forget_calls()
    controller.delete_sandbox(sandbox.id)
    assert ipam.calls("IpamDriver.ReleaseAddress")[0]["body"] == {
        "PoolID": "SampleSpace/10.210.0.0/24",
        "Address": "10.210.0.2",
    }
    controller.delete_sandbox(fixed.sandbox_id or "")
    ipam.forget_calls()
    controller.delete_network("n")
    assert [(c["method"], c["body"]) for c in ipam.calls()] == [
        (
            "IpamDriver.ReleaseAddress",
            {"PoolID": "SampleSpace/10.210.0.0/24", "Address": "10.210.0.1"},
        ),
        ("IpamDriver.ReleasePool", {"PoolID": "SampleSpace/10.210.0.0/24"}),
    ]


def test_a_remote_driver_and_a_remote_ipam_together(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    """``docker network create -d sample --ipam-driver sampleipam``: one plugin serves both."""
    plugin = start_plugin("both", "--implements", "NetworkDriver,IpamDriver")
    network = controller.create_network(
        NetworkRequest(
            name="n", driver="both", ipam_driver="both", ipam_config=[IpamRequest("10.211.0.0/24")]
        )
    )
    assert plugin.methods().count("Plugin.Activate") == 1
    create = plugin.calls("NetworkDriver.CreateNetwork")[0]["body"]
    assert create["IPv4Data"] == [
        {"AddressSpace": "SampleSpace", "Pool": "10.211.0.0/24", "Gateway": "10.211.0.1/24"}
    ]
    endpoint = controller.connect(network.id, controller.create_sandbox().id, EndpointOptions())
    assert endpoint.ipv4_address == "10.211.0.2/24"


def test_a_refusing_ipam_leaves_nothing_behind(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    ipam = start_plugin("stingy", "--implements", "IpamDriver", "--misbehave", "RequestAddress=err")
    before = snapshot(controller)
    with pytest.raises(CnmError, match="remote: RequestAddress refused"):
        controller.create_network(NetworkRequest(name="n", ipam_driver="stingy"))
    assert snapshot(controller) == before
    assert ipam.methods()[-1] == "IpamDriver.ReleasePool"  # the pool went back
