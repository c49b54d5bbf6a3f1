"""libnetwork's remote JSON, written and read back (cnm talks to itself through it with
``cnm plugin serve``), and what malformed answers and requests are told."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

import pytest

from cnm import daemon
from cnm.driverapi import EndpointInfo, EndpointSpec, IpamData, JoinInfo, NetworkSpec, StaticRoute
from cnm.errors import CnmError, InvalidParameter
from cnm.ipamapi import PoolGrant
from cnm.model import PortRequest
from cnm.plugins import protocol
from cnm.plugins.client import PluginRefused, parse_address
from cnm.plugins.discovery import SOCKET_DIRS, SPEC_DIRS


def test_create_network_round_trip() -> None:
    spec = NetworkSpec(
        network_id="ab" * 32,
        name="abababababab",
        options={"com.docker.network.bridge.name": "br0"},
        internal=True,
        enable_ipv6=True,
        ipv4=(
            IpamData(
                ipaddress.ip_network("10.1.0.0/24"),
                ipaddress.ip_interface("10.1.0.1/24"),
                {"router": ipaddress.ip_address("10.1.0.9")},
                "Space",
            ),
        ),
        ipv6=(IpamData(ipaddress.ip_network("fd00::/64"), ipaddress.ip_interface("fd00::1/64")),),
    )
    body = protocol.create_network_request(spec)
    assert body["IPv4Data"][0] == {
        "AddressSpace": "Space",
        "Pool": "10.1.0.0/24",
        "Gateway": "10.1.0.1/24",
        "AuxAddresses": {"router": "10.1.0.9/24"},
    }
    assert protocol.parse_create_network(body) == spec


def test_endpoint_answers_hold_only_what_the_driver_chose() -> None:
    asked = EndpointSpec("n", "e", address=ipaddress.IPv4Interface("10.1.0.2/24"))
    info = EndpointInfo(mac_address="02:42:00:00:00:01")
    answer = protocol.create_endpoint_answer(asked, info)
    assert answer == {
        "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": "02:42:00:00:00:01"}
    }
    chosen = protocol.parse_create_endpoint_answer(answer)
    assert (chosen.address, chosen.mac_address) == (None, "02:42:00:00:00:01")
    full = EndpointSpec("n", "e", mac_address="02:42:00:00:00:01")
    assert protocol.create_endpoint_answer(full, info) == {}
    with pytest.raises(CnmError, match="MacAddress must be a unicast MAC address"):
        protocol.parse_create_endpoint_answer({"Interface": {"MacAddress": "01:00:5e:00:00:01"}})
    with pytest.raises(CnmError, match="Address must be an IPv4 address/prefix"):
        protocol.parse_create_endpoint_answer({"Interface": {"Address": "fd00::2/64"}})


def test_join_round_trip_and_bad_answers() -> None:
    info = JoinInfo(
        gateway=ipaddress.ip_address("10.1.0.1"),
        static_routes=(
            StaticRoute(ipaddress.ip_network("10.9.0.0/16")),
            StaticRoute(ipaddress.ip_network("10.8.0.0/16"), ipaddress.ip_address("10.1.0.7")),
        ),
    )
    answer = protocol.join_answer("veth0", "eth", info)
    assert answer["StaticRoutes"] == [
        {"Destination": "10.9.0.0/16", "RouteType": 1, "NextHop": ""},
        {"Destination": "10.8.0.0/16", "RouteType": 0, "NextHop": "10.1.0.7"},
    ]
    parsed = protocol.parse_join_answer(answer)
    assert (parsed.src_name, parsed.dst_prefix, parsed.info) == ("veth0", "eth", info)
    assert protocol.parse_join_answer({}).src_name is None
    for bad, message in (
        ({"InterfaceName": {"SrcName": "x"}}, "DstPrefix is required"),
        ({"Gateway": "fd00::1"}, "is not an IPv4 address"),
        ({"Gateway": 7}, "Gateway must be a string"),
        ({"StaticRoutes": [{"Destination": "10.0.0.0/8", "RouteType": 0}]}, "needs a NextHop"),
        ({"StaticRoutes": [{"Destination": "10.0.0.0/8", "RouteType": 5}]}, "RouteType must be"),
        ({"StaticRoutes": "x"}, "StaticRoutes must be an array"),
    ):
        with pytest.raises(CnmError, match=message):
            protocol.parse_join_answer(bad)  # type: ignore[arg-type]


def test_port_options_round_trip() -> None:
    requests = [
        PortRequest("tcp", 80, host_port=8080),
        PortRequest("udp", 53, "127.0.0.1", 5300, 5310),
        PortRequest("sctp", 9),
    ]
    options = protocol.port_options(requests)
    assert options[protocol.OPT_EXPOSED_PORTS] == [
        {"Proto": 6, "Port": 80},
        {"Proto": 17, "Port": 53},
        {"Proto": 132, "Port": 9},
    ]
    assert protocol.parse_port_requests(options) == requests
    with pytest.raises(InvalidParameter, match="Proto 1 is not 6"):
        protocol.parse_port_requests({protocol.OPT_PORT_MAP: [{"Proto": 1, "Port": 80}]})
    with pytest.raises(InvalidParameter, match="HostPort 70000 is not a port number"):
        protocol.parse_port_requests(
            {protocol.OPT_PORT_MAP: [{"Proto": 6, "Port": 80, "HostPort": 70000}]}
        )


def test_ipam_shapes() -> None:
    grant = PoolGrant("S/10.2.0.0/16", ipaddress.ip_network("10.2.0.0/16"))
    assert protocol.parse_pool_answer(protocol.pool_answer(grant)) == grant
    with pytest.raises(CnmError, match=r"gateway 10\.3\.0\.1/16 is not within pool 10\.2\.0\.0/16"):
        protocol.parse_pool_answer(
            {
                "PoolID": "p",
                "Pool": "10.2.0.0/16",
                "Data": {protocol.POOL_DATA_GATEWAY: "10.3.0.1/16"},
            }
        )
    with pytest.raises(CnmError, match="no address returned"):
        protocol.parse_address_answer({"Address": ""})
    with pytest.raises(PluginRefused, match="remote: pool exhausted"):
        protocol.check_error({"Error": "pool exhausted"}, protocol.IPAM_ERROR_KEY)
    protocol.check_error({"Err": "ignored by IPAM"}, protocol.IPAM_ERROR_KEY)


def test_plugin_addresses() -> None:
    assert parse_address("unix:///run/docker/plugins/x.sock") == (
        "unix",
        "/run/docker/plugins/x.sock",
    )
    assert parse_address("tcp://127.0.0.1:8080") == ("tcp", "127.0.0.1:8080")
    for bad in ("/run/x.sock", "tcp://127.0.0.1", "ftp://x:1", "unix://relative"):
        with pytest.raises(InvalidParameter):
            parse_address(bad)


def _daemon_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    daemon.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_daemon_plugin_options() -> None:
    config = daemon.plugin_config(_daemon_args())
    assert (config.socket_dirs, config.spec_dirs, config.timeout) == (SOCKET_DIRS, SPEC_DIRS, 30)
    config = daemon.plugin_config(
        _daemon_args("--plugin-dir", "/a", "--plugin-dir", "/b", "--plugin-timeout", "2.5")
    )
    assert (config.socket_dirs, config.timeout) == ((Path("/a"), Path("/b")), 2.5)
    with pytest.raises(daemon.DaemonError, match="must be between 0 and 3600"):
        daemon.plugin_config(_daemon_args("--plugin-timeout", "0"))
    with pytest.raises(daemon.DaemonError, match="must be absolute"):
        daemon.plugin_config(_daemon_args("--plugin-spec-dir", "specs"))
