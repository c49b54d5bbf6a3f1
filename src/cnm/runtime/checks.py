"""What a container may ask for, checked at create: its network mode, its networks with their
endpoint requests, its published ports and its sandbox options.

A request that cannot work fails at create with Docker's message, not at its first start:
values are checked (and put in normal form) by ``cnm.validate``, the one place user values are
checked, and against the networks as the controller has them. Host ports are taken only at
start, so a port already in use fails the start.
"""

from __future__ import annotations

import copy
import resource
from collections.abc import Callable

from cnm import validate
from cnm.controller import Controller
from cnm.errors import InvalidParameter
from cnm.osl.links import read_sysctl
from cnm.runtime import links as links_mod
from cnm.runtime.model import Container, ContainerConfig, EndpointRequest, HostConfig
from cnm.runtime.networking import checked_request, port_requests

SOCKETS_PER_PORT = 2  # an unspecified host address binds IPv4 and IPv6


class CreateChecks:
    def __init__(self, controller: Controller) -> None:
        self._controller = controller

    def network_mode(
        self,
        config: ContainerConfig,
        host_config: HostConfig,
        find_container: Callable[[str], Container],
    ) -> str:
        """The mode as stored: "host", "none", a network name, or "container:<id>"."""
        mode = host_config.network_mode or "bridge"
        if mode == "default":
            mode = "bridge"
        if mode == "host" and host_config.links:
            raise InvalidParameter(
                "conflicting options: host type networking can't be used with links. This "
                "would result in undefined behavior"
            )
        if not mode.startswith("container:"):
            return self._controller.network(mode).name
        ref = mode.removeprefix("container:")
        if not ref:
            raise InvalidParameter(
                "invalid network mode: invalid container format container:<name|id>"
            )
        target = find_container(ref)
        # What a container sharing another's namespace takes from that one (Docker's words).
        conflicts = (
            (config.hostname, "hostname and the network mode"),
            (host_config.dns, "dns and the network mode"),
            (host_config.extra_hosts, "custom host-to-IP mapping and the network mode"),
            (host_config.port_bindings, "port publishing and the container type network mode"),
            (host_config.publish_all_ports, "port publishing and the container type network mode"),
            (config.exposed_ports, "port exposing and the container type network mode"),
            (
                host_config.links,
                "container type network can't be used with links. This would result in "
                "undefined behavior",
            ),
        )
        for value, what in conflicts:
            if value:
                raise InvalidParameter(f"conflicting options: {what}")
        return f"container:{target.id}"

    def networks(
        self, mode: str, networks: dict[str, EndpointRequest], links: list[str]
    ) -> dict[str, EndpointRequest]:
        """The networks to attach at start, the network mode's first (the start joins them in
        the sandbox's order). On a user-defined network mode the container's ``--link``s
        belong to that network, as the docker CLI puts them there too; on the default bridge
        they are legacy links (``links``)."""
        if mode.startswith("container:"):
            if networks:
                raise InvalidParameter(
                    "conflicting options: container type network can't be used with "
                    "multiple networks"
                )
            return {}
        requested = networks or {mode: EndpointRequest()}
        resolved: dict[str, EndpointRequest] = {}
        for ref, request in requested.items():
            network = self._controller.network(ref)
            if network.name in resolved:
                raise InvalidParameter(f"network {network.name} is given more than once")
            if network.name == mode and not links_mod.is_legacy(mode):
                request = copy.deepcopy(request)
                request.links += [link for link in links if link not in request.links]
            resolved[network.name] = checked_request(network, request)
        if mode in ("host", "none") and set(resolved) != {mode}:
            raise InvalidParameter(
                "container cannot be connected to network endpoints: " + ", ".join(resolved)
            )
        ordered = {mode: resolved.pop(mode)} if mode in resolved else {}
        ordered.update(resolved)
        return ordered

    @staticmethod
    def ports(config: ContainerConfig, host_config: HostConfig) -> None:
        """Malformed port specs fail at create, as do ports that could never all be bound
        (more ephemeral ones than the kernel's range has, more sockets than half the daemon's
        open-files limit: every published port holds a socket per address family); host
        ports are taken at start. A container whose networks are all internal is accepted,
        as Docker accepts it: it publishes nothing until a network with a gateway is
        connected."""
        requests = port_requests(config, host_config)
        if not requests or host_config.network_mode in ("host", "none"):
            return
        low, high = (int(v) for v in read_sysctl("net.ipv4.ip_local_port_range").split())
        validate.published_ports(
            ephemeral=sum(1 for r in requests if r.host_port == 0),
            sockets=SOCKETS_PER_PORT * len(requests),
            ephemeral_range=(low, high),
            socket_budget=resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2,
        )

    @staticmethod
    def mac_address(config: ContainerConfig) -> None:
        """Config.MacAddress, in normal form."""
        if config.mac_address:
            config.mac_address = validate.mac_address(config.mac_address)

    @staticmethod
    def process(config: ContainerConfig) -> None:
        """What runc would refuse only at start: a relative working directory, a bad
        environment entry, a hostname the kernel does not take."""
        validate.working_dir(config.working_dir)
        validate.hostname(config.hostname)
        validate.hostname(config.domainname, "domain name")
        for entry in config.env:
            validate.env_entry(entry)

    @staticmethod
    def sandbox_options(host_config: HostConfig) -> None:
        for server in host_config.dns:
            validate.dns_server(server)
        for entry in host_config.extra_hosts:
            validate.extra_host(entry)
