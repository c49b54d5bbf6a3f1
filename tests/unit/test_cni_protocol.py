"""The CNI protocol's pure parts: the environment, the configuration and its capabilities, the
error codes, results per version, and chaining after a prevResult."""

from __future__ import annotations

from typing import Any

import pytest

from cnm.cni import protocol
from cnm.cni.protocol import CniError, Code, Dns, Interface, IPConfig, Result, Route

ADD_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "ctr-1",
    "CNI_NETNS": "/run/netns/a",
    "CNI_IFNAME": "eth0",
}


def _config(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "net", "type": "cnm-cni", **extra}


def _code(call: Any) -> CniError:
    with pytest.raises(CniError) as info:
        call()
    return info.value


# ----------------------------------------------------------------------------- environment


def test_the_environment_of_each_command() -> None:
    invocation = protocol.parse_environment({**ADD_ENV, "CNI_ARGS": "K8S_POD_NAME=web;IP=10.0.0.5"})
    assert (invocation.command, invocation.container_id, invocation.ifname) == (
        "ADD",
        "ctr-1",
        "eth0",
    )
    assert invocation.args == {"K8S_POD_NAME": "web", "IP": "10.0.0.5"}
    # DEL needs no namespace; GC needs only CNI_PATH; STATUS and VERSION need nothing
    assert (
        protocol.parse_environment({"CNI_CONTAINERID": "c", "CNI_IFNAME": "e"}, "DEL").netns == ""
    )
    assert protocol.parse_environment({"CNI_PATH": "/opt/cni/bin"}, "GC").path == "/opt/cni/bin"
    assert protocol.parse_environment({}, "STATUS").command == "STATUS"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "CNI_COMMAND"),
        ({"CNI_COMMAND": "ATTACH"}, "CNI_COMMAND"),
        ({"CNI_COMMAND": "ADD"}, "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME"),
        ({**ADD_ENV, "CNI_NETNS": ""}, "CNI_NETNS"),
        ({"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "c", "CNI_IFNAME": "e"}, "CNI_NETNS"),
        ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c"}, "CNI_IFNAME"),
        ({"CNI_COMMAND": "GC"}, "CNI_PATH"),
        ({**ADD_ENV, "CNI_CONTAINERID": "-bad"}, "CNI_CONTAINERID"),
        ({**ADD_ENV, "CNI_CONTAINERID": "a/b"}, "CNI_CONTAINERID"),
        ({**ADD_ENV, "CNI_NETNS": "run/netns/a"}, "CNI_NETNS"),
        ({**ADD_ENV, "CNI_IFNAME": "much-too-long-name"}, "CNI_IFNAME"),
        ({**ADD_ENV, "CNI_IFNAME": "a:b"}, "CNI_IFNAME"),
        ({**ADD_ENV, "CNI_ARGS": "FOO=1"}, "FOO"),
        ({**ADD_ENV, "CNI_ARGS": "novalue"}, "CNI_ARGS"),
    ],
)
def test_a_bad_environment_is_code_4_naming_the_variable(env: dict[str, str], names: str) -> None:
    error = _code(lambda: protocol.parse_environment(env))
    assert error.code == Code.INVALID_ENVIRONMENT
    assert names in str(error)


def test_unknown_args_pass_with_ignore_unknown() -> None:
    args = protocol.parse_args("IgnoreUnknown=1;FOO=bar;K8S_POD_NAME=web")
    assert args["FOO"] == "bar"


# ----------------------------------------------------------------------------- configuration


def test_a_full_configuration() -> None:
    conf = protocol.parse_config(
        _config(
            network="lab",
            socket="/tmp/cnm.sock",
            timeout=2.5,
            capabilities={"portMappings": True, "mac": True, "ips": True, "aliases": True},
            runtimeConfig={
                "portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
                    {
                        "hostPort": 5353,
                        "containerPort": 53,
                        "protocol": "udp",
                        "hostIP": "127.0.0.1",
                    },
                ],
                "ips": ["10.1.0.7/24", "fd00::7"],
                "mac": "02-42-AC-11-00-09",
                "aliases": ["db", "primary"],
            },
            dns={
                "nameservers": ["10.1.0.53"],
                "domain": "lab",
                "search": ["lab"],
                "options": ["ndots:2"],
            },
            args={"cni": {"labels": [{"key": "app", "value": "x"}]}},
        ),
        "ADD",
        {},
    )
    assert (conf.network, conf.socket, conf.timeout) == ("lab", "/tmp/cnm.sock", 2.5)
    assert conf.port_mappings == (
        protocol.PortMapping(8080, 80, "tcp", ""),
        protocol.PortMapping(5353, 53, "udp", "127.0.0.1"),
    )
    assert conf.ips == ("10.1.0.7/24", "fd00::7")
    assert conf.mac == "02:42:ac:11:00:09"
    assert conf.aliases == ("db", "primary")
    assert conf.dns == Dns(("10.1.0.53",), "lab", ("lab",), ("ndots:2",))


def test_defaults_name_the_network_and_the_socket() -> None:
    conf = protocol.parse_config(_config(), "ADD", {})
    assert (conf.network, conf.socket, conf.timeout) == ("net", "/run/cnm/cnm.sock", 30.0)
    assert conf.prev_result is None and conf.valid_attachments is None


def test_requested_addresses_come_from_runtime_config_then_args_then_cni_args() -> None:
    args = {"IP": "10.0.0.9"}
    with_args = _config(args={"cni": {"ips": ["10.0.0.8"]}})
    assert protocol.parse_config(_config(), "ADD", args).ips == ("10.0.0.9",)
    assert protocol.parse_config(with_args, "ADD", args).ips == ("10.0.0.8",)
    both = {**with_args, "runtimeConfig": {"ips": ["10.0.0.7"]}}
    assert protocol.parse_config(both, "ADD", args).ips == ("10.0.0.7",)
    assert protocol.parse_config(_config(), "ADD", {"MAC": "02:42:00:00:00:01"}).mac == (
        "02:42:00:00:00:01"
    )


@pytest.mark.parametrize(
    ("config", "code", "says"),
    [
        ({"name": "net", "type": "x"}, Code.INCOMPATIBLE_VERSION, "no cniVersion"),
        (_config(cniVersion="0.2.0"), Code.INCOMPATIBLE_VERSION, '"0.2.0"'),
        (_config(cniVersion="2.0.0"), Code.INCOMPATIBLE_VERSION, "plugin supports"),
        (_config(cniVersion=1), Code.INCOMPATIBLE_VERSION, "config is 1"),
        (_config(name=""), Code.INVALID_CONFIG, "missing network name"),
        (_config(name="bad name"), Code.INVALID_CONFIG, "invalid network name"),
        (_config(type=None), Code.INVALID_CONFIG, "missing plugin type"),
        (
            _config(ipam={"type": "host-local"}),
            Code.UNSUPPORTED_FIELD,
            'ipam={"type":"host-local"}',
        ),
        (_config(ipMasq=True), Code.UNSUPPORTED_FIELD, "ipMasq=true"),
        (_config(mtu=9000), Code.UNSUPPORTED_FIELD, "the MTU is the cnm network's"),
        (_config(bridge="cni0"), Code.UNSUPPORTED_FIELD, 'bridge="cni0"'),
        (_config(whatever=1), Code.UNSUPPORTED_FIELD, "whatever=1"),
        (_config(**{"cni.dev/valid-attachments": []}), Code.UNSUPPORTED_FIELD, "cni.dev/"),
        (
            _config(capabilities={"bandwidth": True}),
            Code.UNSUPPORTED_FIELD,
            "capabilities.bandwidth",
        ),
        (_config(capabilities={"mac": "yes"}), Code.INVALID_CONFIG, "capabilities.mac"),
        (
            _config(runtimeConfig={"bandwidth": {}}),
            Code.UNSUPPORTED_FIELD,
            "runtimeConfig.bandwidth",
        ),
        (_config(runtimeConfig=[]), Code.INVALID_CONFIG, "runtimeConfig: expected an object"),
        (_config(runtimeConfig={"portMappings": {}}), Code.INVALID_CONFIG, "expected a list"),
        (
            _config(runtimeConfig={"portMappings": [{"hostPort": 0, "containerPort": 80}]}),
            Code.INVALID_CONFIG,
            "hostPort 0",
        ),
        (
            _config(runtimeConfig={"portMappings": [{"hostPort": 1, "containerPort": 70000}]}),
            Code.INVALID_CONFIG,
            "containerPort 70000",
        ),
        (
            _config(runtimeConfig={"portMappings": [{"hostPort": 1, "containerPort": True}]}),
            Code.INVALID_CONFIG,
            "containerPort true",
        ),
        (
            _config(
                runtimeConfig={
                    "portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "icmp"}]
                }
            ),
            Code.INVALID_CONFIG,
            "tcp, udp or sctp",
        ),
        (
            _config(
                runtimeConfig={"portMappings": [{"hostPort": 1, "containerPort": 2, "hostIP": "x"}]}
            ),
            Code.INVALID_CONFIG,
            "hostIP 'x'",
        ),
        (
            _config(runtimeConfig={"portMappings": [{"hostPort": 1, "containerPort": 2, "x": 1}]}),
            Code.UNSUPPORTED_FIELD,
            "portMappings[0].x=1",
        ),
        (_config(runtimeConfig={"ips": ["10.0.0.300"]}), Code.INVALID_CONFIG, "not an IP address"),
        (_config(runtimeConfig={"ips": ["10.0.0.1", "10.0.0.2"]}), Code.INVALID_CONFIG, "IPv4"),
        (_config(runtimeConfig={"ips": "10.0.0.1"}), Code.INVALID_CONFIG, "expected a list"),
        (_config(runtimeConfig={"mac": "01:00:5e:00:00:01"}), Code.INVALID_CONFIG, "multicast"),
        (_config(runtimeConfig={"mac": 5}), Code.INVALID_CONFIG, "expected a string"),
        (_config(runtimeConfig={"aliases": ["a b"]}), Code.INVALID_CONFIG, "aliases entry"),
        (_config(dns={"nameservers": ["dns.example"]}), Code.INVALID_CONFIG, "not an IP"),
        (_config(dns={"servers": []}), Code.UNSUPPORTED_FIELD, "dns.servers"),
        (_config(socket="cnm.sock"), Code.INVALID_CONFIG, "absolute path"),
        (_config(timeout=0), Code.INVALID_CONFIG, "invalid timeout 0"),
        (_config(timeout=601), Code.INVALID_CONFIG, "at most 600"),
        (_config(timeout="5"), Code.INVALID_CONFIG, 'invalid timeout "5"'),
        (_config(network=""), Code.INVALID_CONFIG, "invalid network"),
        (_config(args=[]), Code.INVALID_CONFIG, "args: expected an object"),
        (_config(prevResult={"ips": [{"address": "bad"}]}), Code.INVALID_CONFIG, "prevResult"),
        (
            _config(
                prevResult={"interfaces": [], "ips": [{"address": "10.0.0.2/24", "interface": 0}]}
            ),
            Code.INVALID_CONFIG,
            "prevResult.ips[0].interface 0",
        ),
    ],
)
def test_bad_configurations_get_the_specs_codes(
    config: dict[str, Any], code: Code, says: str
) -> None:
    error = _code(lambda: protocol.parse_config(config, "ADD", {}))
    assert error.code == code
    assert says in str(error)


def test_gc_needs_its_valid_attachments() -> None:
    conf = protocol.parse_config(
        _config(**{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}),
        "GC",
        {},
    )
    assert conf.valid_attachments == (protocol.Attachment("c1", "eth0"),)
    assert _code(lambda: protocol.parse_config(_config(), "GC", {})).code == Code.INVALID_CONFIG
    bad = _config(**{"cni.dev/valid-attachments": [{"containerID": "c1"}]})
    assert "ifname" in str(_code(lambda: protocol.parse_config(bad, "GC", {})))


def test_decode_failures_are_code_6() -> None:
    assert _code(lambda: protocol.decode(b"{bad")).code == Code.DECODE_FAILURE
    assert _code(lambda: protocol.decode(b"[]")).code == Code.DECODE_FAILURE
    assert _code(lambda: protocol.decode(b"\xff")).code == Code.DECODE_FAILURE


def test_version_answers_the_input_version_and_the_supported_list() -> None:
    assert protocol.version_result({"cniVersion": "0.4.0"}) == {
        "cniVersion": "0.4.0",
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }
    assert protocol.version_result({})["cniVersion"] == "1.1.0"


def test_error_json_and_http_status() -> None:
    error = CniError(Code.INVALID_CONFIG, "Invalid Configuration", "too small")
    assert error.to_json("1.0.0") == {
        "cniVersion": "1.0.0",
        "code": 7,
        "msg": "Invalid Configuration",
        "details": "too small",
    }
    assert "details" not in CniError(11, "later").to_json()
    statuses = {code: protocol.http_status(code) for code in (1, 3, 7, 11, 50, 100, 102)}
    assert statuses == {1: 400, 3: 404, 7: 400, 11: 503, 50: 503, 100: 409, 102: 500}


# ----------------------------------------------------------------------------- results

RESULT = Result(
    interfaces=(
        Interface("br-1", "aa:aa:aa:aa:aa:aa", 1500),
        Interface("veth1", "bb:bb:bb:bb:bb:bb", 1500),
        Interface("eth0", "02:42:0a:00:00:02", 1500, "/run/netns/a"),
    ),
    ips=(IPConfig("10.0.0.2/24", "10.0.0.1", 2), IPConfig("fd00::2/64", "fd00::1", 2)),
    routes=(Route("0.0.0.0/0", "10.0.0.1"),),
    dns=Dns(("127.0.0.11",), "", (), ("ndots:0",)),
)


def test_a_1_1_result_has_mtus_and_no_ip_versions() -> None:
    rendered = protocol.render_result(RESULT, "1.1.0")
    assert rendered == {
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "br-1", "mac": "aa:aa:aa:aa:aa:aa", "mtu": 1500},
            {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb", "mtu": 1500},
            {"name": "eth0", "mac": "02:42:0a:00:00:02", "mtu": 1500, "sandbox": "/run/netns/a"},
        ],
        "ips": [
            {"interface": 2, "address": "10.0.0.2/24", "gateway": "10.0.0.1"},
            {"interface": 2, "address": "fd00::2/64", "gateway": "fd00::1"},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        "dns": {"nameservers": ["127.0.0.11"], "options": ["ndots:0"]},
    }
    assert protocol.parse_result(rendered, "1.1.0") == RESULT


def test_older_versions_drop_the_1_1_fields_and_0_x_names_ip_versions() -> None:
    one = protocol.render_result(RESULT, "1.0.0")
    assert all("mtu" not in iface for iface in one["interfaces"])
    assert all("version" not in ip for ip in one["ips"])
    old = protocol.render_result(RESULT, "0.4.0")
    assert [ip["version"] for ip in old["ips"]] == ["4", "6"]
    assert protocol.render_result(Result(), "0.3.1") == {"cniVersion": "0.3.1", "dns": {}}


def test_a_result_chained_after_a_prev_result_moves_its_interface_indexes() -> None:
    loopback = Result(
        interfaces=(Interface("lo", "00:00:00:00:00:00", None, "/run/netns/a"),),
        ips=(IPConfig("127.0.0.1/8", "", 0),),
        dns=Dns(("10.0.0.53",), "corp", ("corp",), ("ndots:0", "edns0")),
    )
    chained = RESULT.chained_after(loopback)
    assert [i.name for i in chained.interfaces] == ["lo", "br-1", "veth1", "eth0"]
    assert [ip.interface for ip in chained.ips] == [0, 3, 3]
    assert chained.dns == Dns(("127.0.0.11", "10.0.0.53"), "corp", ("corp",), ("ndots:0", "edns0"))
    assert RESULT.chained_after(None) is RESULT
