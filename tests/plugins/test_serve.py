"""``cnm plugin serve`` driven at the protocol level: this test plays dockerd (its IPAM calls,
its endpoint and join calls, the move of the interface into the sandbox, addresses and routes)
and checks what cnm did in the kernel, that packets flow, that a published port is reached
through cnm's nftables rules, and that a restarted server keeps everything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cnm.osl.namespace import NetNamespace, delete_netns
from cnm.plugins.client import MethodNotImplemented, PluginClient, PluginRefused
from tests.kernel.probes import EchoServer, addresses, link, links, run, tcp_echo
from tests.support.netns import make_test_netns

from .processes import ServedPlugin

GATEWAY_REQUEST = {"RequestAddressType": "com.docker.network.gateway"}


@pytest.fixture
def sandboxes() -> Iterator[Callable[[], NetNamespace]]:
    made: list[NetNamespace] = []

    def make() -> NetNamespace:
        made.append(make_test_netns("sb"))
        return made[-1]

    yield make
    for namespace in made:
        namespace.close()
        delete_netns(namespace.path)


class Dockerd:
    """What dockerd does with a network plugin, call for call."""

    def __init__(self, served: ServedPlugin) -> None:
        self.client = PluginClient("cnm", f"unix://{served.socket}", 10.0)

    def __call__(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.client.call(method, body)

    def attach(self, network_id: str, endpoint_id: str, pool_id: str, sandbox: NetNamespace):
        address = self(
            "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": {}}
        )
        created = self(
            "NetworkDriver.CreateEndpoint",
            {
                "NetworkID": network_id,
                "EndpointID": endpoint_id,
                "Interface": {"Address": address["Address"], "AddressIPv6": "", "MacAddress": ""},
                "Options": {},
            },
        )
        joined = self(
            "NetworkDriver.Join",
            {
                "NetworkID": network_id,
                "EndpointID": endpoint_id,
                "SandboxKey": sandbox.path,
                "Options": {},
            },
        )
        source = joined["InterfaceName"]["SrcName"]
        run("ip", "link", "set", source, "netns", sandbox.path, "name", "eth0")
        run("ip", "addr", "add", address["Address"], "dev", "eth0", netns=sandbox.path)
        run("ip", "link", "set", "eth0", "up", netns=sandbox.path)
        run("ip", "route", "add", "default", "via", joined["Gateway"], netns=sandbox.path)
        return address["Address"], created, joined


def test_dockerd_calls_build_a_working_cnm_network(
    served: ServedPlugin, sandboxes: Callable[[], NetNamespace]
) -> None:
    dockerd = Dockerd(served)
    assert dockerd("Plugin.Activate") == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert dockerd("NetworkDriver.GetCapabilities") == {
        "Scope": "local",
        "ConnectivityScope": "local",
    }
    assert dockerd("IpamDriver.GetCapabilities") == {
        "RequiresMACAddress": False,
        "RequiresRequestReplay": False,
    }
    spaces = dockerd("IpamDriver.GetDefaultAddressSpaces")
    pool = dockerd(
        "IpamDriver.RequestPool",
        {
            "AddressSpace": spaces["LocalDefaultAddressSpace"],
            "Pool": "",
            "SubPool": "",
            "Options": {},
            "V6": False,
        },
    )
    assert pool == {"PoolID": "LocalDefault/172.17.0.0/16", "Pool": "172.17.0.0/16", "Data": {}}
    gateway = dockerd(
        "IpamDriver.RequestAddress",
        {"PoolID": pool["PoolID"], "Address": "", "Options": GATEWAY_REQUEST},
    )
    assert gateway == {"Address": "172.17.0.1/16", "Data": {}}
    network_id = "ab" * 32
    dockerd(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": network_id,
            "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
            "IPv4Data": [
                {
                    "AddressSpace": "LocalDefault",
                    "Gateway": "172.17.0.1/16",
                    "Pool": "172.17.0.0/16",
                }
            ],
            "IPv6Data": [],
        },
    )
    bridge = link("br-abababababab")
    assert bridge is not None and bridge["ifalias"] == f"cnm:net:{network_id}"
    assert addresses("br-abababababab", family="4") == ["172.17.0.1/16"]

    alpha, beta = sandboxes(), sandboxes()
    a_address, a_created, a_joined = dockerd.attach(network_id, "a1" * 32, pool["PoolID"], alpha)
    b_address, _, _ = dockerd.attach(network_id, "b2" * 32, pool["PoolID"], beta)
    assert (a_address, b_address) == ("172.17.0.2/16", "172.17.0.3/16")
    mac = a_created["Interface"]["MacAddress"]
    assert mac.startswith("02:42:") and a_created["Interface"]["Address"] == ""
    assert a_joined == {
        "InterfaceName": {"SrcName": "cnma1a1a1a1a1a1", "DstPrefix": "eth"},
        "Gateway": "172.17.0.1",
        "GatewayIPv6": "",
        "StaticRoutes": [],
        "DisableGatewayService": False,
    }
    assert link("eth0", alpha.path)["address"] == mac
    assert link("vetha1a1a1a1a1a")["master"] == "br-abababababab"

    with EchoServer("172.17.0.3", 9000, beta.path) as server:
        assert tcp_echo(alpha.path, "172.17.0.3", 9000, "over-cnm") == "echo:over-cnm"
        assert server.peer() == "172.17.0.2"

    # a published port: Docker's portmap in, the bound port back in EndpointOperInfo
    dockerd(
        "NetworkDriver.ProgramExternalConnectivity",
        {
            "NetworkID": network_id,
            "EndpointID": "b2" * 32,
            "Options": {
                "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
                "com.docker.network.portmap": [
                    {
                        "Proto": 6,
                        "IP": "",
                        "Port": 80,
                        "HostIP": "",
                        "HostPort": 18080,
                        "HostPortEnd": 18080,
                    }
                ],
            },
        },
    )
    info = dockerd(
        "NetworkDriver.EndpointOperInfo", {"NetworkID": network_id, "EndpointID": "b2" * 32}
    )
    bound = {
        (m["IP"], m["Port"], m["HostIP"], m["HostPort"])
        for m in info["Value"]["com.docker.network.portmap"]
    }
    assert bound == {("172.17.0.3", 80, "0.0.0.0", 18080), ("172.17.0.3", 80, "::", 18080)}
    with EchoServer("172.17.0.3", 80, beta.path):
        # from the host, to the gateway address: DNAT by the served plugin's nftables table
        out = run("python3", "-c", _CLIENT, "172.17.0.1", "18080")
        assert out.strip() == "echo:published"

    # the server restarts: networks, endpoints, ports and IPAM come back from its store
    served.stop()
    served.start()
    assert link("vetha1a1a1a1a1a")["master"] == "br-abababababab"
    info = dockerd(
        "NetworkDriver.EndpointOperInfo", {"NetworkID": network_id, "EndpointID": "b2" * 32}
    )
    assert info["Value"]["com.docker.network.portmap"][0]["HostPort"] == 18080
    third = dockerd(
        "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": {}}
    )
    assert third["Address"] == "172.17.0.4/16"
    with pytest.raises(PluginRefused, match=r"Address already in use: 172\.17\.0\.2"):
        dockerd(
            "IpamDriver.RequestAddress",
            {"PoolID": pool["PoolID"], "Address": "172.17.0.2", "Options": {}},
        )

    # teardown, as dockerd does it
    dockerd(
        "NetworkDriver.RevokeExternalConnectivity",
        {"NetworkID": network_id, "EndpointID": "b2" * 32},
    )
    for endpoint_id, address in (("a1" * 32, "172.17.0.2"), ("b2" * 32, "172.17.0.3")):
        ids = {"NetworkID": network_id, "EndpointID": endpoint_id}
        dockerd("NetworkDriver.Leave", ids)
        dockerd("NetworkDriver.DeleteEndpoint", ids)
        dockerd("NetworkDriver.DeleteEndpoint", ids)  # dockerd asks twice
        dockerd("IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": address})
    assert sorted(links(alpha.path)) == ["lo"]
    dockerd("NetworkDriver.DeleteNetwork", {"NetworkID": network_id})
    dockerd("IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "172.17.0.1"})
    dockerd("IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
    assert not [name for name in links() if name.startswith(("br-", "veth", "cnm"))]


_CLIENT = r"""
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
conn.sendall(b"published")
print(conn.recv(1024).decode())
"""


def test_bad_calls_get_clear_errors_and_change_nothing(served: ServedPlugin) -> None:
    dockerd = Dockerd(served)
    with pytest.raises(PluginRefused, match="invalid bridge name"):
        dockerd(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": "cd" * 32,
                "Options": {
                    "com.docker.network.generic": {"com.docker.network.bridge.name": "a/b"}
                },
                "IPv4Data": [],
            },
        )
    with pytest.raises(PluginRefused, match="Pool must be an address in CIDR notation"):
        dockerd(
            "NetworkDriver.CreateNetwork", {"NetworkID": "cd" * 32, "IPv4Data": [{"Pool": "x"}]}
        )
    with pytest.raises(PluginRefused, match="bridge network cdcdcdcdcdcd not found"):
        dockerd(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": "cd" * 32, "EndpointID": "ef" * 32, "Interface": {}},
        )
    with pytest.raises(MethodNotImplemented):
        dockerd("NetworkDriver.AllocateNetwork", {"NetworkID": "cd" * 32})
    assert not [name for name in links() if name.startswith(("br-", "veth"))]
