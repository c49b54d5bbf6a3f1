"""Container and image JSON <-> runtime records (cnm.api.container_json, cnm.api.timefmt)."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from cnm.api.container_json import (
    ContainerPaths,
    container_inspect_json,
    container_summary_json,
    exec_inspect_json,
    image_inspect_json,
    image_summary_json,
    network_settings_json,
    normalize_port,
    parse_container_create,
    status_text,
)
from cnm.api.exits import Exits
from cnm.api.streams import LogTail, frame, last_lines
from cnm.api.timefmt import human_duration, unix_time
from cnm.errors import InvalidParameter
from cnm.model import Endpoint, Network, PortMapping
from cnm.runtime.model import (
    Container,
    ContainerConfig,
    ContainerNetworkState,
    ContainerState,
    EndpointRequest,
    ExecInfo,
    HostConfig,
    Image,
    NetworkAttachment,
    PortBinding,
)

# What `docker run -d --name web --network my-net --network-alias www --ip 10.1.0.5
# -p 8080:80 --dns 9.9.9.9 --add-host db:10.0.0.9 -e A=1 busybox:local httpd -f` sends (28.x).
DOCKER_28_CREATE = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "ExposedPorts": {"80/tcp": {}},
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": ["A=1"],
    "Cmd": ["httpd", "-f"],
    "Image": "busybox:local",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": {},
    "HostConfig": {
        "Binds": None,
        "NetworkMode": "my-net",
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False,
        "Dns": ["9.9.9.9"],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": ["db:10.0.0.9"],
        "PublishAllPorts": False,
        "Mounts": None,
    },
    "NetworkingConfig": {
        "EndpointsConfig": {
            "my-net": {
                "IPAMConfig": {"IPv4Address": "10.1.0.5"},
                "Links": None,
                "Aliases": ["www"],
                "MacAddress": "",
                "DriverOpts": None,
                "NetworkID": "",
                "EndpointID": "",
                "Gateway": "",
                "IPAddress": "",
                "IPPrefixLen": 0,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DNSNames": None,
            }
        }
    },
}


def test_docker_cli_create_body() -> None:
    create = parse_container_create(DOCKER_28_CREATE)
    assert create.config == ContainerConfig(
        image="busybox:local",
        cmd=["httpd", "-f"],
        env=["A=1"],
        exposed_ports=["80/tcp"],
    )
    assert create.host_config == HostConfig(
        network_mode="my-net",
        port_bindings={"80/tcp": [PortBinding("", "8080")]},
        dns=["9.9.9.9"],
        extra_hosts=["db:10.0.0.9"],
    )
    assert create.networks == {"my-net": EndpointRequest(aliases=["www"], ipv4_address="10.1.0.5")}


def test_defaults_and_old_clients() -> None:
    # docker 20.10 (API 1.41) puts --mac-address at the top; the network mode may be "default".
    create = parse_container_create(
        {
            "image": "busybox:local",
            "Cmd": "sh",
            "MacAddress": "02:42:ac:11:00:09",
            "HostConfig": {"NetworkMode": "default"},
        }
    )
    assert create.config.cmd == ["sh"]
    assert create.host_config.network_mode == "bridge"
    # It is the container's (Docker's Config.MacAddress), for its network mode's endpoint.
    assert create.config.mac_address == "02:42:ac:11:00:09"
    assert create.networks == {"bridge": EndpointRequest()}
    # docker-py sends no HostConfig at all for the simplest run.
    assert parse_container_create({"Image": "x"}).networks == {"bridge": EndpointRequest()}
    # The docker 28 CLI names the default network "default" in EndpointsConfig too.
    create = parse_container_create(
        {
            "Image": "x",
            "HostConfig": {"NetworkMode": "default"},
            "NetworkingConfig": {
                "EndpointsConfig": {"default": {"MacAddress": "02:42:00:00:00:01"}}
            },
        }
    )
    assert create.networks == {"bridge": EndpointRequest(mac_address="02:42:00:00:00:01")}


@pytest.mark.parametrize("mode", ["host", "none", "container:web"])
def test_modes_without_a_network_entry(mode: str) -> None:
    create = parse_container_create({"Image": "x", "HostConfig": {"NetworkMode": mode}})
    assert create.host_config.network_mode == mode
    assert create.networks == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Cmd": ["sh"]}, "Image is required"),
        ({"Image": 3}, "Image must be a string"),
        ({"Image": "x", "Env": ["=x"]}, "invalid environment variable"),
        ({"Image": "x", "ExposedPorts": {"http": {}}}, "invalid port specification"),
        ({"Image": "x", "HostConfig": {"Binds": ["/a:/b"]}}, "volumes"),
        ({"Image": "x", "HostConfig": {"Dns": [1]}}, r"HostConfig.Dns\[0\] must be a string"),
        (
            {"Image": "x", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}},
            "invalid port specification",
        ),
    ],
)
def test_bad_create_bodies(body: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        parse_container_create(body)


def test_normalize_port() -> None:
    assert normalize_port("80") == "80/tcp"
    assert normalize_port("53/udp") == "53/udp"
    assert normalize_port("8000-8010") == "8000-8010/tcp"
    with pytest.raises(InvalidParameter):
        normalize_port("0")


def test_time_helpers() -> None:
    assert unix_time("1970-01-01T00:01:40.123456789Z") == 100
    assert unix_time("1970-01-01T01:01:40+01:00") == 100
    assert unix_time("0001-01-01T00:00:00Z") < 0
    assert [human_duration(s) for s in (0.5, 1, 59, 60, 119, 3599, 3600, 2 * 86400)] == [
        "Less than a second",
        "1 second",
        "59 seconds",
        "About a minute",
        "About a minute",
        "59 minutes",
        "About an hour",
        "2 days",
    ]


def _container(**state: object) -> Container:
    return Container(
        id="c" * 64,
        name="web",
        created="1970-01-01T00:00:10Z",
        image_id="sha256:" + "a" * 64,
        config=ContainerConfig(
            image="busybox:local", cmd=["httpd", "-f"], exposed_ports=["80/tcp"]
        ),
        host_config=HostConfig(
            network_mode="my-net", port_bindings={"80/tcp": [PortBinding("", "8080")]}
        ),
        state=ContainerState(**state),  # type: ignore[arg-type]
    )


def test_status_text() -> None:
    assert status_text(_container(), 100) == "Created"
    running = _container(status="running", started_at="1970-01-01T00:01:00Z")
    assert status_text(running, 63) == "Up 3 seconds"
    exited = _container(status="exited", exit_code=3, finished_at="1970-01-01T00:01:00Z")
    assert status_text(exited, 62) == "Exited (3) 2 seconds ago"


def test_list_and_inspect_shapes() -> None:
    settings = {
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "53/udp": None},
        "Networks": {"my-net": {"NetworkID": "n" * 64, "IPAddress": "10.1.0.5"}},
    }
    container = _container(status="running", pid=42, started_at="1970-01-01T00:01:00Z")
    summary = container_summary_json(container, settings, 70)
    assert summary["Names"] == ["/web"]
    assert summary["Command"] == "httpd -f"
    assert summary["Created"] == 10
    assert summary["Ports"] == [
        {"PrivatePort": 53, "Type": "udp"},
        {"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080},
    ]
    assert summary["Status"] == "Up 10 seconds"
    assert list(summary["NetworkSettings"]["Networks"]) == ["my-net"]

    data = container_inspect_json(container, settings, ContainerPaths(log="/x/stdout.log"), [])
    assert (data["Path"], data["Args"], data["Name"]) == ("httpd", ["-f"], "/web")
    assert data["State"]["Running"] is True and data["State"]["Pid"] == 42
    assert data["Config"]["Hostname"] == "c" * 12
    assert data["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert data["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert data["NetworkSettings"] is settings
    assert data["LogPath"] == "/x/stdout.log"


def _network(name: str, predefined: bool = False) -> Network:
    return Network(
        id=name[0] * 64,
        name=name,
        driver="bridge",
        scope="local",
        created="",
        predefined=predefined,
    )


def test_network_settings_of_a_running_container() -> None:
    endpoint = Endpoint(
        id="e" * 64,
        name="web",
        network_id="b" * 64,
        ipv4_address="172.17.0.2/16",
        ipv6_address="fd00::2/64",
        mac_address="02:42:ac:11:00:02",
        gateway_v4="172.17.0.1/16",
        gateway_v6="fd00::1/64",
    )
    own = Endpoint(id="f" * 64, name="web", network_id="m" * 64, ipv4_address="10.1.0.5/24")
    state = ContainerNetworkState(
        sandbox_id="s" * 64,
        sandbox_key="/run/cnm/netns/" + "s" * 64,
        networks={
            "bridge": NetworkAttachment(
                "bridge", EndpointRequest(), _network("bridge", True), endpoint
            ),
            "my-net": NetworkAttachment(
                "my-net",
                EndpointRequest(aliases=["www"], ipv4_address="10.1.0.5"),
                _network("my-net"),
                own,
            ),
        },
        ports=["80/tcp", "53/udp"],
        published=[
            PortMapping(
                "tcp", ipaddress.ip_address("0.0.0.0"), 8080, ipaddress.ip_address("172.17.0.2"), 80
            ),
            PortMapping(
                "tcp", ipaddress.ip_address("::"), 8080, ipaddress.ip_address("172.17.0.2"), 80
            ),
        ],
    )
    settings = network_settings_json(_container(status="running"), state)
    assert settings["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
        "53/udp": None,
    }
    assert (settings["SandboxID"], settings["SandboxKey"]) == (state.sandbox_id, state.sandbox_key)
    # the legacy top-level fields are the bridge network's
    assert (settings["IPAddress"], settings["IPPrefixLen"], settings["Gateway"]) == (
        "172.17.0.2",
        16,
        "172.17.0.1",
    )
    assert (settings["GlobalIPv6Address"], settings["IPv6Gateway"]) == ("fd00::2", "fd00::1")
    assert settings["MacAddress"] == "02:42:ac:11:00:02"
    bridge, mine = settings["Networks"]["bridge"], settings["Networks"]["my-net"]
    assert bridge["DNSNames"] is None and bridge["IPAMConfig"] is None  # a predefined network
    assert mine == {
        "IPAMConfig": {"IPv4Address": "10.1.0.5"},
        "Links": None,
        "Aliases": ["www"],
        "MacAddress": "",
        "DriverOpts": None,
        "NetworkID": "m" * 64,
        "EndpointID": "f" * 64,
        "Gateway": "",
        "IPAddress": "10.1.0.5",
        "IPPrefixLen": 24,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": ["web", "www", "c" * 12],
    }


def test_network_settings_of_a_stopped_container_keep_its_requests_only() -> None:
    request = EndpointRequest(ipv4_address="10.1.0.5")
    gone = NetworkAttachment("gone", EndpointRequest(), None, None)
    state = ContainerNetworkState(
        networks={
            "my-net": NetworkAttachment("my-net", request, _network("my-net"), None),
            "gone": gone,
        }
    )
    settings = network_settings_json(_container(status="exited"), state)
    assert (settings["SandboxKey"], settings["IPAddress"], settings["Ports"]) == ("", "", {})
    mine = settings["Networks"]["my-net"]
    assert (mine["IPAddress"], mine["EndpointID"], mine["DNSNames"]) == ("", "", None)
    assert mine["IPAMConfig"] == {"IPv4Address": "10.1.0.5"}
    assert mine["NetworkID"] == "m" * 64 and settings["Networks"]["gone"]["NetworkID"] == ""


def test_exec_inspect_shape() -> None:
    info = ExecInfo("x" * 64, "c" * 64, ["sh", "-c", "exit 3"], True, True, False, 3, 99)
    assert exec_inspect_json(info) == {
        "ID": "x" * 64,
        "Running": False,
        "ExitCode": 3,
        "ProcessConfig": {
            "tty": True,
            "entrypoint": "sh",
            "arguments": ["-c", "exit 3"],
            "privileged": False,
            "user": "",
        },
        "OpenStdin": True,
        "OpenStderr": True,
        "OpenStdout": True,
        "CanRemove": False,
        "ContainerID": "c" * 64,
        "DetachKeys": "",
        "Pid": 99,
    }


def test_image_shapes() -> None:
    image = Image(
        id="sha256:" + "b" * 64,
        repo_tags=["busybox:local"],
        created="1970-01-01T00:00:05Z",
        size=2048,
    )
    summary = image_summary_json(image, 2)
    assert (summary["Created"], summary["Containers"], summary["RepoTags"]) == (
        5,
        2,
        ["busybox:local"],
    )
    data = image_inspect_json(image)
    assert data["RootFS"]["Layers"] == [image.id]
    assert data["Config"]["Cmd"] is None


def test_stream_framing() -> None:
    assert frame(1, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert frame(2, b"x" * 256)[:8] == b"\x02\x00\x00\x00\x00\x00\x01\x00"
    assert last_lines(b"a\nb\nc", 2) == b"b\nc"
    assert last_lines(b"a\nb\n", 5) == b"a\nb\n"
    assert last_lines(b"a\n", 0) == b""


def test_log_tail_follows_appends_and_restarts(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    tail = LogTail(path, 1)
    assert tail.read() == b""  # no file yet
    path.write_bytes(b"one\n")
    assert tail.read() == b"one\n"
    with open(path, "ab") as log:
        log.write(b"two\n")
    assert tail.read() == b"two\n"
    late = LogTail.at_end(path, 1)
    path.unlink()  # removed (--rm): what an open tail has is still readable
    assert late.read() == b""
    tail.close()
    late.close()


def test_exits_resolve_waiters_and_open_tails(tmp_path: Path) -> None:
    async def scenario() -> None:
        exits = Exits()
        exits.bind(asyncio.get_running_loop())
        (tmp_path / "out.log").write_bytes(b"bye\n")
        tail = LogTail(tmp_path / "out.log", 1)
        first = exits.next_exit("c1", [tail])
        other = exits.next_exit("c2")
        exits.listener("c1", 3)  # as the runtime calls it, before an automatic removal
        (tmp_path / "out.log").unlink()
        assert await asyncio.wait_for(first, 1) == 3
        assert tail.read() == b"bye\n"
        assert not other.done()
        exits.close()
        assert other.cancelled()

    asyncio.run(scenario())
