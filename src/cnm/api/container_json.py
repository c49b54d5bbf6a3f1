"""Docker's container, exec and image JSON <-> the runtime's records, as pure functions.

Bodies are read with the rules of ``translate`` (Go's decoder: case-insensitive names, null is
absent, unknown fields ignored). Old and new clients differ in where they put things, and both
are accepted: the docker 20.10 CLI (API 1.41) sends ``--mac-address`` as ``Config.MacAddress``,
newer clients send it per endpoint; ``Cmd`` and ``Entrypoint`` may be a string or an array.

Responses follow Docker 28 (API 1.47) field for field where cnm has the data, and give Docker's
neutral values (``false``, ``""``, ``null``) for features cnm does not have, because the docker
CLI and docker-py decode them into fixed types.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnm import validate
from cnm.api.host_config import (
    Fields,
    host_config_extras_json,
    mount_points_json,
    parse_config_extras,
    parse_host_extras,
)
from cnm.api.system import go_arch
from cnm.api.timefmt import human_duration, unix_time
from cnm.api.translate import JsonObject
from cnm.errors import InvalidParameter
from cnm.runtime.model import (
    Container,
    ContainerConfig,
    ContainerNetworkState,
    EndpointRequest,
    ExecInfo,
    HostConfig,
    Image,
    NetworkAttachment,
    PortBinding,
)

ZERO_TIME = "0001-01-01T00:00:00Z"
_PORT = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?(?:/(tcp|udp|sctp))?")
CONTAINER_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


@dataclass
class CreateRequest:
    config: ContainerConfig
    host_config: HostConfig
    networks: dict[str, EndpointRequest]


# ----------------------------------------------------------------------------- requests


def normalize_port(spec: str) -> str:
    """``80`` -> ``80/tcp``; refuses what Docker's nat.ParsePortSpec refuses."""
    match = _PORT.fullmatch(spec)
    if match is None or not all(
        0 < int(port) <= 65535 for port in (match[1], match[2]) if port is not None
    ):
        raise InvalidParameter(f"invalid port specification: {spec!r}")
    return f"{match[1]}{'-' + match[2] if match[2] else ''}/{match[3] or 'tcp'}"


def parse_endpoint_config(data: JsonObject | None) -> EndpointRequest:
    """One ``EndpointsConfig`` entry, or the ``EndpointConfig`` of a connect request."""
    if data is None:
        return EndpointRequest()
    ipam = data.object("IPAMConfig")
    link_local_ips = ipam.strings("LinkLocalIPs") if ipam else []
    for address in link_local_ips:
        validate.link_local_ip(address)
    return EndpointRequest(
        aliases=data.strings("Aliases"),
        ipv4_address=(ipam.string("IPv4Address") if ipam else "") or None,
        ipv6_address=(ipam.string("IPv6Address") if ipam else "") or None,
        mac_address=data.string("MacAddress") or None,
        links=_links(data.strings("Links")),
        link_local_ips=link_local_ips,
        driver_opts=data.string_map("DriverOpts"),
    )


def _links(entries: list[str]) -> list[str]:
    for entry in entries:
        validate.link(entry)
    return entries


def _port_bindings(host: JsonObject) -> dict[str, list[PortBinding]]:
    value = host.object("PortBindings")
    if value is None:
        return {}
    bindings: dict[str, list[PortBinding]] = {}
    for port in value:
        port_key = normalize_port(port)
        entries = bindings.setdefault(port_key, [])
        for index, item in enumerate(value.array(port)):
            entry = JsonObject(item, f"HostConfig.PortBindings[{port!r}][{index}]")
            host_port = entry.string("HostPort")
            if host_port:
                normalize_port(host_port)
            entries.append(PortBinding(host_ip=entry.string("HostIp"), host_port=host_port))
    return bindings


def _console_size(host: JsonObject) -> list[int]:
    """``HostConfig.ConsoleSize``: the terminal's [rows, columns] at start (API 1.42)."""
    size = host.array("ConsoleSize") or [0, 0]
    if len(size) != 2 or not all(isinstance(n, int) and 0 <= n <= 0xFFFF for n in size):
        raise InvalidParameter(f"invalid HostConfig.ConsoleSize: {size!r}")
    return list(size)


def parse_container_create(body: object) -> CreateRequest:
    """Translate a ``POST /containers/create`` body (the fields beyond networking are
    ``host_config``'s); the network ``default`` (or an empty network mode) means ``bridge``,
    as in Docker."""
    root = Fields(body, "")
    image = root.string("Image")
    if not image:
        raise InvalidParameter("no image given: Image is required (cnm/host runs on the host)")
    host = root.child("HostConfig") or Fields({}, "HostConfig")
    for entry in root.strings("Env"):
        validate.env_entry(entry)
    exposed = root.object("ExposedPorts")
    config = ContainerConfig(
        image=image,
        cmd=root.strings("Cmd"),
        entrypoint=root.strings("Entrypoint"),
        env=root.strings("Env"),
        hostname=validate.hostname(root.string("Hostname")),
        domainname=validate.hostname(root.string("Domainname"), "domain name"),
        mac_address=root.string("MacAddress"),
        working_dir=validate.working_dir(root.string("WorkingDir")),
        tty=bool(root.boolean("Tty")),
        open_stdin=bool(root.boolean("OpenStdin")),
        stdin_once=bool(root.boolean("StdinOnce")),
        exposed_ports=sorted({normalize_port(p) for p in exposed}) if exposed else [],
        labels=root.string_map("Labels"),
    )
    parse_config_extras(root, config)
    mode = host.string("NetworkMode")
    if mode in ("", "default"):
        mode = "bridge"
    host_config = HostConfig(
        network_mode=mode,
        port_bindings=_port_bindings(host),
        publish_all_ports=bool(host.boolean("PublishAllPorts")),
        dns=host.strings("Dns"),
        dns_search=host.strings("DnsSearch"),
        dns_options=host.strings("DnsOptions"),
        extra_hosts=host.strings("ExtraHosts"),
        links=_links(host.strings("Links")),
        auto_remove=bool(host.boolean("AutoRemove")),
        console_size=_console_size(host),
    )
    parse_host_extras(host, host_config)
    networks: dict[str, EndpointRequest] = {}
    networking = root.object("NetworkingConfig")
    endpoints = networking.object("EndpointsConfig") if networking else None
    if endpoints is not None:
        for name in endpoints:
            # The docker CLI names the default network "default" here too.
            key = "bridge" if name == "default" else name
            networks[key] = parse_endpoint_config(endpoints.object(name))
    if mode not in ("host", "none") and not mode.startswith("container:"):
        networks.setdefault(mode, EndpointRequest())
    return CreateRequest(config, host_config, networks)


# ----------------------------------------------------------------------------- responses


def status_text(container: Container, now: float) -> str:
    """The ``Status`` column of ``docker ps``: "Up 3 seconds", "Exited (0) 2 seconds ago"."""
    state = container.state
    if state.status in ("running", "paused"):
        up = "Up " + human_duration(now - unix_time(state.started_at))
        return up + " (Paused)" if state.paused else up
    if state.status == "restarting":
        ago = human_duration(now - unix_time(state.finished_at))
        return f"Restarting ({state.exit_code}) {ago} ago"
    if state.status == "removing":
        return "Removal In Progress"
    if state.status == "dead":
        return "Dead"
    if state.status == "exited" and state.finished_at != ZERO_TIME:
        ago = human_duration(now - unix_time(state.finished_at))
        return f"Exited ({state.exit_code}) {ago} ago"
    if state.status == "exited":
        return f"Exited ({state.exit_code})"
    return "Created"


def process_args(container: Container) -> list[str]:
    """The command line the container runs: entrypoint, then command."""
    return [*container.config.entrypoint, *container.config.cmd]


def _ports_list(ports: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``NetworkSettings.Ports`` as the list call's ``Ports``."""
    result: list[dict[str, Any]] = []
    for key, bindings in sorted((ports or {}).items()):
        number, _, proto = key.partition("/")
        if not number.isdigit():
            continue  # a range; Docker expands them, cnm's records keep them whole
        if not bindings:
            result.append({"PrivatePort": int(number), "Type": proto})
            continue
        for binding in bindings:
            entry: dict[str, Any] = {"PrivatePort": int(number), "Type": proto}
            if binding.get("HostIp"):
                entry["IP"] = binding["HostIp"]
            if str(binding.get("HostPort", "")).isdigit():
                entry["PublicPort"] = int(binding["HostPort"])
            result.append(entry)
    return result


def container_summary_json(
    container: Container, network_settings: dict[str, Any], now: float
) -> dict[str, Any]:
    """One entry of ``GET /containers/json``."""
    return {
        "Id": container.id,
        "Names": ["/" + container.name],
        "Image": container.config.image,
        "ImageID": container.image_id,
        "Command": " ".join(process_args(container)),
        "Created": unix_time(container.created),
        "Ports": _ports_list(network_settings.get("Ports")),
        "Labels": dict(container.config.labels),
        "State": container.state.status,
        "Status": status_text(container, now),
        "HostConfig": {"NetworkMode": container.host_config.network_mode},
        "NetworkSettings": {"Networks": network_settings.get("Networks") or {}},
        "Mounts": mount_points_json(container.mount_points),
    }


def _config_json(container: Container, hostname: str) -> dict[str, Any]:
    config = container.config
    data: dict[str, Any] = {
        "Hostname": hostname,
        "Domainname": config.domainname,
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": config.tty,
        "OpenStdin": config.open_stdin,
        "StdinOnce": config.stdin_once,
        "Env": list(config.env),
        "Cmd": list(config.cmd) or None,
        "Image": config.image,
        "Volumes": {path: {} for path in config.volumes} or None,
        "WorkingDir": config.working_dir,
        "Entrypoint": list(config.entrypoint) or None,
        "OnBuild": None,
        "Labels": dict(config.labels),
    }
    data["User"] = config.user
    if config.mac_address:
        data["MacAddress"] = config.mac_address
    if config.exposed_ports:
        data["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.stop_signal:
        data["StopSignal"] = config.stop_signal
    if config.stop_timeout is not None:
        data["StopTimeout"] = config.stop_timeout
    return data


def _host_config_json(host: HostConfig, links: list[str]) -> dict[str, Any]:
    """Docker's HostConfig: the networking fields here, the rest from ``host_config``;
    ``links`` as Docker shows them (``/db:/web/database``)."""
    return {
        "ContainerIDFile": "",
        "NetworkMode": host.network_mode,
        "PortBindings": {
            port: [{"HostIp": b.host_ip, "HostPort": b.host_port} for b in bindings]
            for port, bindings in host.port_bindings.items()
        },
        "AutoRemove": host.auto_remove,
        "ConsoleSize": list(host.console_size),
        "Dns": list(host.dns),
        "DnsOptions": list(host.dns_options),
        "DnsSearch": list(host.dns_search),
        "ExtraHosts": list(host.extra_hosts) or None,
        "Links": links or None,
        "PublishAllPorts": host.publish_all_ports,
        **host_config_extras_json(host),
    }


def _address_and_prefix(text: str | None) -> tuple[str, int]:
    """``10.0.0.2/24`` -> ("10.0.0.2", 24); nothing -> ("", 0)."""
    if not text:
        return "", 0
    interface = ipaddress.ip_interface(text)
    return str(interface.ip), interface.network.prefixlen


def _gateway(text: str | None) -> str:
    return str(ipaddress.ip_interface(text).ip) if text else ""


def endpoint_settings_json(container: Container, attachment: NetworkAttachment) -> dict[str, Any]:
    """One entry of ``NetworkSettings.Networks``: Docker's EndpointSettings."""
    request, network, endpoint = attachment.request, attachment.network, attachment.endpoint
    ipv4, ipv4_len = _address_and_prefix(endpoint.ipv4_address if endpoint else None)
    ipv6, ipv6_len = _address_and_prefix(endpoint.ipv6_address if endpoint else None)
    # Docker's EndpointIPAMConfig leaves out what was not asked for (Go's omitempty).
    ipam: dict[str, Any] | None = {
        key: value
        for key, value in (
            ("IPv4Address", request.ipv4_address),
            ("IPv6Address", request.ipv6_address),
            ("LinkLocalIPs", list(request.link_local_ips)),
        )
        if value
    } or None
    user_defined = network is not None and not network.predefined
    return {
        "IPAMConfig": ipam,
        "Links": list(request.links) or None,
        "Aliases": list(request.aliases) or None,
        # A container that is not running shows the MAC it asked for (Docker 20.10 does).
        "MacAddress": (endpoint.mac_address or "") if endpoint else (request.mac_address or ""),
        "DriverOpts": dict(request.driver_opts) or None,
        "NetworkID": network.id if network else "",
        "EndpointID": endpoint.id if endpoint else "",
        "Gateway": _gateway(endpoint.gateway_v4) if endpoint else "",
        "IPAddress": ipv4,
        "IPPrefixLen": ipv4_len,
        "IPv6Gateway": _gateway(endpoint.gateway_v6) if endpoint else "",
        "GlobalIPv6Address": ipv6,
        "GlobalIPv6PrefixLen": ipv6_len,
        "DNSNames": [container.name, *request.aliases, container.id[:12]]
        if user_defined and endpoint
        else None,
    }


def network_settings_json(container: Container, state: ContainerNetworkState) -> dict[str, Any]:
    """Docker's NetworkSettings: live values while running, empty strings once stopped. The
    top-level address fields are the legacy ones of the ``bridge`` network."""
    networks = {
        name: endpoint_settings_json(container, attachment)
        for name, attachment in state.networks.items()
    }
    ports: dict[str, list[dict[str, str]] | None] = dict.fromkeys(state.ports)
    for mapping in state.published:
        bound = ports.get(mapping.key) or []
        bound.append({"HostIp": str(mapping.host_ip), "HostPort": str(mapping.host_port)})
        ports[mapping.key] = bound
    legacy = networks.get("bridge", {})
    return {
        "Bridge": "",
        "SandboxID": state.sandbox_id,
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": state.sandbox_key,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": legacy.get("EndpointID", ""),
        "Gateway": legacy.get("Gateway", ""),
        "GlobalIPv6Address": legacy.get("GlobalIPv6Address", ""),
        "GlobalIPv6PrefixLen": legacy.get("GlobalIPv6PrefixLen", 0),
        "IPAddress": legacy.get("IPAddress", ""),
        "IPPrefixLen": legacy.get("IPPrefixLen", 0),
        "IPv6Gateway": legacy.get("IPv6Gateway", ""),
        "MacAddress": legacy.get("MacAddress", ""),
        "Networks": networks,
    }


@dataclass
class ContainerPaths:
    """The files of a container that inspect shows."""

    resolv_conf: str = ""
    hostname: str = ""
    hosts: str = ""
    log: str = ""


def container_inspect_json(
    container: Container,
    network_settings: dict[str, Any],
    paths: ContainerPaths,
    exec_ids: list[str],
    legacy_links: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """``GET /containers/{id}/json``. ``legacy_links`` are the (linked container's name,
    alias) of its links on the default bridge, which Docker shows as HostConfig.Links
    ("/db:/web/database"); links on user-defined networks show per endpoint only."""
    links = [f"/{name}:/{container.name}/{alias}" for name, alias in legacy_links]
    state = container.state
    args = process_args(container)
    return {
        "Id": container.id,
        "Created": container.created,
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": state.status,
            "Running": state.running or state.restarting,  # Docker's, also while restarting
            "Paused": state.paused,
            "Restarting": state.restarting,
            "OOMKilled": state.oom_killed,
            "Dead": state.status == "dead",
            "Pid": state.pid,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": state.started_at,
            "FinishedAt": state.finished_at,
        },
        "Image": container.image_id,
        "ResolvConfPath": paths.resolv_conf,
        "HostnamePath": paths.hostname,
        "HostsPath": paths.hosts,
        "LogPath": paths.log,
        "Name": "/" + container.name,
        "RestartCount": container.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids or None,
        "HostConfig": _host_config_json(container.host_config, links),
        "GraphDriver": {"Data": None, "Name": "overlay"},
        "Mounts": mount_points_json(container.mount_points),
        "Config": _config_json(container, container.config.hostname or container.id[:12]),
        "NetworkSettings": network_settings,
    }


def exec_inspect_json(info: ExecInfo) -> dict[str, Any]:
    """``GET /exec/{id}/json``."""
    return {
        "ID": info.id,
        "Running": info.running,
        "ExitCode": info.exit_code,
        "ProcessConfig": {
            "tty": info.tty,
            "entrypoint": info.cmd[0],
            "arguments": info.cmd[1:],
            "privileged": info.privileged,
            "user": info.user,
        },
        "OpenStdin": info.open_stdin,
        "OpenStderr": True,
        "OpenStdout": True,
        "CanRemove": False,
        "ContainerID": info.container_id,
        "DetachKeys": info.detach_keys,
        "Pid": info.pid,
    }


def image_summary_json(image: Image, containers: int) -> dict[str, Any]:
    """One entry of ``GET /images/json``."""
    return {
        "Containers": containers,
        "Created": unix_time(image.created),
        "Id": image.id,
        "Labels": None,
        "ParentId": "",
        "RepoDigests": [],
        "RepoTags": list(image.repo_tags),
        "SharedSize": -1,
        "Size": image.size,
    }


def _image_config_json(config: ContainerConfig | None, image: Image | None) -> dict[str, Any]:
    """An image's ``Config`` (from ``image``) or ``ContainerConfig`` (the config of the
    container it was committed from; empty for an imported image, as Docker shows it)."""
    data: dict[str, Any] = {
        "Hostname": config.hostname if config else "",
        "Domainname": config.domainname if config else "",
        "User": config.user if config else (image.user if image else ""),
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": config.tty if config else False,
        "OpenStdin": config.open_stdin if config else False,
        "StdinOnce": config.stdin_once if config else False,
        "Env": None,
        "Cmd": None,
        "Image": config.image if config else "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    }
    source = config or image
    if source is not None:
        data["Env"] = list(source.env) or None
        data["Cmd"] = list(source.cmd) or None
        data["Volumes"] = {path: {} for path in source.volumes} or None
        data["WorkingDir"] = source.working_dir
        data["Entrypoint"] = list(source.entrypoint) or None
        data["Labels"] = dict(source.labels) or None
        if source.exposed_ports:
            data["ExposedPorts"] = {port: {} for port in source.exposed_ports}
        if source.stop_signal:
            data["StopSignal"] = source.stop_signal
    return data


def image_inspect_json(image: Image) -> dict[str, Any]:
    """``GET /images/{name}/json``: one layer. ``ContainerConfig`` is there as in Docker up to
    API 1.44 (Compose 1.29 reads it when it recreates a service)."""
    return {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": [],
        "Parent": image.parent,
        "Comment": image.comment if image.container else (image.comment or "Imported from -"),
        "Created": image.created,
        "Container": image.container,
        "ContainerConfig": _image_config_json(image.container_config, None),
        "DockerVersion": "",
        "Author": image.author,
        "Config": _image_config_json(None, image),
        "Architecture": go_arch(),
        "Os": "linux",
        "Size": image.size,
        "GraphDriver": {"Data": {"RootDir": image.rootfs}, "Name": "overlay"},
        "RootFS": {"Type": "layers", "Layers": [image.id]},
        "Metadata": {"LastTagTime": image.created},
    }
