"""Restarts: networks of remote drivers come back by activating their plugins again; a plugin
that is gone at start leaves its networks listed but unusable, with a clear error, until it is
back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cnm.controller import Controller
from cnm.errors import Unavailable
from cnm.model import EndpointOptions, NetworkRequest
from tests.kernel.probes import default_routes, links, stop

from .processes import SamplePlugin


def test_networks_come_back_through_their_plugins(
    make_controller: Callable[..., Controller], start_plugin: Callable[..., SamplePlugin]
) -> None:
    plugin = start_plugin("both", "--implements", "NetworkDriver,IpamDriver")
    first = make_controller()
    network = first.create_network(NetworkRequest(name="n", driver="both", ipam_driver="both"))
    kept = first.create_sandbox()
    first.connect("n", kept.id, EndpointOptions(name="kept"))
    stop(first)
    plugin.forget_calls()

    second = make_controller()
    # activated again, asked for nothing twice: the plugin keeps its own state
    assert plugin.methods() == [
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "IpamDriver.GetCapabilities",
    ]
    assert second.network("n").id == network.id
    other = second.create_sandbox()
    endpoint = second.connect("n", other.id, EndpointOptions(name="other"))
    assert endpoint.ipv4_address == "10.210.0.3/24"
    assert [r["gateway"] for r in default_routes(other.key)] == ["10.210.0.1"]
    second.disconnect("n", kept.id)
    assert [c["method"] for c in plugin.calls()][-3:] == [
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleaseAddress",
    ]
    assert sorted(links(kept.key)) == ["lo"]


def test_a_plugin_gone_at_start_leaves_its_network_listed_but_unusable(
    make_controller: Callable[..., Controller], start_plugin: Callable[..., SamplePlugin]
) -> None:
    plugin = start_plugin("sample")
    first = make_controller()
    first.create_network(NetworkRequest(name="n", driver="sample"))
    kept = first.create_sandbox()
    first.connect("n", kept.id, EndpointOptions(name="kept"))
    stop(first)
    plugin.stop()

    second = make_controller()  # starts all the same
    assert [n.name for n in second.networks() if n.driver == "sample"] == ["n"]
    sandbox = second.create_sandbox()
    with pytest.raises(
        Unavailable, match="network n cannot be used: its driver sample is unavailable"
    ):
        second.connect("n", sandbox.id, EndpointOptions())
    with pytest.raises(Unavailable, match="its driver sample is unavailable"):
        second.disconnect("n", kept.id)

    plugin.start()  # back: found again by the next request
    endpoint = second.connect("n", sandbox.id, EndpointOptions())
    assert endpoint.ifname == "eth0"
    assert [r["gateway"] for r in default_routes(sandbox.key)] == ["172.18.0.1"]
    second.disconnect("n", kept.id)
    second.delete_sandbox(sandbox.id)
    second.delete_network("n")
    assert sorted(n.name for n in second.networks()) == ["bridge", "host", "none"]
