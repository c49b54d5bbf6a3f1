"""A container's network stack, through the controller: attach at start, connect and disconnect
while it exists, release at stop, and the typed view that inspect shows.

A running container holds a sandbox of its own (made at start, deleted at stop, so a stopped
container holds no endpoint and no address, as in Docker), or borrows another container's
(network mode ``container:<id>``); in host mode its sandbox's namespace is the host's. The
record keeps what the container asked for (``Container.networks``: networks, aliases, static
addresses), so every start attaches it the same way again. A start joins them in libnetwork's
order (``Controller.join_order``: internal networks last, dual-stack ones first, then by
name), so eth0 and the default route go where Docker puts them, whatever order the networks
were connected in. A connect of a stopped container only changes that record.

Docker's rules for connect and disconnect, with its messages: a container sharing another's
namespace or the host's has no networks of its own to change; ``none`` excludes every other
network; a network is joined once.

The records kept here change only under the runtime's locks: these methods tell the runtime
what to record and never change ``Container`` themselves.
"""

from __future__ import annotations

import copy
import logging
from contextlib import suppress
from pathlib import Path

from cnm import validate
from cnm.controller import Controller
from cnm.controller.endpoints import LEGACY_LINKS, ipv6_disabled
from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound
from cnm.model import Endpoint, EndpointOptions, Network, PortRequest, Sandbox, SandboxOptions
from cnm.portmap.spec import parse_port_key, requests_from_config
from cnm.runtime import links
from cnm.runtime.model import (
    Container,
    ContainerConfig,
    ContainerNetworkState,
    EndpointRequest,
    HostConfig,
    NetworkAttachment,
)
from cnm.transaction import Transaction

log = logging.getLogger(__name__)

SANDBOX_FILES = ("hosts", "resolv.conf", "hostname")
SHARED_NETWORK = (
    "container sharing network namespace with another container or host cannot be connected "
    "to any other network"
)
HOST_NETWORK = "container cannot be disconnected from host network or connected to host network"
NONE_NETWORK = (
    "container cannot be connected to multiple networks with one of the networks in private "
    "(none) mode"
)


def shares_sandbox(container: Container) -> bool:
    """Network mode ``container:<id>``: the other container's sandbox is this one's."""
    return container.host_config.network_mode.startswith("container:")


def port_requests(config: ContainerConfig, host: HostConfig) -> list[PortRequest]:
    """What a container publishes: its port bindings, and with -P its exposed ports."""
    return requests_from_config(
        {key: [(b.host_ip, b.host_port) for b in v] for key, v in host.port_bindings.items()},
        config.exposed_ports,
        host.publish_all_ports,
    )


def checked_request(network: Network, request: EndpointRequest) -> EndpointRequest:
    """``request`` as it may be made on ``network``, its MAC in normal form."""
    for link in request.links:
        validate.link(link)
    if network.predefined and request.links:
        raise InvalidParameter(LEGACY_LINKS)
    if network.predefined:
        if request.ipv4_address or request.ipv6_address:
            raise InvalidParameter(
                "user specified IP address is supported on user defined networks only"
            )
        if request.aliases:
            raise InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
            )
    if request.ipv4_address:
        validate.static_address(request.ipv4_address, 4, (p.subnet for p in network.ipv4_pools))
    if request.ipv6_address and not network.enable_ipv6:
        raise ipv6_disabled(network, request.ipv6_address)
    if request.ipv6_address:
        validate.static_address(request.ipv6_address, 6, (p.subnet for p in network.ipv6_pools))
    for text in request.link_local_ips:
        if validate.link_local_ip(text).version == 6 and not network.enable_ipv6:
            raise ipv6_disabled(network, text)
    checked = copy.deepcopy(request)
    checked.link_local_ips = [str(validate.link_local_ip(t)) for t in request.link_local_ips]
    if request.mac_address:
        checked.mac_address = validate.mac_address(request.mac_address)
    return checked


def _port_keys(port: str) -> list[str]:
    """``80`` -> ["80/tcp"]; a range key names each of its ports."""
    start, end, proto = parse_port_key(port)
    return [f"{number}/{proto}" for number in range(start, end + 1)]


def _endpoint_options(
    container: Container, network_name: str, request: EndpointRequest
) -> EndpointOptions:
    """The endpoint a container asks for on ``network_name``: its request there, and on its
    network mode's network the container-wide MAC (Config.MacAddress) unless the request has
    one of its own."""
    mac = request.mac_address
    if not mac and network_name == container.host_config.network_mode:
        mac = container.config.mac_address
    return EndpointOptions(
        name=container.name,
        ipv4_address=request.ipv4_address or None,
        ipv6_address=request.ipv6_address or None,
        mac_address=mac or None,
        aliases=list(request.aliases),
        links={alias: name for name, alias in map(validate.link, request.links)},
        link_local_ips=list(request.link_local_ips),
        driver_options=dict(request.driver_opts),
    )


class ContainerNetworking:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    # ------------------------------------------------------------------ start and stop

    def attach(
        self,
        container: Container,
        txn: Transaction,
        lender: Container | None,
        link_hosts: list[str] | None = None,
    ) -> Sandbox:
        """The sandbox the container's process runs in, with its networks joined and its ports
        published; ``lender`` is the container whose sandbox it shares (``container:``);
        ``link_hosts`` its legacy links' hosts lines (``legacy_links``)."""
        if shares_sandbox(container):
            assert lender is not None
            if not lender.state.running or not lender.sandbox_id:
                raise Conflict(f"cannot join network of a non running container: {lender.id}")
            return self.controller.sandbox(lender.sandbox_id)
        host = container.host_config
        sandbox = self.controller.create_sandbox(
            SandboxOptions(
                container_id=container.id,
                hostname=container.config.hostname or None,
                domainname=container.config.domainname,
                use_host_network=host.network_mode == "host",
                dns=list(host.dns),
                dns_search=list(host.dns_search),
                dns_options=list(host.dns_options),
                extra_hosts=list(host.extra_hosts),
                link_hosts=list(link_hosts or []),
                # Docker's rule: the embedded resolver for a user-defined network mode (the
                # mode is stored as the network's name; the predefined ones are these three).
                embedded_dns=host.network_mode not in ("bridge", "host", "none"),
            )
        )
        txn.on_failure("sandbox", lambda: self.controller.delete_sandbox(sandbox.id))
        wanted = [
            (name, _endpoint_options(container, name, request))
            for name, request in container.networks.items()
        ]
        for network, options in self.controller.join_order(wanted):
            self.controller.connect(network, sandbox.id, options)
        requests = port_requests(container.config, host)
        if requests and host.network_mode not in ("host", "none"):
            self.controller.publish(sandbox.id, requests)
        return self.controller.sandbox(sandbox.id)

    # ------------------------------------------------------------------ legacy links

    def legacy_links(
        self, container: Container, linked: dict[str, Container]
    ) -> tuple[list[str], list[str]]:
        """The hosts lines and environment a starting container gets for its legacy links
        (``linked``: alias -> the linked container), by Docker's rules (``runtime.links``)."""
        hosts: list[str] = []
        env: list[str] = []
        for alias, child in linked.items():
            if not child.state.running:
                raise Conflict(
                    f"Cannot link to a non running container: /{child.name} AS "
                    f"/{container.name}/{alias}"
                )
            address = self._bridge_address(child)
            if address is None:
                raise InvalidParameter(
                    f"Cannot link to /{child.name}, as it does not belong to the default network"
                )
            hosts.append(links.hosts_entry(alias, child, address))
            env += links.environment(container.name, alias, child, address)
        return hosts, env

    def _bridge_address(self, container: Container) -> str | None:
        """A running container's address on the default bridge, if it has one of its own."""
        if not container.sandbox_id or shares_sandbox(container):
            return None
        bridge = self.controller.network(links.DEFAULT_BRIDGE)
        for endpoint in self.controller.endpoints(sandbox_id=container.sandbox_id):
            if endpoint.network_id == bridge.id and endpoint.ipv4_address:
                return endpoint.ipv4_address.split("/")[0]
        return None

    def relink(self, parent: Container, aliases: list[str], child: Container | None) -> None:
        """Rewrite a running container's hosts lines for ``aliases``: to ``child``'s address
        now (it started again), or none (``child`` None: the links were removed)."""
        if not parent.state.running or not parent.sandbox_id:
            return
        address = self._bridge_address(child) if child is not None else None
        if child is not None and address is None:
            return
        sandbox = self.controller.sandbox(parent.sandbox_id)
        kept = [e for e in sandbox.link_hosts if links.entry_alias(e) not in aliases]
        if child is not None and address is not None:
            kept += [links.hosts_entry(alias, child, address) for alias in aliases]
        self.controller.set_link_hosts(parent.sandbox_id, kept)

    def sandbox_files(self, sandbox: Sandbox) -> dict[str, Path]:
        """The sandbox's files by the path they are bound to inside (/etc/hosts...)."""
        return {
            f"/etc/{name}": self.controller.sandbox_file(sandbox.id, name) for name in SANDBOX_FILES
        }

    def release(self, container: Container, detach: bool) -> None:
        """Delete the sandbox of a container whose process ended (not one it borrowed); a
        failure (the store cannot be written) raises, the sandbox left whole. With
        ``detach``, take the interfaces out first: a process that still holds the namespace (a
        sidecar, a host container's exec) would otherwise keep the veth pair alive on the
        bridge, with the released address still configured inside."""
        if not container.sandbox_id or shares_sandbox(container):
            return
        with suppress(NotFound):
            if detach:
                for endpoint in self.controller.endpoints(sandbox_id=container.sandbox_id):
                    self.controller.disconnect(endpoint.network_id, container.sandbox_id)
            self.controller.delete_sandbox(container.sandbox_id)

    def remove_unheld_sandboxes(self, containers: set[str], held: set[str]) -> None:
        """Delete the sandboxes made for ``containers`` (the runtime's) other than ``held``
        (those of running containers)."""
        for sandbox in self.controller.sandboxes():
            if sandbox.container_id in containers and sandbox.id not in held:
                log.warning(
                    "removing sandbox %s of container %s: no running container holds it",
                    sandbox.id[:12],
                    sandbox.container_id[:12],
                )
                with suppress(NotFound):
                    self.controller.delete_sandbox(sandbox.id)

    def clean_up_stopped(self, container: Container) -> None:
        """The sandbox a crash in the middle of a stop may have left."""
        if container.sandbox_id and not shares_sandbox(container):
            with suppress(NotFound):
                self.controller.delete_sandbox(container.sandbox_id)

    # ------------------------------------------------------------------ while it exists

    def check_connect(
        self, container: Container, network_ref: str, request: EndpointRequest
    ) -> tuple[Network, EndpointRequest]:
        """Check a connect by Docker's rules; the network and the request to record."""
        if shares_sandbox(container):
            raise Forbidden(SHARED_NETWORK)
        network = self.controller.network(network_ref)
        if container.host_config.network_mode == "host" or network.driver == "host":
            raise Forbidden(HOST_NETWORK)
        if network.name in container.networks:
            raise Forbidden(
                f"endpoint with name {container.name} already exists in network {network.name}"
            )
        if "none" in container.networks or network.driver == "null":
            raise Forbidden(NONE_NETWORK)
        return network, checked_request(network, request)

    def join(self, container: Container, network: Network, request: EndpointRequest) -> None:
        """A running container joins the network at once (the interface appears inside)."""
        if container.state.running and container.sandbox_id:
            self.controller.connect(
                network.id,
                container.sandbox_id,
                _endpoint_options(container, network.name, request),
            )

    def check_disconnect(
        self, container: Container, network_ref: str, force: bool
    ) -> tuple[str, Network | None]:
        """Check a disconnect by Docker's rules; the name of the network to forget, and the
        network (None: it is gone, which ``force`` allows)."""
        if shares_sandbox(container):
            raise Forbidden(SHARED_NETWORK)
        if container.host_config.network_mode == "host":
            raise Forbidden(HOST_NETWORK)
        network: Network | None = None
        try:
            network = self.controller.network(network_ref)
            name = network.name
        except NotFound:
            if not force:
                raise
            name = network_ref
        if name not in container.networks:
            raise Forbidden(f"container {container.id} is not connected to network {name}")
        return name, network

    def leave(self, container: Container, network: Network | None) -> None:
        """A running container leaves the network at once; an endpoint already gone (a crash
        between the two steps of a disconnect) is left alone."""
        if network is not None and container.state.running and container.sandbox_id:
            with suppress(NotFound):
                self.controller.disconnect(network.id, container.sandbox_id)

    def reconcile(self, container: Container) -> None:
        """Make a running container's sandbox match its record: join the networks it lacks,
        leave those it should not be on, give its endpoints its name. A connect, disconnect or
        rename records first and changes the sandbox after, so a crash in between leaves the
        record right and the sandbox behind."""
        if not container.sandbox_id or shares_sandbox(container):
            return
        if container.host_config.network_mode == "host":
            return
        joined: dict[str, str] = {}
        named = True
        for endpoint in self.controller.endpoints(sandbox_id=container.sandbox_id):
            named = named and endpoint.name == container.name
            with suppress(NotFound):
                joined[self.controller.network(endpoint.network_id).name] = endpoint.network_id
        if not named:
            log.warning("naming the endpoints of %s after it: renamed, not yet", container.name)
            try:
                self.controller.rename_endpoints(container.sandbox_id, container.name)
            except CnmError as err:
                log.error("cannot rename the endpoints of %s: %s", container.name, err)
        for name, request in container.networks.items():
            if name not in joined:
                log.warning("joining %s to %s: recorded, not joined", container.name, name)
                try:
                    self.controller.connect(
                        name, container.sandbox_id, _endpoint_options(container, name, request)
                    )
                except CnmError as err:
                    log.error("cannot join %s to %s: %s", container.name, name, err)
        for name, network_id in joined.items():
            if name not in container.networks:
                log.warning("taking %s off %s: joined, not recorded", container.name, name)
                with suppress(NotFound):
                    self.controller.disconnect(network_id, container.sandbox_id)

    def rename(self, container: Container, name: str) -> None:
        """A running container's endpoints carry its name, and with them its DNS records."""
        if container.state.running and container.sandbox_id and not shares_sandbox(container):
            self.controller.rename_endpoints(container.sandbox_id, name)

    def state(self, container: Container) -> ContainerNetworkState:
        """Live values while the container runs, its requests alone once stopped."""
        sandbox = None
        if container.state.running and container.sandbox_id and not shares_sandbox(container):
            try:
                sandbox = self.controller.sandbox(container.sandbox_id)
            except NotFound:
                sandbox = None
        if sandbox is None:
            joined: dict[str, Endpoint] = {}
        else:
            joined = {e.network_id: e for e in self.controller.endpoints(sandbox_id=sandbox.id)}
        networks = {}
        for name, request in container.networks.items():
            try:
                network: Network | None = self.controller.network(name)
            except NotFound:
                network = None
            endpoint = joined.get(network.id) if network else None
            networks[name] = NetworkAttachment(name, copy.deepcopy(request), network, endpoint)
        ports: dict[str, None] = {}
        # Docker lists ports from the gateway endpoint: none while only internal networks.
        offers_gateway = sandbox is None or any(
            e.gateway_v4 or e.gateway_v6 for e in joined.values()
        )
        if container.state.running and offers_gateway:
            for port in [*container.config.exposed_ports, *container.host_config.port_bindings]:
                ports.update(dict.fromkeys(_port_keys(port)))
        if sandbox is None:
            return ContainerNetworkState(networks=networks, ports=list(ports))
        return ContainerNetworkState(
            sandbox_id=sandbox.id,
            sandbox_key=sandbox.key,
            networks=networks,
            ports=list(ports),
            published=self.controller.published(sandbox.id),
        )
