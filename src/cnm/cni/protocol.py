"""The CNI specification's data (SPEC.md 1.1.0): what a plugin is asked and what it answers.

Both the ``cnm-cni`` executable and the daemon's ``/cnm/cni`` API parse a request with the
functions here, so a bad request gets the same answer wherever it is caught first, with the
spec's error codes: 1 an incompatible ``cniVersion``, 2 an unsupported field (the message names
the key and its value), 3 an unknown container, 4 a bad environment variable (named), 5 an I/O
failure, 6 undecodable input, 7 an invalid network configuration, 11 try again later, 50 and 51
from STATUS. cnm's own codes start at 100 (``Code``).

Versions. cnm speaks 0.3.0 to 1.1.0: the results of 0.3.x and 0.4.0 differ from 1.x only in the
``version`` field of each IP, and 1.1.0 adds the interface and route fields (``mtu``,
``socketPath``, ``pciID``, ``advmss``, ``priority``, ``table``, ``scope``), which are rendered
only for 1.1.0. 0.1.0 and 0.2.0 had another result shape and are refused (code 1), as is a
configuration without ``cniVersion`` (libcni reads that as 0.1.0).

The network configuration. A field cnm does not act on is refused with code 2 rather than
ignored (``ipam``, ``ipMasq``, ``mtu``...: the cnm network decides those), except where the
spec says plugins ignore what they do not understand: the contents of ``args`` (CONVENTIONS.md;
``args.cni.ips`` is honoured) and, with ``IgnoreUnknown=1``, unknown ``CNI_ARGS`` keys. cnm's
own keys: ``network`` (the cnm network to join, default the configuration's ``name``),
``socket`` (the daemon's API socket, default /run/cnm/cnm.sock) and ``timeout`` (seconds to
wait for the daemon, default 30). Capabilities (``runtimeConfig``): ``portMappings``, ``ips``,
``mac`` and ``aliases`` (CONVENTIONS.md).

This module is stdlib-only apart from cnm's validators, so the executable starts fast.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from cnm import validate
from cnm.errors import InvalidParameter

SPEC_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")
DEFAULT_SOCKET = "/run/cnm/cnm.sock"
DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 600.0
CAPABILITIES = ("portMappings", "ips", "mac", "aliases")
PORT_PROTOCOLS = ("tcp", "udp", "sctp")
VALID_ATTACHMENTS = "cni.dev/valid-attachments"

# The spec's identifier rule for container ids and network names.
_IDENTIFIER = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
# CNI_ARGS keys cnm reads; the K8S_* ones are what kubelet, CRI-O, containerd and Podman pass.
KNOWN_ARGS = (
    "IgnoreUnknown",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
    "IP",
    "MAC",
)
# Keys the runtime or the spec put in a plugin's configuration, and cnm's own.
_PROTOCOL_KEYS = ("cniVersion", "name", "type", "capabilities", "runtimeConfig", "args")
_CNM_KEYS = ("network", "socket", "timeout")
# Well-known keys whose job the cnm network does: refused with a pointer to what to do.
_NETWORK_DECIDES = {
    "ipam": "addresses come from the cnm network's IPAM: drop ipam, or ask for addresses with "
    "the ips capability (runtimeConfig) or args.cni.ips",
    "ipMasq": "masquerading is the cnm network's option "
    "(com.docker.network.bridge.enable_ip_masquerade)",
    "mtu": "the MTU is the cnm network's (com.docker.network.driver.mtu)",
    "bridge": "the bridge is the cnm network's: name the network with the network key",
    "isGateway": "the gateway is the cnm network's",
    "isDefaultGateway": "the default route is the cnm network's gateway",
}


class Code(IntEnum):
    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODE_FAILURE = 6
    INVALID_CONFIG = 7
    TRY_AGAIN_LATER = 11
    NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    # cnm's own (the spec leaves 100 and up to plugins):
    CONFLICT = 100  # a name, address, interface or attachment already in use
    NOT_AS_EXPECTED = 101  # CHECK found the attachment differing from prevResult or broken
    DAEMON_FAILURE = 102  # the daemon failed to do the work


class CniError(Exception):
    """An error result: ``code``, ``msg`` (short) and ``details`` (longer, optional)."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def to_json(self, version: str = SPEC_VERSION) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg


def _config_error(message: str, details: str = "") -> CniError:
    return CniError(Code.INVALID_CONFIG, message, details)


def _unsupported(key: str, value: object, why: str = "") -> CniError:
    shown = json.dumps(value, separators=(",", ":"))
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return CniError(
        Code.UNSUPPORTED_FIELD,
        f"unsupported field in network configuration: {key}={shown}",
        why or f"cnm-cni does not support {key}",
    )


# ----------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class Invocation:
    """The environment of one call (Section 2, Parameters), checked for its command."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    def to_environment(self) -> dict[str, str]:
        """The variables as the runtime set them (what the plugin forwards to the daemon)."""
        env = {
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": self.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in self.args.items()),
            "CNI_PATH": self.path,
        }
        return {k: v for k, v in env.items() if v}


_REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
    "VERSION": (),
}


def parse_command(env: Mapping[str, str]) -> str:
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniError(Code.INVALID_ENVIRONMENT, "required env variables [CNI_COMMAND] missing")
    if command not in COMMANDS:
        raise CniError(
            Code.INVALID_ENVIRONMENT,
            f"invalid CNI_COMMAND {command!r}",
            f"CNI_COMMAND must be one of {', '.join(COMMANDS)}",
        )
    return command


def parse_environment(env: Mapping[str, str], command: str | None = None) -> Invocation:
    """The call's parameters; ``command`` given (the daemon's route) replaces CNI_COMMAND."""
    command = command or parse_command(env)
    missing = [name for name in _REQUIRED[command] if not env.get(name)]
    if missing:
        raise CniError(
            Code.INVALID_ENVIRONMENT, f"required env variables [{','.join(missing)}] missing"
        )
    container_id = env.get("CNI_CONTAINERID", "")
    if container_id and not _IDENTIFIER.fullmatch(container_id):
        raise CniError(
            Code.INVALID_ENVIRONMENT,
            f"invalid CNI_CONTAINERID {container_id!r}",
            "it must start with a letter or digit, followed by letters, digits, '_', '.' or '-'",
        )
    netns = env.get("CNI_NETNS", "")
    if netns and not netns.startswith("/"):
        raise CniError(
            Code.INVALID_ENVIRONMENT,
            f"invalid CNI_NETNS {netns!r}",
            "it must be the absolute path of the container's network namespace",
        )
    ifname = env.get("CNI_IFNAME", "")
    if ifname:
        try:
            validate.interface_name(ifname)
        except InvalidParameter as err:
            raise CniError(
                Code.INVALID_ENVIRONMENT, f"invalid CNI_IFNAME {ifname!r}", str(err)
            ) from None
    return Invocation(
        command=command,
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        args=parse_args(env.get("CNI_ARGS", "")),
        path=env.get("CNI_PATH", ""),
    )


def parse_args(text: str) -> dict[str, str]:
    """``CNI_ARGS``: ``K=V`` pairs separated by ';'. Keys cnm does not read are refused unless
    ``IgnoreUnknown`` is 1 or true (the reference plugins' rule)."""
    args: dict[str, str] = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(
                Code.INVALID_ENVIRONMENT,
                f"invalid CNI_ARGS pair {pair!r}",
                "CNI_ARGS is KEY=VALUE pairs separated by ';'",
            )
        args[key] = value
    ignore_unknown = args.get("IgnoreUnknown", "").lower() in ("1", "true")
    unknown = [k for k in args if k not in KNOWN_ARGS]
    if unknown and not ignore_unknown:
        raise CniError(
            Code.INVALID_ENVIRONMENT,
            f"CNI_ARGS: unknown args {unknown}",
            f"cnm-cni reads {', '.join(KNOWN_ARGS)}; add IgnoreUnknown=1 to pass others",
        )
    return args


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str = ""
    mtu: int | None = None
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""


@dataclass(frozen=True)
class IPConfig:
    address: str  # CIDR, "10.1.0.5/16"
    gateway: str = ""
    interface: int | None = None  # index into the result's interfaces


@dataclass(frozen=True)
class Route:
    dst: str
    gw: str = ""
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


@dataclass(frozen=True)
class Dns:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: Dns = Dns()

    def chained_after(self, previous: Result | None) -> Result:
        """This result added to ``previous`` (prevResult): its interfaces, IPs and routes after
        the earlier ones, IP interface indexes moved along, DNS merged with ours first."""
        if previous is None:
            return self
        offset = len(previous.interfaces)
        ips = tuple(
            IPConfig(
                ip.address, ip.gateway, None if ip.interface is None else ip.interface + offset
            )
            for ip in self.ips
        )
        return Result(
            interfaces=previous.interfaces + self.interfaces,
            ips=previous.ips + ips,
            routes=previous.routes + self.routes,
            dns=Dns(
                nameservers=_unique(self.dns.nameservers, previous.dns.nameservers),
                domain=self.dns.domain or previous.dns.domain,
                search=_unique(self.dns.search, previous.dns.search),
                options=_unique(self.dns.options, previous.dns.options),
            ),
        )


def _unique(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def _is_1_1(version: str) -> bool:
    return version == "1.1.0"


def render_result(result: Result, version: str) -> dict[str, Any]:
    """The ADD success result in ``version``'s shape (Section 5)."""
    rich = _is_1_1(version)
    interfaces = []
    for iface in result.interfaces:
        item: dict[str, Any] = {"name": iface.name}
        if iface.mac:
            item["mac"] = iface.mac
        if rich and iface.mtu is not None:
            item["mtu"] = iface.mtu
        if iface.sandbox:
            item["sandbox"] = iface.sandbox
        if rich and iface.socket_path:
            item["socketPath"] = iface.socket_path
        if rich and iface.pci_id:
            item["pciID"] = iface.pci_id
        interfaces.append(item)
    ips = []
    for ip in result.ips:
        entry: dict[str, Any] = {}
        if version.startswith("0."):
            entry["version"] = str(ipaddress.ip_interface(ip.address).version)
        if ip.interface is not None:
            entry["interface"] = ip.interface
        entry["address"] = ip.address
        if ip.gateway:
            entry["gateway"] = ip.gateway
        ips.append(entry)
    routes = []
    for route in result.routes:
        out: dict[str, Any] = {"dst": route.dst}
        if route.gw:
            out["gw"] = route.gw
        if rich:
            for key in ("mtu", "advmss", "priority", "table", "scope"):
                value = getattr(route, key)
                if value is not None:
                    out[key] = value
        routes.append(out)
    dns: dict[str, Any] = {}
    if result.dns.nameservers:
        dns["nameservers"] = list(result.dns.nameservers)
    if result.dns.domain:
        dns["domain"] = result.dns.domain
    if result.dns.search:
        dns["search"] = list(result.dns.search)
    if result.dns.options:
        dns["options"] = list(result.dns.options)
    rendered: dict[str, Any] = {"cniVersion": version}
    if interfaces:
        rendered["interfaces"] = interfaces
    if ips:
        rendered["ips"] = ips
    if routes:
        rendered["routes"] = routes
    rendered["dns"] = dns
    return rendered


def parse_result(data: object, version: str, what: str = "prevResult") -> Result:
    """A result another plugin (or cnm's earlier ADD) rendered in ``version``'s shape."""
    obj = _object(data, what)
    interfaces = []
    for i, item in enumerate(_list(obj.get("interfaces", []), f"{what}.interfaces")):
        iface = _object(item, f"{what}.interfaces[{i}]")
        interfaces.append(
            Interface(
                name=_string(iface.get("name"), f"{what}.interfaces[{i}].name", required=True),
                mac=_string(iface.get("mac", ""), f"{what}.interfaces[{i}].mac"),
                mtu=_optional_uint(iface.get("mtu"), f"{what}.interfaces[{i}].mtu"),
                sandbox=_string(iface.get("sandbox", ""), f"{what}.interfaces[{i}].sandbox"),
                socket_path=_string(iface.get("socketPath", ""), f"{what}.interfaces[{i}]"),
                pci_id=_string(iface.get("pciID", ""), f"{what}.interfaces[{i}].pciID"),
            )
        )
    ips = []
    for i, item in enumerate(_list(obj.get("ips", []), f"{what}.ips")):
        entry = _object(item, f"{what}.ips[{i}]")
        address = _string(entry.get("address"), f"{what}.ips[{i}].address", required=True)
        try:
            ipaddress.ip_interface(address)
        except ValueError:
            raise _config_error(f"invalid {what}.ips[{i}].address {address!r}") from None
        index = _optional_uint(entry.get("interface"), f"{what}.ips[{i}].interface")
        if index is not None and index >= len(interfaces):
            raise _config_error(
                f"invalid {what}.ips[{i}].interface {index}",
                f"{what} lists {len(interfaces)} interfaces",
            )
        ips.append(IPConfig(address, _string(entry.get("gateway", ""), what), index))
    routes = []
    for i, item in enumerate(_list(obj.get("routes", []), f"{what}.routes")):
        entry = _object(item, f"{what}.routes[{i}]")
        routes.append(
            Route(
                dst=_string(entry.get("dst"), f"{what}.routes[{i}].dst", required=True),
                gw=_string(entry.get("gw", ""), f"{what}.routes[{i}].gw"),
                mtu=_optional_uint(entry.get("mtu"), f"{what}.routes[{i}].mtu"),
                advmss=_optional_uint(entry.get("advmss"), f"{what}.routes[{i}].advmss"),
                priority=_optional_uint(entry.get("priority"), f"{what}.routes[{i}].priority"),
                table=_optional_uint(entry.get("table"), f"{what}.routes[{i}].table"),
                scope=_optional_uint(entry.get("scope"), f"{what}.routes[{i}].scope"),
            )
        )
    return Result(tuple(interfaces), tuple(ips), tuple(routes), parse_dns(obj.get("dns"), what))


def parse_dns(data: object, where: str) -> Dns:
    if data is None:
        return Dns()
    obj = _object(data, f"{where}.dns")
    for key in obj:
        if key not in ("nameservers", "domain", "search", "options"):
            raise _unsupported(f"{where}.dns.{key}", obj[key])
    nameservers = _strings(obj.get("nameservers", []), f"{where}.dns.nameservers")
    for server in nameservers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise _config_error(
                f"invalid {where}.dns.nameservers entry {server!r}: not an IP address"
            ) from None
    return Dns(
        nameservers=tuple(nameservers),
        domain=_string(obj.get("domain", ""), f"{where}.dns.domain"),
        search=tuple(_strings(obj.get("search", []), f"{where}.dns.search")),
        options=tuple(_strings(obj.get("options", []), f"{where}.dns.options")),
    )


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""


@dataclass(frozen=True)
class Attachment:
    """One entry of ``cni.dev/valid-attachments``: an attachment's identity."""

    container_id: str
    ifname: str


@dataclass(frozen=True)
class NetConf:
    """A plugin's request configuration, parsed and checked."""

    cni_version: str
    name: str
    type: str
    network: str  # the cnm network to join (name or id)
    socket: str = DEFAULT_SOCKET
    timeout: float = DEFAULT_TIMEOUT_S
    dns: Dns = Dns()
    port_mappings: tuple[PortMapping, ...] = ()
    ips: tuple[str, ...] = ()  # "ip" or "ip/prefix", at most one per family
    mac: str | None = None
    aliases: tuple[str, ...] = ()
    prev_result: Result | None = None
    valid_attachments: tuple[Attachment, ...] | None = None


def decode(raw: bytes) -> dict[str, Any]:
    """The configuration on stdin as a JSON object (code 6 if it is not one)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise CniError(Code.DECODE_FAILURE, "error decoding network config", str(err)) from None
    if not isinstance(data, dict):
        raise CniError(
            Code.DECODE_FAILURE,
            "error decoding network config",
            f"expected a JSON object, got {type(data).__name__}",
        )
    return data


def config_version(config: Mapping[str, Any]) -> str:
    """``cniVersion``, if cnm speaks it (code 1 otherwise)."""
    version = config.get("cniVersion")
    if version is None or version == "":
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            "the config has no cniVersion (read as 0.1.0); cnm-cni supports "
            f"{list(SUPPORTED_VERSIONS)}",
        )
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f"config is {json.dumps(version)}, plugin supports {list(SUPPORTED_VERSIONS)}",
        )
    return version


def version_result(config: Mapping[str, Any]) -> dict[str, Any]:
    """VERSION: the input's ``cniVersion`` (the spec's, when it names none) and cnm's list."""
    version = config.get("cniVersion")
    if not isinstance(version, str) or not version:
        version = SPEC_VERSION
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def parse_config(config: Mapping[str, Any], command: str, args: Mapping[str, str]) -> NetConf:
    """Check every field of a request configuration for ``command``; ``args`` are CNI_ARGS."""
    version = config_version(config)
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise _config_error("missing network name")
    if not _IDENTIFIER.fullmatch(name):
        raise _config_error(
            f"invalid network name {name!r}",
            "it must start with a letter or digit, followed by letters, digits, '_', '.' or '-'",
        )
    plugin_type = config.get("type")
    if not isinstance(plugin_type, str) or not plugin_type:
        raise _config_error("missing plugin type", "the type key names the plugin's executable")
    for key, value in config.items():
        if key in _PROTOCOL_KEYS or key in _CNM_KEYS or key in ("dns", "prevResult"):
            continue
        if key == VALID_ATTACHMENTS and command == "GC":
            continue
        raise _unsupported(key, value, _NETWORK_DECIDES.get(key, ""))
    network = config.get("network", name)
    if not isinstance(network, str) or not network:
        raise _config_error("invalid network: expected the name or id of a cnm network")
    socket_path = config.get("socket", DEFAULT_SOCKET)
    if not isinstance(socket_path, str) or not socket_path.startswith("/"):
        raise _config_error(
            f"invalid socket {socket_path!r}: expected the absolute path of the daemon's socket"
        )
    timeout = config.get("timeout", DEFAULT_TIMEOUT_S)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise _config_error(
            f"invalid timeout {json.dumps(timeout)}: expected seconds, more than 0 and at most "
            f"{MAX_TIMEOUT_S:g}"
        )
    _check_capabilities(config.get("capabilities"))
    runtime = _object(config.get("runtimeConfig", {}), "runtimeConfig")
    for key, value in runtime.items():
        if key not in CAPABILITIES:
            raise _unsupported(f"runtimeConfig.{key}", value)
    ips = _requested_ips(config, runtime, args)
    mac = runtime.get("mac", args.get("MAC") or None)
    if mac is not None:
        if not isinstance(mac, str):
            raise _config_error("invalid runtimeConfig.mac: expected a string")
        try:
            mac = validate.mac_address(mac)
        except InvalidParameter as err:
            raise _config_error(f"invalid mac {mac!r}", str(err)) from None
    aliases = _strings(runtime.get("aliases", []), "runtimeConfig.aliases")
    for alias in aliases:
        if not alias or any(c.isspace() for c in alias):
            raise _config_error(f"invalid runtimeConfig.aliases entry {alias!r}")
    prev = None
    if "prevResult" in config:
        prev = parse_result(config["prevResult"], version)
    attachments = None
    if command == "GC":
        attachments = _valid_attachments(config.get(VALID_ATTACHMENTS))
    return NetConf(
        cni_version=version,
        name=name,
        type=plugin_type,
        network=network,
        socket=socket_path,
        timeout=float(timeout),
        dns=parse_dns(config.get("dns"), "config"),
        port_mappings=_port_mappings(runtime.get("portMappings", [])),
        ips=ips,
        mac=mac,
        aliases=tuple(aliases),
        prev_result=prev,
        valid_attachments=attachments,
    )


def _check_capabilities(data: object) -> None:
    if data is None:
        return
    capabilities = _object(data, "capabilities")
    for key, value in capabilities.items():
        if not isinstance(value, bool):
            raise _config_error(f"invalid capabilities.{key}: expected true or false")
        if value and key not in CAPABILITIES:
            raise _unsupported(
                f"capabilities.{key}",
                value,
                f"cnm-cni's capabilities are {', '.join(CAPABILITIES)}",
            )


def _requested_ips(
    config: Mapping[str, Any], runtime: Mapping[str, Any], args: Mapping[str, str]
) -> tuple[str, ...]:
    """``runtimeConfig.ips``, else ``args.cni.ips``, else CNI_ARGS ``IP`` (CONVENTIONS.md: a
    plugin that reads ``args`` ignores the CNI_ARGS field)."""
    cni_args = _object(_object(config.get("args", {}), "args").get("cni", {}), "args.cni")
    if "ips" in runtime:
        ips, where = _strings(runtime["ips"], "runtimeConfig.ips"), "runtimeConfig.ips"
    elif "ips" in cni_args:
        ips, where = _strings(cni_args["ips"], "args.cni.ips"), "args.cni.ips"
    else:
        ips, where = [ip for ip in args.get("IP", "").split(",") if ip], "CNI_ARGS IP"
    families: set[int] = set()
    for text in ips:
        try:
            version = ipaddress.ip_interface(text).version
        except ValueError:
            raise _config_error(f"invalid {where} entry {text!r}: not an IP address") from None
        if version in families:
            raise _config_error(
                f"invalid {where}: more than one IPv{version} address",
                "a cnm endpoint has one IPv4 and one IPv6 address at most",
            )
        families.add(version)
    return tuple(ips)


def _port_mappings(data: object) -> tuple[PortMapping, ...]:
    mappings = []
    for i, item in enumerate(_list(data, "runtimeConfig.portMappings")):
        where = f"runtimeConfig.portMappings[{i}]"
        entry = _object(item, where)
        for key in entry:
            if key not in ("hostPort", "containerPort", "protocol", "hostIP"):
                raise _unsupported(f"{where}.{key}", entry[key])
        ports = []
        for key in ("hostPort", "containerPort"):
            port = entry.get(key)
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise _config_error(
                    f"invalid {where}.{key} {json.dumps(port)}: expected a port, 1 to 65535"
                )
            ports.append(port)
        protocol = entry.get("protocol", "tcp")
        if not isinstance(protocol, str) or protocol.lower() not in PORT_PROTOCOLS:
            raise _config_error(
                f"invalid {where}.protocol {json.dumps(protocol)}: expected tcp, udp or sctp"
            )
        host_ip = _string(entry.get("hostIP", ""), f"{where}.hostIP")
        if host_ip:
            try:
                host_ip = str(ipaddress.ip_address(host_ip))
            except ValueError:
                raise _config_error(f"invalid {where}.hostIP {host_ip!r}") from None
        mappings.append(PortMapping(ports[0], ports[1], protocol.lower(), host_ip))
    return tuple(mappings)


def _valid_attachments(data: object) -> tuple[Attachment, ...]:
    if data is None:
        raise _config_error(f"GC needs {VALID_ATTACHMENTS}: the attachments still valid")
    found = []
    for i, item in enumerate(_list(data, VALID_ATTACHMENTS)):
        entry = _object(item, f"{VALID_ATTACHMENTS}[{i}]")
        found.append(
            Attachment(
                _string(entry.get("containerID"), f"{VALID_ATTACHMENTS}[{i}].containerID", True),
                _string(entry.get("ifname"), f"{VALID_ATTACHMENTS}[{i}].ifname", True),
            )
        )
    return tuple(found)


# ----------------------------------------------------------------------------- JSON checks


def _object(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _config_error(f"invalid {where}: expected an object")
    return data


def _list(data: object, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise _config_error(f"invalid {where}: expected a list")
    return data


def _string(data: object, where: str, required: bool = False) -> str:
    if data is None and not required:
        return ""
    if not isinstance(data, str) or (required and not data):
        raise _config_error(f"invalid {where}: expected a{' non-empty' if required else ''} string")
    return data


def _strings(data: object, where: str) -> list[str]:
    items = _list(data, where)
    if not all(isinstance(item, str) for item in items):
        raise _config_error(f"invalid {where}: expected a list of strings")
    return items


def _optional_uint(data: object, where: str) -> int | None:
    if data is None:
        return None
    if isinstance(data, bool) or not isinstance(data, int) or data < 0:
        raise _config_error(f"invalid {where}: expected a non-negative integer")
    return data


def http_status(code: int) -> int:
    """The HTTP status the daemon's API answers an error ``code`` with."""
    if code == Code.UNKNOWN_CONTAINER:
        return 404
    if code == Code.CONFLICT:
        return 409
    if code in (Code.TRY_AGAIN_LATER, Code.NOT_AVAILABLE, Code.LIMITED_CONNECTIVITY):
        return 503
    if code in (Code.DAEMON_FAILURE, Code.IO_FAILURE):
        return 500
    return 400


def attachment_ids(items: Sequence[Attachment]) -> set[tuple[str, str]]:
    return {(a.container_id, a.ifname) for a in items}
