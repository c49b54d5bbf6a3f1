"""Plugins that hang, answer garbage, refuse, or die in the middle of a call: each failure is a
clear error, and the operation leaves nothing behind (no network, endpoint, address, record or
link of cnm's; what the plugin did is undone through the plugin where it may have acted).

The plugin timeout is 3 s here (the ``plugin_timeout`` fixture): short, and still long enough
for a well-behaved plugin on a loaded 2-CPU machine (1 s was not); the slow plugin answers
after 30 s."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cnm.controller import Controller
from cnm.errors import CnmError, Forbidden, Unavailable
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest
from cnm.plugins.client import PluginRefused
from tests.kernel.probes import links, snapshot

from .processes import SamplePlugin


@pytest.fixture
def plugin_timeout() -> float:
    """Short, so that a hanging plugin costs a test three seconds."""
    return 3.0


# A /30: one address besides the gateway, so a leaked address would be seen at once.
SUBNET = "10.130.0.0/30"

FAILURES = {
    "slow": (Unavailable, r"did not answer within 3s"),
    "malformed": (CnmError, r"malformed JSON"),
    "crash": (Unavailable, r"closed the connection without an answer"),
    "err": (PluginRefused, r"remote: \w+ refused"),
    "status500": (PluginRefused, r"NetworkDriver\.\w+: \w+ broke"),
}
# Where the plugin may have acted, the undo call it is sent.
UNDO = {"CreateNetwork": "DeleteNetwork", "CreateEndpoint": "DeleteEndpoint", "Join": "Leave"}


def _network(controller: Controller, driver: str, subnet: str = SUBNET) -> str:
    request = NetworkRequest(name="n", driver=driver, ipam_config=[IpamRequest(subnet)])
    return controller.create_network(request).id


@pytest.mark.parametrize("behaviour", sorted(FAILURES))
def test_failing_create_network(
    controller: Controller, start_plugin: Callable[..., SamplePlugin], behaviour: str
) -> None:
    plugin = start_plugin("bad", "--misbehave", f"CreateNetwork={behaviour}")
    before = snapshot(controller)
    error, message = FAILURES[behaviour]
    with pytest.raises(error, match=message):
        _network(controller, "bad")
    assert snapshot(controller) == before
    undone = "NetworkDriver.DeleteNetwork" in plugin.methods()
    assert undone == (behaviour in ("slow", "malformed"))  # a dead plugin cannot be told
    # the pool and the name are free again
    controller.create_network(NetworkRequest(name="n", ipam_config=[IpamRequest(SUBNET)]))


@pytest.mark.parametrize("method", ["CreateEndpoint", "Join"])
@pytest.mark.parametrize("behaviour", sorted(FAILURES))
def test_failing_connect(
    controller: Controller,
    start_plugin: Callable[..., SamplePlugin],
    method: str,
    behaviour: str,
) -> None:
    plugin = start_plugin("bad", "--misbehave", f"{method}={behaviour}")
    network_id = _network(controller, "bad")
    sandbox = controller.create_sandbox()
    before = snapshot(controller)
    error, message = FAILURES[behaviour]
    with pytest.raises(error, match=message):
        controller.connect(network_id, sandbox.id, EndpointOptions(name="x"))
    assert snapshot(controller) == before
    assert sorted(links(sandbox.key)) == ["lo"]
    if behaviour in ("slow", "malformed"):
        assert f"NetworkDriver.{UNDO[method]}" in plugin.methods()
    assert plugin.running == (behaviour != "crash")
    # the one address of the /30 went back: once the network's driver behaves, it is given
    plugin.stop()
    start_plugin("bad")
    endpoint = controller.connect(network_id, sandbox.id, EndpointOptions(name="x"))
    assert endpoint.ipv4_address == "10.130.0.2/30"


def test_address_in_the_way_fails_and_is_rolled_back(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    """Docker's rule: a plugin may not replace the address IPAM gave."""
    plugin = start_plugin("pushy", "--misbehave", "CreateEndpoint=address")
    network_id = _network(controller, "pushy")
    sandbox = controller.create_sandbox()
    before = snapshot(controller)
    with pytest.raises(Forbidden, match=r"driver modified interface address.*10\.254\.254\.254"):
        controller.connect(network_id, sandbox.id, EndpointOptions())
    assert snapshot(controller) == before
    assert plugin.methods()[-1] == "NetworkDriver.DeleteEndpoint"


def test_a_hung_ipam_times_out_and_gives_back_its_pool(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    ipam = start_plugin(
        "slowipam", "--implements", "IpamDriver", "--misbehave", "RequestAddress=slow"
    )
    before = snapshot(controller)
    with pytest.raises(
        Unavailable, match=r"IpamDriver\.RequestAddress: plugin slowipam did not answer"
    ):
        controller.create_network(NetworkRequest(name="n", ipam_driver="slowipam"))
    assert snapshot(controller) == before
    assert ipam.methods()[-1] == "IpamDriver.ReleasePool"


def test_plugin_that_dies_makes_its_network_unusable_with_a_clear_error(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    plugin = start_plugin("mortal")
    network_id = _network(controller, "mortal", "10.130.1.0/24")
    sandbox = controller.create_sandbox()
    endpoint = controller.connect(network_id, sandbox.id, EndpointOptions())
    plugin.stop()
    other = controller.create_sandbox()
    with pytest.raises(Unavailable, match=r"cannot reach plugin mortal at unix://.*mortal\.sock"):
        controller.connect(network_id, other.id, EndpointOptions())
    # tearing down what is there still works: the records go, the error is logged
    controller.disconnect(network_id, sandbox.id)
    assert controller.endpoints(network_id) == []
    assert endpoint.id not in {e.id for e in controller.endpoints()}
