"""CNI attachments: the daemon's side of ADD, DEL, CHECK, GC and STATUS, over the controller.

An attachment is the spec's (CNI_CONTAINERID, CNI_IFNAME) pair. In cnm it is an endpoint of a
cnm network (the configuration's ``network``, default its ``name``; the network must exist:
it is made, with its subnet, driver and options, by ``docker network create`` or
``cnm network create``), joined as CNI_IFNAME to the container's sandbox. A container's
sandbox is made at its first ADD by adopting CNI_NETNS (``controller/sandboxes.py``) and
deleted after its last DEL; further attachments of the same container join the same sandbox,
and so follow cnm's default-route rule between them. Since the endpoint is the controller's,
the container shares IPAM, the embedded DNS (by its ``K8S_POD_NAME``, else its container id,
and its ``aliases``) and the nftables firewall with Docker-API containers.

Each attachment is recorded under ``cni/<container id>/<ifname>`` (the CNI network's name, the
cnm network, sandbox and endpoint, the port mappings asked for), so that DEL is idempotent (an
unknown attachment is a success), GC finds the attachments of a CNI network that its runtime no
longer lists, and a restarted daemon knows its CNI containers. The records follow the
controller's order: the endpoint first, its record after; removal, the endpoint first, so a
crash in between leaves an endpoint without a record, which ``start`` removes (and a sandbox
that adopted a namespace but has no record, likewise).

Published ports (``portMappings``) belong to the sandbox in cnm's model (on its gateway
endpoint, ``controller/ports.py``): a container's ports are the union of its attachments'.

What ADD answers is read back from what was made: the interfaces (for a bridge network the
bridge, the host-side veth and the container's interface, as the reference ``bridge`` plugin
lists them) with MACs and MTUs from the kernel, the endpoint's addresses with the network's
gateway, the default routes that point at the interface, and the DNS settings of the
sandbox's resolv.conf (127.0.0.11 on user-defined networks). CHECK compares prevResult and the
records with the kernel.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from cnm import validate
from cnm.cni.protocol import (
    CniError,
    Code,
    Dns,
    Interface,
    Invocation,
    IPConfig,
    NetConf,
    Result,
    Route,
    attachment_ids,
    render_result,
)
from cnm.controller import Controller
from cnm.errors import CnmError, Conflict, Forbidden, InvalidParameter, NotFound, Unavailable
from cnm.model import EndpointOptions, Network, PortRequest, Sandbox, SandboxOptions
from cnm.osl.links import sandbox_network
from cnm.osl.namespace import namespace_inode
from cnm.sandbox_files import parse_resolv_conf
from cnm.store.api import Store
from cnm.transaction import transaction

log = logging.getLogger(__name__)

PREFIX = "cni/"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
PREDEFINED_NETWORKS = ("bridge", "host", "none")


@dataclass
class AttachmentRecord:
    container_id: str
    ifname: str
    cni_network: str  # the configuration's name (GC's scope)
    network_id: str
    netns: str  # CNI_NETNS as given at ADD
    sandbox_id: str
    endpoint_id: str
    ports: list[dict[str, object]] = field(default_factory=list)  # PortRequest fields

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.container_id}/{self.ifname}"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> AttachmentRecord:
        return cls(**json.loads(raw))

    def port_requests(self) -> list[PortRequest]:
        return [PortRequest(**p) for p in self.ports]  # type: ignore[arg-type]


def translate(err: CnmError) -> CniError:
    """A controller error as the CNI error a runtime can act on."""
    if isinstance(err, Conflict):
        return CniError(Code.CONFLICT, str(err))
    if isinstance(err, InvalidParameter | Forbidden):
        return CniError(Code.INVALID_CONFIG, str(err))
    if isinstance(err, Unavailable):
        return CniError(Code.TRY_AGAIN_LATER, str(err))
    return CniError(Code.DAEMON_FAILURE, "the cnm daemon failed", str(err) or type(err).__name__)


class CniAttachments:
    def __init__(self, controller: Controller, store: Store) -> None:
        self._controller = controller
        self._store = store
        self._records: dict[tuple[str, str], AttachmentRecord] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dictionaries above

    # ----------------------------------------------------------------- records and locks

    @contextmanager
    def _container(self, container_id: str) -> Iterator[None]:
        """The spec lets a runtime call for several containers at once, never twice for one."""
        with self._lock:
            lock = self._locks.setdefault(container_id, threading.Lock())
        with lock:
            yield

    def _of_container(self, container_id: str) -> list[AttachmentRecord]:
        with self._lock:
            return [r for r in self._records.values() if r.container_id == container_id]

    def _get(self, container_id: str, ifname: str) -> AttachmentRecord | None:
        with self._lock:
            return self._records.get((container_id, ifname))

    def _remember(self, record: AttachmentRecord) -> None:
        self._store.put(record.key, record.to_json())
        with self._lock:
            self._records[(record.container_id, record.ifname)] = record

    def _forget(self, record: AttachmentRecord) -> None:
        self._store.delete(record.key)
        with self._lock:
            self._records.pop((record.container_id, record.ifname), None)
            if not any(r.container_id == record.container_id for r in self._records.values()):
                self._locks.pop(record.container_id, None)

    def records(self) -> list[AttachmentRecord]:
        with self._lock:
            return list(self._records.values())

    # ----------------------------------------------------------------- start-up

    def start(self) -> None:
        """Load the records after the controller restored its own, drop those whose sandbox or
        endpoint vanished, and remove what a crash left without a record."""
        sandboxes = {s.id: s for s in self._controller.sandboxes()}
        endpoints = {e.id: e for e in self._controller.endpoints()}
        for entry in self._store.list(PREFIX):
            record = AttachmentRecord.from_json(entry.value)
            endpoint = endpoints.get(record.endpoint_id)
            if record.sandbox_id in sandboxes and endpoint and endpoint.sandbox_id:
                self._records[(record.container_id, record.ifname)] = record
            else:
                log.warning(
                    "dropping CNI attachment %s: its sandbox or endpoint is gone", record.key
                )
                self._store.delete(entry.key)
        recorded = {r.endpoint_id for r in self._records.values()}
        in_use = {r.sandbox_id for r in self._records.values()}
        for sandbox in sandboxes.values():
            if not sandbox.adopted_from:
                continue
            try:
                if sandbox.id not in in_use:
                    log.warning("removing CNI sandbox %s: no attachment names it", sandbox.id[:12])
                    self._controller.delete_sandbox(sandbox.id)
                    continue
                for endpoint in self._controller.endpoints(sandbox_id=sandbox.id):
                    if endpoint.id not in recorded:
                        self._controller.disconnect(endpoint.network_id, sandbox.id)
            except CnmError:
                log.exception("cleaning up CNI sandbox %s", sandbox.id[:12])

    # ----------------------------------------------------------------- ADD

    def add(self, invocation: Invocation, conf: NetConf) -> dict[str, object]:
        """Attach and answer the result in the configuration's version."""
        with self._container(invocation.container_id):
            try:
                result = self._add(invocation, conf)
            except CnmError as err:
                raise translate(err) from None
        return render_result(result.chained_after(conf.prev_result), conf.cni_version)

    def _add(self, invocation: Invocation, conf: NetConf) -> Result:
        if self._get(invocation.container_id, invocation.ifname) is not None:
            raise CniError(
                Code.CONFLICT,
                f"container {invocation.container_id} already has an attachment "
                f"{invocation.ifname}",
                "the runtime must DEL it before another ADD with this CNI_IFNAME",
            )
        network = self._network(conf)
        siblings = self._of_container(invocation.container_id)
        options = self._endpoint_options(invocation, conf, network)
        with transaction() as txn:
            sandbox = self._sandbox_for(invocation, conf, network, siblings)
            if not siblings:
                txn.on_failure("sandbox", lambda: self._controller.delete_sandbox(sandbox.id))
            endpoint = self._controller.connect(network.id, sandbox.id, options)
            if siblings:
                txn.on_failure(
                    "endpoint", lambda: self._controller.disconnect(network.id, sandbox.id)
                )
            record = AttachmentRecord(
                container_id=invocation.container_id,
                ifname=invocation.ifname,
                cni_network=conf.name,
                network_id=network.id,
                netns=invocation.netns,
                sandbox_id=sandbox.id,
                endpoint_id=endpoint.id,
                ports=[asdict(r) for r in _port_requests(conf)],
            )
            if record.ports or any(s.ports for s in siblings):
                self._publish(sandbox.id, [*siblings, record])
                txn.on_failure("ports", lambda: self._publish(sandbox.id, siblings))
            self._remember(record)
            txn.on_failure("record", lambda: self._forget(record))
            return self._result(record, network, conf)

    def _network(self, conf: NetConf) -> Network:
        try:
            network = self._controller.network(conf.network)
        except NotFound:
            raise CniError(
                Code.INVALID_CONFIG,
                f"network {conf.network} not found",
                "the cnm network must exist before a CNI container joins it: create it with "
                "`docker network create` or `cnm network create` (the config's network key, or "
                "its name, names it)",
            ) from None
        if network.driver in ("host", "null"):
            raise CniError(
                Code.INVALID_CONFIG,
                f"network {network.name} ({network.driver} driver) cannot take CNI containers",
                "a CNI container gets an interface of its own: use a bridge or macvlan network",
            )
        return network

    def _endpoint_options(
        self, invocation: Invocation, conf: NetConf, network: Network
    ) -> EndpointOptions:
        ipv4 = ipv6 = None
        for text in conf.ips:
            interface = ipaddress.ip_interface(text)
            pools = network.ipv4_pools if interface.version == 4 else network.ipv6_pools
            subnets = [ipaddress.ip_network(p.subnet) for p in pools]
            try:
                validate.static_address(
                    str(interface.ip), interface.version, (str(s) for s in subnets)
                )
            except InvalidParameter as err:
                raise CniError(Code.INVALID_CONFIG, f"invalid ips entry {text}", str(err)) from None
            if "/" in text and not any(interface.network == s for s in subnets):
                raise CniError(
                    Code.INVALID_CONFIG,
                    f"invalid ips entry {text}: the prefix length is not the network's",
                    f"network {network.name} has {', '.join(map(str, subnets)) or 'no subnet'}",
                )
            if interface.version == 4:
                ipv4 = str(interface.ip)
            else:
                ipv6 = str(interface.ip)
        return EndpointOptions(
            name=_dns_name(invocation),
            ipv4_address=ipv4,
            ipv6_address=ipv6,
            mac_address=conf.mac,
            aliases=list(conf.aliases),
            ifname=invocation.ifname,
        )

    def _sandbox_for(
        self,
        invocation: Invocation,
        conf: NetConf,
        network: Network,
        siblings: list[AttachmentRecord],
    ) -> Sandbox:
        """The container's sandbox: its first ADD adopts CNI_NETNS; later ones must name the
        same namespace."""
        if siblings:
            sandbox = self._controller.sandbox(siblings[0].sandbox_id)
            if namespace_inode(invocation.netns) != namespace_inode(sandbox.key):
                raise CniError(
                    Code.INVALID_ENVIRONMENT,
                    f"invalid CNI_NETNS {invocation.netns}",
                    f"container {invocation.container_id} is attached in the network namespace "
                    f"{siblings[0].netns}",
                )
            return sandbox
        try:
            return self._controller.create_sandbox(
                SandboxOptions(
                    container_id=invocation.container_id,
                    hostname=_dns_name(invocation),
                    dns=list(conf.dns.nameservers),
                    dns_search=list(conf.dns.search),
                    dns_options=list(conf.dns.options),
                    embedded_dns=network.name not in PREDEFINED_NETWORKS,
                    netns_path=invocation.netns,
                )
            )
        except NotFound as err:
            raise CniError(Code.UNKNOWN_CONTAINER, str(err)) from None
        except InvalidParameter as err:
            raise CniError(
                Code.INVALID_ENVIRONMENT, f"invalid CNI_NETNS {invocation.netns}", str(err)
            ) from None

    def _publish(self, sandbox_id: str, records: list[AttachmentRecord]) -> None:
        requests = [r for record in records for r in record.port_requests()]
        self._controller.publish(sandbox_id, requests)

    # ----------------------------------------------------------------- the result

    def _result(self, record: AttachmentRecord, network: Network, conf: NetConf) -> Result:
        endpoint = self._controller.endpoint(record.endpoint_id)
        sandbox = self._controller.sandbox(record.sandbox_id)
        interfaces: list[Interface] = []
        host_links = self._controller.host.links
        names = [
            self._controller.network_info(network.id).get(BRIDGE_NAME_OPTION),
            self._controller.endpoint_info(endpoint.id).get("host_interface"),
        ]
        for name in names:
            details = host_links.details(name) if name else None
            if details is not None:
                interfaces.append(Interface(details.name, details.mac or "", details.mtu))
        routes: list[Route] = []
        with sandbox_network(sandbox.key) as sandbox_net:
            inner = sandbox_net.links.details(record.ifname)
            if inner is None:
                raise CnmError(f"interface {record.ifname} vanished from the sandbox")
            interfaces.append(Interface(inner.name, inner.mac or "", inner.mtu, record.netns))
            for version, dst in ((4, "0.0.0.0/0"), (6, "::/0")):
                default = sandbox_net.links.default_gateway(version)
                if default is not None and default[1] == inner.index:
                    routes.append(Route(dst, str(default[0])))
        index = len(interfaces) - 1
        ips = [
            IPConfig(address, _gateway_of(network, address), index)
            for address in (endpoint.ipv4_address, endpoint.ipv6_address)
            if address
        ]
        resolv = parse_resolv_conf(
            self._controller.sandbox_file(sandbox.id, "resolv.conf").read_text()
        )
        dns = Dns(
            nameservers=tuple(resolv.nameservers),
            domain=conf.dns.domain,
            search=tuple(resolv.search),
            options=tuple(resolv.options),
        )
        return Result(tuple(interfaces), tuple(ips), tuple(routes), dns)

    # ----------------------------------------------------------------- DEL

    def delete(self, invocation: Invocation) -> None:
        """Detach; an attachment cnm does not know (never added, or deleted already) is a
        success, as the spec asks."""
        with self._container(invocation.container_id):
            record = self._get(invocation.container_id, invocation.ifname)
            if record is None:
                return
            try:
                self._detach(record)
            except CnmError as err:
                raise translate(err) from None

    def _detach(self, record: AttachmentRecord) -> None:
        """The endpoint first (the last attachment takes the sandbox with it: cnm's mount of
        the namespace goes, the namespace stays the runtime's), then the record."""
        others = [r for r in self._of_container(record.container_id) if r is not record]
        try:
            if others:
                self._controller.disconnect(record.network_id, record.sandbox_id)
                if record.ports:
                    self._publish(record.sandbox_id, others)
            else:
                self._controller.delete_sandbox(record.sandbox_id)
        except NotFound:
            pass  # gone already: a DEL after a crash, or a network removed by force
        self._forget(record)

    # ----------------------------------------------------------------- CHECK

    def check(self, invocation: Invocation, conf: NetConf) -> None:
        with self._container(invocation.container_id):
            record = self._get(invocation.container_id, invocation.ifname)
            if record is None:
                raise CniError(
                    Code.UNKNOWN_CONTAINER,
                    f"container {invocation.container_id} has no attachment {invocation.ifname}",
                )
            if conf.prev_result is None:
                raise CniError(
                    Code.INVALID_CONFIG,
                    "CHECK needs prevResult",
                    "the runtime passes the result of the attachment's ADD as prevResult",
                )
            try:
                problems = self._problems(record, invocation, conf)
            except CnmError as err:
                raise translate(err) from None
        if problems:
            raise CniError(
                Code.NOT_AS_EXPECTED,
                f"attachment {invocation.container_id}/{invocation.ifname} is not as expected",
                "; ".join(problems),
            )

    def _problems(
        self, record: AttachmentRecord, invocation: Invocation, conf: NetConf
    ) -> list[str]:
        assert conf.prev_result is not None
        problems: list[str] = []
        if conf.network not in (record.network_id, self._network_name(record)):
            problems.append(f"the attachment is on network {self._network_name(record)}")
        if namespace_inode(invocation.netns) is None:
            return [*problems, f"network namespace {invocation.netns} is gone"]
        try:
            sandbox = self._controller.sandbox(record.sandbox_id)
            endpoint = self._controller.endpoint(record.endpoint_id)
        except NotFound as err:
            return [*problems, str(err)]
        if namespace_inode(invocation.netns) != namespace_inode(sandbox.key):
            problems.append(f"CNI_NETNS {invocation.netns} is not the attachment's namespace")
        expected = [
            (i, iface)
            for i, iface in enumerate(conf.prev_result.interfaces)
            if iface.name == record.ifname and iface.sandbox
        ]
        if not expected:
            problems.append(f"prevResult lists no interface {record.ifname} in a sandbox")
        with sandbox_network(sandbox.key) as sandbox_net:
            inner = sandbox_net.links.details(record.ifname)
            if inner is None:
                return [*problems, f"interface {record.ifname} is missing from the container"]
            if not sandbox_net.links.is_up(inner.index):
                problems.append(f"interface {record.ifname} is down")
            present = {str(a) for a in sandbox_net.links.addresses(inner.index)}
            gateways = {v: sandbox_net.links.default_gateway(v) for v in (4, 6)}
        for index, iface in expected:
            if iface.mac and (inner.mac or "").lower() != iface.mac.lower():
                problems.append(f"{record.ifname} has MAC {inner.mac}, prevResult {iface.mac}")
            for ip in conf.prev_result.ips:
                if ip.interface == index and ip.address not in present:
                    problems.append(f"{record.ifname} lacks address {ip.address}")
        for address in (endpoint.ipv4_address, endpoint.ipv6_address):
            if address and address not in present:
                problems.append(f"{record.ifname} lacks the endpoint's address {address}")
        for route in conf.prev_result.routes:
            network = ipaddress.ip_network(route.dst, strict=False)
            if network.prefixlen != 0 or not route.gw:
                continue
            found = gateways[network.version]
            if found is None or str(found[0]) != route.gw:
                problems.append(f"the default route via {route.gw} is missing")
        if record.ports and not self._controller.published(sandbox.id):
            problems.append("the published ports are not bound")
        return problems

    def _network_name(self, record: AttachmentRecord) -> str:
        try:
            return self._controller.network(record.network_id).name
        except NotFound:
            return record.network_id

    # ----------------------------------------------------------------- GC and STATUS

    def gc(self, conf: NetConf) -> None:
        """Detach every attachment of the CNI network ``conf.name`` that the runtime no longer
        lists; go on past errors and report them all."""
        valid = attachment_ids(conf.valid_attachments or ())
        stale = [
            r
            for r in self.records()
            if r.cni_network == conf.name and (r.container_id, r.ifname) not in valid
        ]
        errors = []
        for record in stale:
            with self._container(record.container_id):
                if self._get(record.container_id, record.ifname) is None:
                    continue
                try:
                    self._detach(record)
                except CnmError as err:
                    errors.append(f"{record.container_id}/{record.ifname}: {err}")
        if errors:
            raise CniError(Code.DAEMON_FAILURE, "GC left attachments behind", "; ".join(errors))

    def status(self, conf: NetConf) -> None:
        """Ready when the daemon answers and the configuration's network can take containers."""
        try:
            self._network(conf)
        except CniError as err:
            raise CniError(Code.NOT_AVAILABLE, err.msg, err.details) from None


def _dns_name(invocation: Invocation) -> str:
    """The name other containers resolve: the pod's name where the runtime gives one."""
    name = invocation.args.get("K8S_POD_NAME", "")
    try:
        return validate.container_name(name) if name else invocation.container_id
    except InvalidParameter:
        return invocation.container_id


def _gateway_of(network: Network, address: str) -> str:
    interface = ipaddress.ip_interface(address)
    pools = network.ipv4_pools if interface.version == 4 else network.ipv6_pools
    for pool in pools:
        if pool.gateway and interface.ip in ipaddress.ip_network(pool.subnet):
            return str(ipaddress.ip_interface(pool.gateway).ip)
    return ""


def _port_requests(conf: NetConf) -> list[PortRequest]:
    return [
        PortRequest(m.protocol, m.container_port, m.host_ip, m.host_port)
        for m in conf.port_mappings
    ]
