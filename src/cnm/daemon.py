"""``cnm daemon``: configuration, start-up, serving the API on a Unix socket, shutdown.

Start-up order: parse options; take the exec-root pid file and the data-root lock (one daemon per
root); claim the socket path (a stale socket file is replaced, a live one means another daemon is
serving and start-up stops); become a child subreaper (containers' orphans come back to us, not
to init); open the store and start the controller (restore and reconcile), then the embedded DNS
resolver (its listeners come back for the sandboxes that kept running), then the container
runtime (which watches the containers still running again), then the CNI attachments (their
records checked against the controller's), then serve. The controller is
started on the main thread before the event loop exists, because pyroute2 runs an event loop of
its own and refuses to run inside a running one.

Shutdown on SIGTERM or SIGINT: stop accepting, let in-flight requests and controller calls
finish, close the runtime (containers keep running), the resolver, the controller and the store,
remove the socket and pid files, exit 0. Signal handlers check that they run in the daemon's own
process: a forked child inherits them. A signal during start-up (restore and reconciliation)
ends the process at once; the store's transactions and the next start's reconciliation make
that safe.

Logs are logfmt lines on stderr (``time=... level=info msg="..." key=value``), or with
``--log-format json`` one JSON object a line with the same keys (``time``, ``level``, ``msg``,
then the fields passed through ``extra=``, ``logger`` for other modules than the daemon's,
``traceback`` for an exception). Requests are logged at debug level.

``--observe-listen 127.0.0.1:PORT`` also serves the read-only routes (the topology page,
``/metrics``, topology, explain and inspect) on that loopback TCP port; the Engine API stays on
the Unix socket only (see ``cnm.api.ui``).

This module is imported by the CLI for its options, so the server side (aiohttp, the controller,
pyroute2) is imported only when the daemon runs.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import fcntl
import ipaddress
import json
import logging
import os
import resource
import signal
import socket
import stat
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cnm import __version__, faults

if TYPE_CHECKING:
    from aiohttp import web

    from cnm.plugins.discovery import PluginConfig
    from cnm.store.sqlite import SqliteStore

log = logging.getLogger("cnm.daemon")

DEFAULT_EXEC_ROOT = "/run/cnm"
DEFAULT_DATA_ROOT = "/var/lib/cnm"
DEFAULT_SOCKET = "/run/cnm/cnm.sock"
PR_SET_CHILD_SUBREAPER = 36
SHUTDOWN_TIMEOUT_S = 10.0
DEFAULT_PLUGIN_TIMEOUT_S = 30.0  # Docker's plugin client gives up after 30 s as well
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}


class DaemonError(Exception):
    """A reason the daemon cannot start, told to the user as is."""


# ----------------------------------------------------------------------------- options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exec-root",
        default=DEFAULT_EXEC_ROOT,
        help=f"runtime state: sandbox namespaces, pid file (default {DEFAULT_EXEC_ROOT})",
    )
    parser.add_argument(
        "--data-root",
        default=DEFAULT_DATA_ROOT,
        help=f"persistent state: the store (default {DEFAULT_DATA_ROOT})",
    )
    parser.add_argument(
        "-H",
        "--host",
        "--socket",
        dest="socket",
        default=DEFAULT_SOCKET,
        metavar="SOCKET",
        help=f"Unix socket to serve the API on, a path or unix:///path (default {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--default-address-pool",
        action="append",
        default=[],
        metavar="base=CIDR,size=N",
        help="a default address pool for automatic subnets (repeatable; replaces Docker's)",
    )
    parser.add_argument(
        "--bridge-name", default="cnm0", help="device of the default bridge network (cnm0)"
    )
    parser.add_argument("--mtu", type=int, default=None, help="MTU of the default bridge network")
    parser.add_argument(
        "--ip",
        default="0.0.0.0",
        metavar="IP",
        help="host address of published ports when -p names none (0.0.0.0: every address, "
        "IPv6 too)",
    )
    parser.add_argument(
        "--dns",
        action="append",
        default=[],
        metavar="IP",
        help="a DNS server for containers, instead of the host's (repeatable)",
    )
    parser.add_argument(
        "--host-gateway-ip",
        default=None,
        metavar="IP",
        help="the address --add-host NAME:host-gateway names (default: the default bridge's "
        "gateway, as Docker's)",
    )
    parser.add_argument(
        "--plugin-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of plugin sockets (repeatable; default /run/docker/plugins)",
    )
    parser.add_argument(
        "--plugin-spec-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of plugin .spec/.json files (repeatable; default /etc/docker/plugins "
        "and /usr/lib/docker/plugins)",
    )
    parser.add_argument(
        "--plugin-timeout",
        type=float,
        default=DEFAULT_PLUGIN_TIMEOUT_S,
        metavar="SECONDS",
        help="how long a remote driver or IPAM plugin may take to answer one call; the "
        f"operation is rolled back after that (default {DEFAULT_PLUGIN_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--log-level", default="info", choices=sorted(LOG_LEVELS), help="log level (info)"
    )
    parser.add_argument(
        "--log-format",
        default="logfmt",
        choices=["logfmt", "json"],
        help="logfmt lines (default) or one JSON object a line",
    )
    parser.add_argument(
        "--observe-listen",
        default=None,
        metavar="127.0.0.1:PORT",
        help="also serve the topology page (/ui/) and /metrics on this loopback TCP address "
        "(read-only routes only; off by default)",
    )
    parser.add_argument(
        "--cluster-store",
        default="",
        metavar="etcd://HOST:PORT[,HOST:PORT...]",
        help="the etcd cluster that global-scope (overlay) networks live in",
    )
    parser.add_argument(
        "--cluster-advertise",
        default="",
        metavar="IP[:PORT]|IFACE[:PORT]",
        help="this host's underlay address (its VXLAN tunnel endpoint); the port is ignored",
    )
    parser.add_argument(
        "--cluster-store-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="discovery.ttl=SECONDS (20), discovery.heartbeat=SECONDS (5), kv.path=PREFIX "
        "(/cnm/), vni.max=N (16777215: overlay networks get VNIs 4096..N) (repeatable)",
    )
    parser.add_argument(
        "--config-file",
        default="",
        metavar="PATH",
        help="a daemon.json with these options under Docker's names (cluster-store, "
        "cluster-advertise, cluster-store-opts, dns, mtu, ip, default-address-pools, "
        "exec-root, data-root, log-level, log-format); an option may not be given both ways",
    )


# daemon.json keys (Docker's names) and the options they stand for.
CONFIG_KEYS = {
    "cluster-store": "cluster_store",
    "cluster-advertise": "cluster_advertise",
    "cluster-store-opts": "cluster_store_opt",
    "dns": "dns",
    "mtu": "mtu",
    "ip": "ip",
    "default-address-pools": "default_address_pool",
    "exec-root": "exec_root",
    "data-root": "data_root",
    "log-level": "log_level",
    "log-format": "log_format",
}
DEFAULT_TTL_S = 20
DEFAULT_HEARTBEAT_S = 5
MAX_VNI = 16777215  # VXLAN's 24 bits; automatic VNIs start at 4096, as Docker's


def apply_config_file(args: argparse.Namespace) -> None:
    """Take the options of ``--config-file`` into ``args``; an option given both as a flag and
    in the file, an unknown key or a value of the wrong type is refused (Docker's rules)."""
    if not args.config_file:
        return
    path = Path(args.config_file)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise DaemonError(f"cannot read --config-file {path}: {err.strerror}") from None
    except ValueError as err:
        raise DaemonError(f"--config-file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise DaemonError(f"--config-file {path}: expected a JSON object")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise DaemonError(f"--config-file {path}: unknown options {', '.join(unknown)}")
    defaults = argparse.ArgumentParser()
    add_arguments(defaults)
    default = defaults.parse_args([])
    both = [
        key for key in data if getattr(args, CONFIG_KEYS[key]) != getattr(default, CONFIG_KEYS[key])
    ]
    if both:
        raise DaemonError(
            "the following directives are specified both as a flag and in the configuration "
            f"file: {', '.join(both)}"
        )
    for key, value in data.items():
        setattr(args, CONFIG_KEYS[key], _config_value(path, key, value))


def _config_value(path: Path, key: str, value: object) -> object:
    def wrong(expected: str) -> DaemonError:
        return DaemonError(f"--config-file {path}: {key} must be {expected}")

    if key == "cluster-store-opts":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise wrong("an object of strings")
        return [f"{k}={v}" for k, v in value.items()]
    if key == "default-address-pools":
        if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
            raise wrong('a list of {"base": CIDR, "size": N}')
        return [f"base={p.get('base')},size={p.get('size')}" for p in value]
    if key == "dns":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong("a list of addresses")
        return value
    if key == "mtu":
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong("a number")
        return value
    if not isinstance(value, str):
        raise wrong("a string")
    return value


@dataclass(frozen=True)
class ClusterOptions:
    endpoints: list[str]
    advertise: str  # an address of this host
    ttl: int
    heartbeat: int
    prefix: str
    max_vni: int


def cluster_options(args: argparse.Namespace) -> ClusterOptions | None:
    """The cluster flags checked: None without ``--cluster-store``."""
    if not args.cluster_store:
        if args.cluster_advertise or args.cluster_store_opt:
            raise DaemonError("--cluster-advertise and --cluster-store-opt need --cluster-store")
        return None
    from cnm.errors import CnmError
    from cnm.store.etcd import parse_cluster_store  # requests and etcd3gw: only with a cluster

    try:
        endpoints = parse_cluster_store(args.cluster_store)
    except CnmError as err:
        raise DaemonError(f"invalid --cluster-store: {err}") from None
    if not args.cluster_advertise:
        raise DaemonError(
            "--cluster-store needs --cluster-advertise: this host's underlay address or "
            "interface, the tunnel endpoint other hosts send to"
        )
    opts: dict[str, str] = {}
    for text in args.cluster_store_opt:
        key, sep, value = text.partition("=")
        if not sep or key not in ("discovery.ttl", "discovery.heartbeat", "kv.path", "vni.max"):
            raise DaemonError(
                f"invalid --cluster-store-opt {text!r}: expected discovery.ttl=, "
                "discovery.heartbeat=, kv.path= or vni.max="
            )
        opts[key] = value
    ttl = _positive(opts.get("discovery.ttl"), DEFAULT_TTL_S, "discovery.ttl")
    heartbeat = _positive(
        opts.get("discovery.heartbeat"), DEFAULT_HEARTBEAT_S, "discovery.heartbeat"
    )
    if heartbeat >= ttl:
        raise DaemonError(
            f"invalid --cluster-store-opt: discovery.heartbeat ({heartbeat}s) must be shorter "
            f"than discovery.ttl ({ttl}s)"
        )
    prefix = opts.get("kv.path", "/cnm/")
    if not prefix.startswith("/") or not prefix.endswith("/"):
        raise DaemonError(f"invalid --cluster-store-opt kv.path={prefix!r}: /a/path/ expected")
    max_vni = MAX_VNI
    if "vni.max" in opts:
        text = opts["vni.max"]
        if not text.isdigit() or not 4096 <= int(text) <= MAX_VNI:
            raise DaemonError(
                f"invalid --cluster-store-opt vni.max={text!r}: a number in 4096-{MAX_VNI}"
            )
        max_vni = int(text)
    return ClusterOptions(
        endpoints, advertise_address(args.cluster_advertise), ttl, heartbeat, prefix, max_vni
    )


def _positive(text: str | None, default: int, what: str) -> int:
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise DaemonError(f"invalid --cluster-store-opt {what}={text!r}: a number of seconds")
    return int(text)


def advertise_address(value: str) -> str:
    """``--cluster-advertise`` as an address of this host: an IP or an interface (its first
    IPv4 address), with an optional port that is ignored."""
    from cnm.osl.links import interface_addresses

    host = value
    if value.startswith("["):
        host = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        host = value.partition(":")[0]
    addresses = interface_addresses()
    if host in addresses:
        ipv4 = [a for a in addresses[host] if a.version == 4]
        if not ipv4:
            raise DaemonError(f"--cluster-advertise {value}: interface {host} has no IPv4 address")
        return str(ipv4[0])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise DaemonError(
            f"invalid --cluster-advertise {value!r}: not an IP address or an interface of this host"
        ) from None
    if not any(address in found for found in addresses.values()):
        raise DaemonError(f"--cluster-advertise {value}: {address} is not an address of this host")
    return str(address)


def plugin_config(args: argparse.Namespace) -> PluginConfig:
    """Where plugins are looked for (Docker's places unless told), and the call timeout."""
    from cnm.plugins.discovery import SOCKET_DIRS, SPEC_DIRS, PluginConfig

    if not 0 < args.plugin_timeout <= 3600:
        raise DaemonError(
            f"invalid --plugin-timeout {args.plugin_timeout:g}: it must be between 0 and 3600 "
            "seconds"
        )
    for directory in (*args.plugin_dir, *args.plugin_spec_dir):
        if not directory.startswith("/"):
            raise DaemonError(f"invalid plugin directory {directory!r}: it must be absolute")
    return PluginConfig(
        socket_dirs=tuple(Path(d) for d in args.plugin_dir) or SOCKET_DIRS,
        spec_dirs=tuple(Path(d) for d in args.plugin_spec_dir) or SPEC_DIRS,
        timeout=args.plugin_timeout,
    )


def socket_path(host: str) -> Path:
    """The socket path of ``-H``: a path or ``unix:///path``; other schemes are refused."""
    if host.startswith("unix://"):
        host = host.removeprefix("unix://")
    elif "://" in host:
        raise DaemonError(f"unsupported host {host!r}: cnm serves on a Unix socket only")
    if not host.startswith("/"):
        raise DaemonError(f"invalid socket path {host!r}: it must be absolute")
    return Path(host)


# ----------------------------------------------------------------------------- logging

_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    """``time=... level=... msg="..." key=value ...``; tracebacks follow on indented lines."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        fields: list[tuple[str, object]] = [
            ("time", moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")),
            ("level", "fatal" if record.levelno >= logging.CRITICAL else record.levelname.lower()),
            ("msg", record.getMessage()),
        ]
        fields += [(k, v) for k, v in record.__dict__.items() if k not in _RECORD_ATTRS]
        if not record.name.startswith("cnm.daemon"):
            fields.append(("logger", record.name))
        line = " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields)
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "\n" + "\n".join("    " + part for part in trace.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the keys the logfmt lines have."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        fields: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": "fatal" if record.levelno >= logging.CRITICAL else record.levelname.lower(),
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS:
                fields[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if not record.name.startswith("cnm.daemon"):
            fields["logger"] = record.name
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return json.dumps(fields, ensure_ascii=False)


def configure_logging(level_name: str, log_format: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else LogfmtFormatter())
    # Debug output is ours only: pyroute2 logs every netlink message at debug level.
    handler.addFilter(lambda r: r.levelno >= logging.INFO or r.name.startswith("cnm"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LOG_LEVELS[level_name])


# ----------------------------------------------------------------------------- start-up


@contextmanager
def locked_file(path: Path, what: str, content: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (with ``content`` written) while the daemon runs."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            raise DaemonError(
                f"another cnm daemon (pid {holder or '?'}) is using {what} {path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, content.encode(), 0)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def claim_socket(path: Path) -> None:
    """Make ``path`` free for our socket: remove a stale socket, refuse a live one."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise DaemonError(f"{path} exists and is not a socket; remove it or choose another path")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
            log.info("removed stale socket", extra={"socket": str(path)})
            return
        except OSError as err:
            raise DaemonError(f"cannot tell whether {path} is in use: {err}") from None
    raise DaemonError(f"another daemon is already serving on {path}")


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        log.warning("cannot become a child subreaper", extra={"error": os.strerror(err)})


def raise_open_files_limit() -> None:
    """Every published port holds a socket (its host port), so take all the descriptors the
    hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _engine_id(data_root: Path) -> str:
    """A stable identity for ``/info``, kept in the data root like Docker's engine-id."""
    path = data_root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        engine_id = str(uuid.uuid4())
        path.write_text(engine_id + "\n")
        return engine_id


def check_records(store: SqliteStore) -> None:
    """Every record decodes (they are all JSON), before anything is made from them: a damaged
    record found halfway through start-up would leave kernel objects made for the others."""
    for entry in store.list(""):
        try:
            json.loads(entry.value)
        except ValueError as err:
            raise DaemonError(
                f"the store {store.path} is corrupt: record {entry.key} does not decode ({err}): "
                "restore it from a backup, or move it aside to start with no networks, "
                "containers or images"
            ) from None


# ----------------------------------------------------------------------------- serving


async def serve(
    app: web.Application,
    path: Path,
    owner_pid: int,
    listen: tuple[web.Application, str, int] | None = None,
) -> None:
    """Serve ``app`` on ``path`` (mode 0660, root-owned) until SIGTERM or SIGINT; with
    ``listen``, also that application on that TCP address."""
    from aiohttp import web

    from cnm.api.server import ApiRunner

    runner = ApiRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    tcp_runner: web.AppRunner | None = None
    if listen is not None:
        tcp_app, host, port = listen
        tcp_runner = web.AppRunner(
            tcp_app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await tcp_runner.setup()
        try:
            await web.TCPSite(tcp_runner, host, port).start()
        except OSError as err:
            await tcp_runner.cleanup()
            await runner.cleanup()
            raise DaemonError(f"cannot listen on {host}:{port}: {err.strerror}") from None
        log.info("page and metrics listening", extra={"address": f"{host}:{port}"})
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if os.getpid() != owner_pid:
            return  # a forked child inherited this handler
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    ours: tuple[int, int] | None = None
    try:
        previous_umask = os.umask(0o117)  # the socket is born 0660
        try:
            await web.UnixSite(runner, str(path)).start()
        finally:
            os.umask(previous_umask)
        made = path.lstat()
        ours = (made.st_dev, made.st_ino)
        os.chmod(path, 0o660)
        if os.geteuid() == 0:
            os.chown(path, 0, 0)
        log.info("API listening", extra={"socket": str(path)})
        await stop.wait()
    finally:
        await runner.cleanup()  # its shutdown ends the event streams of both listeners
        if tcp_runner is not None:
            await tcp_runner.cleanup()
        _unlink_if_ours(path, ours)


def _unlink_if_ours(path: Path, ours: tuple[int, int] | None) -> None:
    """Remove our socket, but not one that another daemon has bound at ``path`` since."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return
    if ours is not None and (found.st_dev, found.st_ino) == ours:
        path.unlink(missing_ok=True)
    else:
        log.info("left the socket alone: it is no longer ours", extra={"socket": str(path)})


def run(args: argparse.Namespace) -> int:
    """``cnm daemon``: returns the exit status."""
    try:
        apply_config_file(args)
    except DaemonError as err:
        configure_logging("info", "logfmt")
        log.error(str(err))
        return 1
    if args.log_level not in LOG_LEVELS or args.log_format not in ("logfmt", "json"):
        configure_logging("info", "logfmt")
        log.error(
            f"invalid log-level {args.log_level!r} or log-format {args.log_format!r}: "
            f"one of {', '.join(sorted(LOG_LEVELS))}, and logfmt or json"
        )
        return 1
    configure_logging(args.log_level, args.log_format)
    try:
        return _run(args)
    except DaemonError as err:
        log.error(str(err))
    except OSError as err:
        log.error("the daemon failed", extra={"error": str(err)})
    except KeyboardInterrupt:
        log.info("interrupted during start-up")
    return 1


def _run(args: argparse.Namespace) -> int:
    from cnm.api import cni as cni_api
    from cnm.api import dns as dns_api
    from cnm.api import metrics as metrics_api
    from cnm.api.common import DaemonInfo
    from cnm.api.server import make_app, make_read_only_app
    from cnm.api.ui import parse_listen
    from cnm.cni.attachments import CniAttachments
    from cnm.controller import ControllerConfig
    from cnm.controller.cluster import ClusterConfig
    from cnm.dns.resolver import Resolver
    from cnm.errors import CnmError
    from cnm.ipam.default import parse_pool_option
    from cnm.runtime.runtime import Runtime, RuntimeConfig
    from cnm.store.sqlite import SqliteStore
    from cnm.store.timed import TimedStore
    from cnm.wiring import build_controller

    owner_pid = os.getpid()
    path = socket_path(args.socket)
    exec_root = Path(args.exec_root).absolute()
    data_root = Path(args.data_root).absolute()
    try:
        pools = [parse_pool_option(text) for text in args.default_address_pool]
    except CnmError as err:
        raise DaemonError(f"invalid --default-address-pool: {err}") from None
    if args.mtu is not None and not 68 <= args.mtu <= 65535:
        raise DaemonError(f"invalid --mtu {args.mtu}: it must be between 68 and 65535")
    for server in args.dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise DaemonError(f"invalid --dns {server!r}: not an IP address") from None
    for flag, value in (("--ip", args.ip), ("--host-gateway-ip", args.host_gateway_ip)):
        try:
            if value is not None:
                ipaddress.ip_address(value)
        except ValueError:
            raise DaemonError(f"invalid {flag} {value!r}: not an IP address") from None
    cluster = cluster_options(args)
    plugins = plugin_config(args)
    listen_address = None
    if args.observe_listen is not None:
        try:
            listen_address = parse_listen(args.observe_listen)
        except CnmError as err:
            raise DaemonError(f"invalid --observe-listen: {err}") from None
    for root in (exec_root, data_root, path.parent):
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with ExitStack() as stack:
        stack.enter_context(locked_file(exec_root / "cnm.pid", "exec root", f"{owner_pid}\n"))
        stack.enter_context(locked_file(data_root / "cnm.lock", "data root", f"{owner_pid}\n"))
        claim_socket(path)
        become_subreaper()
        raise_open_files_limit()
        try:
            sqlite = SqliteStore(data_root / "cnm.db")
        except CnmError as err:
            raise DaemonError(str(err)) from None
        check_records(sqlite)
        store = TimedStore(sqlite)
        stack.callback(store.close)
        cluster_store = None
        cluster_config = None
        if cluster is not None:
            from cnm.store.etcd import EtcdStore  # requests and etcd3gw: only with a cluster

            cluster_store = EtcdStore(cluster.endpoints, prefix=cluster.prefix)
            stack.callback(cluster_store.close)
            cluster_config = ClusterConfig(
                node_id=_engine_id(data_root),
                node_name=socket.gethostname(),
                advertise_address=cluster.advertise,
                ttl=cluster.ttl,
                heartbeat=cluster.heartbeat,
            )
        config = ControllerConfig(
            exec_root=exec_root,
            cluster=cluster_config,
            default_bridge_name=args.bridge_name,
            default_bridge_mtu=args.mtu,
            dns=list(args.dns),
            default_host_ip=args.ip,
            host_gateway_ip=args.host_gateway_ip,
        )
        controller = build_controller(
            config,
            store,
            address_pools=pools or None,
            plugins=plugins,
            cluster_store=cluster_store,
            max_vni=cluster.max_vni if cluster else MAX_VNI,
        )
        try:
            controller.start()
        except CnmError as err:
            raise DaemonError(f"cannot start the controller: {err}") from None
        stack.callback(controller.close)
        resolver = Resolver(controller)
        try:
            resolver.start()
        except OSError as err:
            raise DaemonError(f"cannot start the embedded DNS resolver: {err}") from None
        stack.callback(resolver.close)
        runtime = Runtime(RuntimeConfig(data_root, exec_root), store, controller)
        try:
            runtime.start()
        except CnmError as err:
            raise DaemonError(f"cannot start the container runtime: {err}") from None
        stack.callback(runtime.close)
        attachments = CniAttachments(controller, store)
        try:
            attachments.start()
        except CnmError as err:
            raise DaemonError(f"cannot restore the CNI attachments: {err}") from None
        log.info(
            "cnm daemon started",
            extra={
                "version": __version__,
                "pid": owner_pid,
                "exec_root": str(exec_root),
                "data_root": str(data_root),
            },
        )
        info = DaemonInfo(
            engine_id=_engine_id(data_root),
            data_root=str(data_root),
            exec_root=str(exec_root),
            default_address_pools=[(str(p.base), p.size) for p in pools],
            debug=args.log_level == "debug",
        )
        app = make_app(controller, info, runtime)
        dns_api.add_routes(app, resolver)
        cni_api.add_routes(app, attachments)
        metrics_api.watch_resolver(app, resolver)
        listen = None
        if listen_address is not None:
            listen = (make_read_only_app(app), *listen_address)
        faults.arm()  # CNM_CRASH_AT counts the steps of requests, not of start-up
        asyncio.run(serve(app, path, owner_pid, listen))
    if (counted := faults.steps_counted()) is not None:
        log.info("fault injection: no crash", extra={"steps": counted})
    log.info("cnm daemon stopped")
    return 0
