"""Pure parts of the container and image commands: flags to request bodies, table cells."""

from __future__ import annotations

import pytest

from cnm.cli.client import CliError
from cnm.cli.container import (
    HOST_IMAGE,
    create_body,
    format_ports,
    parse_publish,
    split_image,
)
from cnm.cli.image import human_size
from cnm.cli.main import build_parser


def _body(*argv: str) -> dict[str, object]:
    args = build_parser().parse_args(["run", *argv])
    return create_body(args)


def test_host_image_is_the_runtimes() -> None:
    from cnm.runtime.images import HOST_IMAGE as RUNTIME_HOST_IMAGE

    assert HOST_IMAGE == RUNTIME_HOST_IMAGE


def test_image_or_host_command() -> None:
    assert split_image(["busybox:local", "httpd", "-f"]) == ("busybox:local", ["httpd", "-f"])
    assert split_image(["--", "python3", "-m", "http.server"]) == (
        HOST_IMAGE,
        ["python3", "-m", "http.server"],
    )
    assert split_image(["busybox", "--", "x"]) == ("busybox", ["--", "x"])
    with pytest.raises(CliError, match="need an image"):
        split_image([])
    with pytest.raises(CliError, match="no command after --"):
        split_image(["--"])


def test_run_flags_become_dockers_body() -> None:
    body = _body(
        "-d",
        "--name",
        "web",
        "--network",
        "my-net",
        "--network-alias",
        "www",
        "--ip",
        "10.1.0.5",
        "-h",
        "box",
        "--dns",
        "9.9.9.9",
        "--add-host",
        "db=10.0.0.9",
        "-p",
        "127.0.0.1:8080:80",
        "-p",
        "53/udp",
        "--expose",
        "443",
        "-e",
        "A=1",
        "busybox:local",
        "httpd",
        "-f",
        "-p",
        "80",
    )
    assert body["Image"] == "busybox:local"
    assert body["Cmd"] == ["httpd", "-f", "-p", "80"]
    assert body["Hostname"] == "box"
    assert body["Env"] == ["A=1"]
    assert body["ExposedPorts"] == {"443/tcp": {}, "80/tcp": {}, "53/udp": {}}
    host = body["HostConfig"]
    assert isinstance(host, dict)
    assert host["NetworkMode"] == "my-net"
    assert host["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
    }
    assert host["ExtraHosts"] == ["db:10.0.0.9"]
    assert body["NetworkingConfig"] == {
        "EndpointsConfig": {
            "my-net": {
                "Aliases": ["www"],
                "IPAMConfig": {"IPv4Address": "10.1.0.5", "IPv6Address": ""},
            }
        }
    }


def test_host_run_and_default_network() -> None:
    body = _body("--rm", "--", "python3", "-m", "http.server", "8000")
    assert body["Image"] == HOST_IMAGE
    assert body["Cmd"] == ["python3", "-m", "http.server", "8000"]
    assert body["HostConfig"]["NetworkMode"] == "default"  # type: ignore[index]
    assert body["HostConfig"]["AutoRemove"] is True  # type: ignore[index]
    with pytest.raises(CliError, match="need a user-defined --network"):
        _body("--ip", "10.0.0.2", "busybox")


def test_publish_specs() -> None:
    assert parse_publish("80") == ("80/tcp", {"HostIp": "", "HostPort": ""})
    assert parse_publish("8080:80/udp") == ("80/udp", {"HostIp": "", "HostPort": "8080"})
    assert parse_publish("[::1]:8080:80") == ("80/tcp", {"HostIp": "::1", "HostPort": "8080"})
    with pytest.raises(CliError, match="invalid publish spec"):
        parse_publish("a:b")


def test_table_cells() -> None:
    ports = [
        {"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080},
        {"PrivatePort": 53, "Type": "udp"},
    ]
    assert format_ports(ports) == "53/udp, 0.0.0.0:8080->80/tcp"
    assert [human_size(n) for n in (999, 2_178_000, 1_500_000_000)] == ["999B", "2.18MB", "1.5GB"]


def test_exec_keeps_the_commands_flags() -> None:
    args = build_parser().parse_args(["exec", "-i", "web", "ip", "-4", "addr"])
    assert (args.container, args.command, args.interactive) == ("web", ["ip", "-4", "addr"], True)
