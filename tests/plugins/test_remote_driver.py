"""A remote network driver behind the controller: the sample plugin makes the kernel objects,
cnm moves its links into sandboxes, addresses them and routes through the plugin's gateway.
The JSON the plugin receives is checked field by field against libnetwork's shapes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cnm.controller import Controller
from cnm.errors import CnmError, InvalidParameter, NotFound
from cnm.model import EndpointOptions, IpamRequest, NetworkRequest, PortRequest
from tests.kernel.probes import (
    EchoServer,
    addresses,
    default_routes,
    link,
    links,
    routes,
    tcp_echo,
)

from .processes import SamplePlugin

PLUGIN_MIME = "application/vnd.docker.plugins.v1.2+json"


def _network(controller: Controller, driver: str, subnet: str = "10.120.0.0/24", **kw: object):
    return controller.create_network(
        NetworkRequest(
            name=f"net-{driver}", driver=driver, ipam_config=[IpamRequest(subnet=subnet)], **kw
        )  # type: ignore[arg-type]
    )


def test_create_and_delete_network_speak_libnetworks_json(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    plugin = start_plugin("sample")
    network = controller.create_network(
        NetworkRequest(
            name="n1",
            driver="sample",
            options={"flavour": "vanilla"},
            internal=True,
            ipam_config=[
                IpamRequest(
                    subnet="10.120.0.0/24",
                    gateway="10.120.0.254",
                    aux_addresses={"r": "10.120.0.9"},
                )
            ],
        )
    )
    assert plugin.methods() == [
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "NetworkDriver.CreateNetwork",
    ]
    assert {call["accept"] for call in plugin.calls()} == {PLUGIN_MIME}
    assert plugin.calls("NetworkDriver.CreateNetwork")[0]["body"] == {
        "NetworkID": network.id,
        "Options": {
            "com.docker.network.enable_ipv6": False,
            "com.docker.network.generic": {"flavour": "vanilla"},
            "com.docker.network.internal": True,
        },
        "IPv4Data": [
            {
                "AddressSpace": "LocalDefault",
                "Pool": "10.120.0.0/24",
                "Gateway": "10.120.0.254/24",
                "AuxAddresses": {"r": "10.120.0.9/24"},
            }
        ],
        "IPv6Data": [],
    }
    bridge = f"tb{network.id[:10]}"
    assert addresses(bridge, family="4") == ["10.120.0.254/24"]
    assert network.driver == "sample" and network.scope == "local"
    assert "sample" in controller.driver_names()

    controller.delete_network(network.id)
    assert plugin.calls("NetworkDriver.DeleteNetwork")[0]["body"] == {"NetworkID": network.id}
    assert link(bridge) is None
    # the pool went back to the default IPAM: the same subnet can be taken again
    _network(controller, "bridge", "10.120.0.0/24")


def test_two_sandboxes_talk_through_the_plugins_bridge(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    plugin = start_plugin("sample")
    network = _network(controller, "sample")
    alpha, beta = controller.create_sandbox(), controller.create_sandbox()
    a = controller.connect(
        network.id, alpha.id, EndpointOptions(name="a", mac_address="02:42:0a:78:00:aa")
    )
    b = controller.connect(network.id, beta.id, EndpointOptions(name="b"))

    create = plugin.calls("NetworkDriver.CreateEndpoint")[0]["body"]
    assert create == {
        "NetworkID": network.id,
        "EndpointID": a.id,
        "Interface": {
            "Address": "10.120.0.2/24",
            "AddressIPv6": "",
            "MacAddress": "02:42:0a:78:00:aa",
        },
        "Options": {},
    }
    join = plugin.calls("NetworkDriver.Join")[0]["body"]
    assert join == {
        "NetworkID": network.id,
        "EndpointID": a.id,
        "SandboxKey": alpha.key,
        "Options": {},
    }
    # the plugin's link was moved in, renamed eth0, given the MAC asked for and addressed
    inside = link("eth0", alpha.key)
    assert inside is not None and inside["address"] == "02:42:0a:78:00:aa"
    assert addresses("eth0", alpha.key, family="4") == ["10.120.0.2/24"]
    assert f"tc{a.id[:10]}" not in links()
    assert [r["gateway"] for r in default_routes(alpha.key)] == ["10.120.0.1"]
    assert a.ifname == "eth0" and a.gateway_v4 == "10.120.0.1"
    assert b.ipv4_address == "10.120.0.3/24"

    with EchoServer("10.120.0.3", 8080, beta.key) as server:
        assert tcp_echo(alpha.key, "10.120.0.3", 8080, "hello") == "echo:hello"
        assert server.peer() == "10.120.0.2"

    controller.disconnect(network.id, alpha.id)
    leave = plugin.calls("NetworkDriver.Leave")[0]
    assert leave["body"] == {"NetworkID": network.id, "EndpointID": a.id}
    assert leave["src_in_host"] is True  # given back to the plugin before Leave, as libnetwork does
    assert plugin.calls("NetworkDriver.DeleteEndpoint")[0]["body"] == {
        "NetworkID": network.id,
        "EndpointID": a.id,
    }
    assert sorted(links(alpha.key)) == ["lo"]
    assert f"tv{a.id[:10]}" not in links() and f"tc{a.id[:10]}" not in links()
    controller.delete_sandbox(beta.id)
    assert plugin.methods()[-2:] == ["NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"]
    controller.delete_network(network.id)


def test_plugin_chosen_mac_prefix_and_static_routes_are_honoured(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    start_plugin("sample", "--choose-mac", "--prefix", "pl", "--static-route", "10.99.0.0/16")
    network = _network(controller, "sample")
    sandbox = controller.create_sandbox()
    first = controller.connect("bridge", sandbox.id, EndpointOptions())
    endpoint = controller.connect(network.id, sandbox.id, EndpointOptions(name="x"))
    assert first.ifname == "eth0"
    assert endpoint.ifname == "pl0"  # <DstPrefix><lowest free index>
    assert endpoint.mac_address is not None and endpoint.mac_address.startswith("02:aa:")
    assert controller.endpoint(endpoint.id).mac_address == endpoint.mac_address
    pl0 = link("pl0", sandbox.key)
    assert pl0 is not None and pl0["address"] == endpoint.mac_address
    assert addresses("pl0", sandbox.key, family="4") == ["10.120.0.2/24"]
    assert {"dst": "10.99.0.0/16", "dev": "pl0"}.items() <= next(
        r for r in routes(sandbox.key) if r["dst"] == "10.99.0.0/16"
    ).items()
    # the bridge network joined first keeps the default route
    assert [r["dev"] for r in default_routes(sandbox.key)] == ["eth0"]
    controller.delete_sandbox(sandbox.id)


def test_optional_methods_answering_404_are_skipped(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    plugin = start_plugin(
        "sparse",
        "--misbehave",
        "EndpointOperInfo=404",
        "--misbehave",
        "ProgramExternalConnectivity=404",
        "--misbehave",
        "RevokeExternalConnectivity=404",
    )
    network = _network(controller, "sparse")
    sandbox = controller.create_sandbox()
    endpoint = controller.connect(network.id, sandbox.id, EndpointOptions())
    assert controller.publish(sandbox.id, []) == []
    assert "NetworkDriver.ProgramExternalConnectivity" in plugin.methods()
    # a port asked of a plugin that cannot publish is refused, not dropped
    with pytest.raises(InvalidParameter, match="cannot publish ports"):
        controller.publish(sandbox.id, [PortRequest("tcp", 80, host_port=8080)])
    assert controller.published(sandbox.id) == []
    controller.disconnect(network.id, sandbox.id)
    assert controller.endpoints(network.id) == []
    assert endpoint.id not in {e.id for e in controller.endpoints()}


def test_published_ports_reach_the_plugin_in_dockers_shape(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    plugin = start_plugin("sample")
    network = _network(controller, "sample")
    sandbox = controller.create_sandbox()
    controller.connect(network.id, sandbox.id, EndpointOptions())
    mappings = controller.publish(
        sandbox.id,
        [PortRequest("tcp", 80, host_port=8080), PortRequest("udp", 53, "127.0.0.1", 5353)],
    )
    program = plugin.calls("NetworkDriver.ProgramExternalConnectivity")[-1]["body"]
    assert program["Options"] == {
        "com.docker.network.endpoint.exposedports": [
            {"Proto": 6, "Port": 80},
            {"Proto": 17, "Port": 53},
        ],
        "com.docker.network.portmap": [
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
            {
                "Proto": 17,
                "IP": "",
                "Port": 53,
                "HostIP": "127.0.0.1",
                "HostPort": 5353,
                "HostPortEnd": 5353,
            },
        ],
    }
    assert [(m.proto, str(m.host_ip), m.host_port, str(m.container_ip)) for m in mappings] == [
        ("tcp", "0.0.0.0", 8080, "10.120.0.2"),
        ("udp", "127.0.0.1", 5353, "10.120.0.2"),
    ]
    controller.delete_sandbox(sandbox.id)
    assert "NetworkDriver.RevokeExternalConnectivity" in plugin.methods()


def test_unknown_driver_names_are_not_found(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    start_plugin("ipamonly", "--implements", "IpamDriver")
    with pytest.raises(NotFound, match="could not find network driver 'nosuch'"):
        _network(controller, "nosuch")
    with pytest.raises(NotFound, match="does not implement NetworkDriver"):
        _network(controller, "ipamonly")
    with pytest.raises(NotFound):
        controller.create_network(NetworkRequest(name="n", driver="../plugins/ipamonly"))
    assert [n.name for n in controller.networks()] == ["none", "host", "bridge"]


def test_plugins_with_scopes_cnm_cannot_keep_are_refused(
    controller: Controller, start_plugin: Callable[..., SamplePlugin]
) -> None:
    start_plugin("overlayish", "--scope", "global")
    start_plugin("confused", "--scope", "galactic")
    with pytest.raises(CnmError, match="global-scope network driver: cnm runs local-scope"):
        _network(controller, "overlayish")
    with pytest.raises(CnmError, match="expecting 'local' or 'global', got 'galactic'"):
        _network(controller, "confused")
    assert sorted(n.name for n in controller.networks()) == ["bridge", "host", "none"]
