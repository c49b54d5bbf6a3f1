"""``cnm plugin serve``: cnm's bridge driver and default IPAM as a Docker plugin.

A dockerd finds the socket (``/run/docker/plugins/cnm.sock`` by default; a plugin is named by
its socket's file name) and uses it with ``docker network create -d cnm [--ipam-driver cnm]``.
dockerd then plays libnetwork's controller (it asks IPAM, orders the calls, moves the
interface into the container and programs its addresses and routes) and cnm does the kernel
work of the network: the bridge, the veths, nftables isolation, masquerading and published
ports.

Why it looks like this:

* One server implements both ``NetworkDriver`` and ``IpamDriver``; dockerd activates it once.
* Join makes the veth with its container end in the host namespace, named ``cnm`` + 12 hex of
  the endpoint id, and answers it as ``SrcName`` with ``DstPrefix`` ``eth``: dockerd moves it
  into the container (the protocol has no way to make it there directly). Leave deletes the
  host end, which takes the other end with it wherever it is.
* Docker keeps no state for its plugins, so the server records what it was asked in its own
  store (``<data-root>/plugin.db``): the CreateNetwork and CreateEndpoint requests as received,
  joins, published ports, IPAM pools and addresses. A restarted server restores them (bridges
  kept, veths nobody joined removed, IPAM replayed, ports bound again); hence its IPAM answers
  ``RequiresRequestReplay: false``.
* Calls run one at a time on one worker thread: dockerd's calls are short, and one thread
  keeps one netlink socket however many connections dockerd opens.
* Errors are a 500 with ``{"Err": message}`` (what go-plugins-helpers sends; dockerd reads it
  for both APIs). 404 stays for methods not implemented (swarm's AllocateNetwork and
  FreeNetwork), which dockerd skips where they are optional.
"""

from __future__ import annotations

import argparse
import http.server
import json
import logging
import os
import signal
import socketserver
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnm.daemon import (
    LOG_LEVELS,
    DaemonError,
    claim_socket,
    configure_logging,
    locked_file,
    socket_path,
)
from cnm.errors import CnmError, InvalidParameter
from cnm.ipam.default import parse_pool_option
from cnm.ipamapi import GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE
from cnm.model import PortMapping
from cnm.plugins import protocol
from cnm.store.api import Delete, Put, Store

if TYPE_CHECKING:
    from cnm.wiring import ServedDrivers

log = logging.getLogger("cnm.plugin")

DEFAULT_SOCKET = "/run/docker/plugins/cnm.sock"
DEFAULT_DATA_ROOT = "/var/lib/cnm-plugin"
PEER_PREFIX = "cnm"  # the container end of a veth while it waits in the host namespace
DST_PREFIX = "eth"

Handler = Callable[[Any], dict[str, Any]]


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class PluginBackend:
    """The protocol's calls on the bridge driver and the default IPAM, recorded in ``store``."""

    def __init__(self, drivers: ServedDrivers, store: Store) -> None:
        self.drivers = drivers
        self.bridge = drivers.bridge
        self.ipam = drivers.ipam
        self.store = store
        self._published: dict[str, list[PortMapping]] = {}
        self._handlers: dict[str, Handler] = {
            "Plugin.Activate": lambda _: {
                "Implements": [protocol.NETWORK_DRIVER, protocol.IPAM_DRIVER]
            },
            "NetworkDriver.GetCapabilities": lambda _: protocol.capabilities_answer(
                "local", "local"
            ),
            "NetworkDriver.CreateNetwork": self.create_network,
            "NetworkDriver.DeleteNetwork": self.delete_network,
            "NetworkDriver.CreateEndpoint": self.create_endpoint,
            "NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "NetworkDriver.EndpointOperInfo": self.endpoint_info,
            "NetworkDriver.Join": self.join,
            "NetworkDriver.Leave": self.leave,
            "NetworkDriver.ProgramExternalConnectivity": self.program_ports,
            "NetworkDriver.RevokeExternalConnectivity": self.revoke_ports,
            "NetworkDriver.DiscoverNew": lambda _: {},
            "NetworkDriver.DiscoverDelete": lambda _: {},
            "IpamDriver.GetCapabilities": lambda _: {
                "RequiresMACAddress": False,
                "RequiresRequestReplay": False,
            },
            "IpamDriver.GetDefaultAddressSpaces": lambda _: {
                "LocalDefaultAddressSpace": LOCAL_ADDRESS_SPACE,
                "GlobalDefaultAddressSpace": GLOBAL_ADDRESS_SPACE,
            },
            "IpamDriver.RequestPool": self.request_pool,
            "IpamDriver.ReleasePool": self.release_pool,
            "IpamDriver.RequestAddress": self.request_address,
            "IpamDriver.ReleaseAddress": self.release_address,
        }

    def handle(self, method: str, body: Any) -> dict[str, Any]:
        """Answer one call; LookupError for a method not served (a 404)."""
        handler = self._handlers.get(method)
        if handler is None:
            raise LookupError(method)
        return handler(body)

    # ----------------------------------------------------------------- start-up

    def start(self) -> None:
        """Restore what the store records, then write the firewall's rules in one go."""
        joined = {e.key.removeprefix("joined/") for e in self.store.list("joined/")}
        networks = [
            protocol.parse_create_network(json.loads(e.value)) for e in self.store.list("network/")
        ]
        endpoints = [
            replace(spec, joined=spec.endpoint_id in joined)
            for spec in (
                protocol.parse_create_endpoint(json.loads(e.value))
                for e in self.store.list("endpoint/")
            )
        ]
        self.bridge.restore(networks, endpoints)
        for entry in self.store.list("pool/"):
            pool = protocol.parse_request_pool(json.loads(entry.value))
            self.ipam.request_pool(pool.address_space, pool.pool, pool.sub_pool, {}, pool.v6)
        for entry in self.store.list("address/"):
            pool_id, address, _ = protocol.parse_request_address(json.loads(entry.value))
            self.ipam.request_address(pool_id, address, {})
        for entry in self.store.list("ports/"):
            try:
                self.program_ports(json.loads(entry.value), record=False)
            except CnmError as err:
                log.error("cannot publish the ports of %s again: %s", entry.key, err)
        self.drivers.firewall.start()
        log.info("restored", extra={"networks": len(networks), "endpoints": len(endpoints)})

    # ----------------------------------------------------------------- network driver

    def create_network(self, body: Any) -> dict[str, Any]:
        spec = protocol.parse_create_network(body)
        self.bridge.validate_network_options(spec.options)
        self.bridge.create_network(spec)
        try:
            self.store.put(f"network/{spec.network_id}", _json(body))
        except BaseException:
            self.bridge.delete_network(spec.network_id)
            raise
        return {}

    def delete_network(self, body: Any) -> dict[str, Any]:
        network_id, _ = protocol.parse_ids(body, "DeleteNetwork", endpoint=False)
        self.store.delete(f"network/{network_id}")
        self.bridge.delete_network(network_id)
        return {}

    def create_endpoint(self, body: Any) -> dict[str, Any]:
        spec = protocol.parse_create_endpoint(body)
        info = self.bridge.create_endpoint(spec)
        # recorded as CreateEndpoint would have sent it with the MAC the driver chose
        recorded = replace(spec, mac_address=spec.mac_address or info.mac_address)
        try:
            self.store.put(
                f"endpoint/{spec.endpoint_id}", _json(protocol.create_endpoint_request(recorded))
            )
        except BaseException:
            self.bridge.delete_endpoint(spec.network_id, spec.endpoint_id)
            raise
        return protocol.create_endpoint_answer(spec, info)

    def delete_endpoint(self, body: Any) -> dict[str, Any]:
        network_id, endpoint_id = protocol.parse_ids(body, "DeleteEndpoint")
        self.store.commit([Delete(f"endpoint/{endpoint_id}"), Delete(f"joined/{endpoint_id}")])
        self.bridge.delete_endpoint(network_id, endpoint_id)
        return {}

    def endpoint_info(self, body: Any) -> dict[str, Any]:
        network_id, endpoint_id = protocol.parse_ids(body, "EndpointOperInfo")
        value: dict[str, Any] = dict(self.bridge.endpoint_info(network_id, endpoint_id))
        published = self._published.get(endpoint_id)
        if published:
            value[protocol.OPT_PORT_MAP] = [protocol.port_mapping_json(m) for m in published]
        return {"Value": value}

    def join(self, body: Any) -> dict[str, Any]:
        network_id, endpoint_id, _ = protocol.parse_join(body)
        peer = PEER_PREFIX + endpoint_id[:12]
        info = self.bridge.join(network_id, endpoint_id, None, peer)
        try:
            self.store.put(f"joined/{endpoint_id}", b"")
        except BaseException:
            self.bridge.leave(network_id, endpoint_id)
            raise
        return protocol.join_answer(peer, DST_PREFIX, info)

    def leave(self, body: Any) -> dict[str, Any]:
        network_id, endpoint_id = protocol.parse_ids(body, "Leave")
        self.store.delete(f"joined/{endpoint_id}")
        self.bridge.leave(network_id, endpoint_id)
        return {}

    def program_ports(self, body: Any, record: bool = True) -> dict[str, Any]:
        network_id, endpoint_id = protocol.parse_ids(body, "ProgramExternalConnectivity")
        reader = protocol.Reader(body, "ProgramExternalConnectivity", InvalidParameter)
        options = reader.mapping("Options")
        requests = protocol.parse_port_requests(options)
        if not requests:  # dockerd programs every gateway endpoint, most with nothing to publish
            return self.revoke_ports(body)
        mappings = self.bridge.program_external_connectivity(network_id, endpoint_id, requests)
        if record:
            try:
                self.store.put(f"ports/{endpoint_id}", _json(body))
            except BaseException:
                self.bridge.revoke_external_connectivity(network_id, endpoint_id)
                raise
        self._published[endpoint_id] = mappings
        return {}

    def revoke_ports(self, body: Any) -> dict[str, Any]:
        network_id, endpoint_id = protocol.parse_ids(body, "RevokeExternalConnectivity")
        self.store.delete(f"ports/{endpoint_id}")
        self._published.pop(endpoint_id, None)
        self.bridge.revoke_external_connectivity(network_id, endpoint_id)
        return {}

    # ----------------------------------------------------------------- IPAM

    def request_pool(self, body: Any) -> dict[str, Any]:
        request = protocol.parse_request_pool(body)
        grant = self.ipam.request_pool(
            request.address_space, request.pool, request.sub_pool, request.options, request.v6
        )
        granted = protocol.request_pool_request(
            request.address_space, str(grant.subnet), request.sub_pool, {}, request.v6
        )
        try:
            self.store.put(f"pool/{grant.pool_id}", _json(granted))
        except BaseException:
            self.ipam.release_pool(grant.pool_id)
            raise
        return protocol.pool_answer(grant)

    def release_pool(self, body: Any) -> dict[str, Any]:
        pool_id = protocol.parse_pool_id(body, "ReleasePool")
        addresses = self.store.list(f"address/{pool_id}/")
        self.store.commit([Delete(f"pool/{pool_id}"), *(Delete(e.key) for e in addresses)])
        self.ipam.release_pool(pool_id)
        return {}

    def request_address(self, body: Any) -> dict[str, Any]:
        pool_id, address, options = protocol.parse_request_address(body)
        granted = self.ipam.request_address(pool_id, address, options)
        record = protocol.request_address_request(pool_id, granted.ip, {})
        try:
            self.store.commit([Put(f"address/{pool_id}/{granted.ip}", _json(record))])
        except BaseException:
            self.ipam.release_address(pool_id, granted.ip)
            raise
        return {"Address": str(granted), "Data": {}}

    def release_address(self, body: Any) -> dict[str, Any]:
        pool_id, address = protocol.parse_release_address(body)
        self.store.delete(f"address/{pool_id}/{address}")
        self.ipam.release_address(pool_id, address)
        return {}


# ----------------------------------------------------------------------------- HTTP


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, backend: PluginBackend) -> None:
        self.backend = backend
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnm-plugin")
        super().__init__(path, _RequestHandler)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)

    def address_string(self) -> str:
        return "unix"

    def _reply(self, status: int, answer: object) -> None:
        data = _json(answer)
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        method = self.path.lstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as err:
            self._reply(400, {"Err": f"{method}: the request is not JSON: {err}"})
            return
        log.debug("plugin call", extra={"method": method})
        try:
            answer = self.server.worker.submit(self.server.backend.handle, method, body).result()
        except LookupError:
            self._reply(404, {"Err": f"{method} is not implemented"})
        except CnmError as err:
            log.info("plugin call failed", extra={"method": method, "error": str(err)})
            self._reply(500, {"Err": str(err)})
        except Exception as err:
            log.exception("plugin call %s", method)
            self._reply(500, {"Err": f"{method}: internal error: {err}"})
        else:
            self._reply(200, answer)


# ----------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help="the plugin socket; its file name is the plugin's name "
        f"(default {DEFAULT_SOCKET}: docker network create -d cnm)",
    )
    parser.add_argument(
        "--data-root",
        default=DEFAULT_DATA_ROOT,
        help=f"where the plugin records its networks (default {DEFAULT_DATA_ROOT})",
    )
    parser.add_argument(
        "--default-address-pool",
        action="append",
        default=[],
        metavar="base=CIDR,size=N",
        help="a default address pool of the IPAM (repeatable; replaces Docker's)",
    )
    parser.add_argument(
        "--ip",
        default="0.0.0.0",
        metavar="IP",
        help="host address of published ports when -p names none (0.0.0.0)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=sorted(LOG_LEVELS), help="log level (info)"
    )


def run(args: argparse.Namespace) -> int:
    """``cnm plugin serve``: returns the exit status."""
    configure_logging(args.log_level)
    try:
        return _run(args)
    except DaemonError as err:
        log.error(str(err))
    except (OSError, CnmError) as err:
        log.error("the plugin failed", extra={"error": str(err)})
    return 1


def _run(args: argparse.Namespace) -> int:
    # The CLI imports this module for its options: the kernel side is imported only to serve.
    from cnm.store.sqlite import SqliteStore
    from cnm.wiring import build_served_drivers

    path = socket_path(args.socket)
    if path.suffix != ".sock":
        raise DaemonError(f"invalid --socket {path}: a plugin socket's name ends in .sock")
    data_root = Path(args.data_root).absolute()
    try:
        pools = [parse_pool_option(text) for text in args.default_address_pool]
    except CnmError as err:
        raise DaemonError(f"invalid --default-address-pool: {err}") from None
    for directory in (data_root, path.parent):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    owner_pid = os.getpid()
    with locked_file(data_root / "plugin.lock", "data root", f"{owner_pid}\n"):
        claim_socket(path)
        store = SqliteStore(data_root / "plugin.db")
        try:
            drivers = build_served_drivers(default_host_ip=args.ip, address_pools=pools or None)
            try:
                backend = PluginBackend(drivers, store)
                backend.start()
                _serve(backend, path, owner_pid)
            finally:
                drivers.close()
        finally:
            store.close()
    log.info("cnm plugin stopped")
    return 0


def _serve(backend: PluginBackend, path: Path, owner_pid: int) -> None:
    previous_umask = os.umask(0o117)  # the socket is born 0660
    try:
        server = _Server(str(path), backend)
    finally:
        os.umask(previous_umask)
    made = path.lstat()

    def stop(signum: int, _frame: object) -> None:
        if os.getpid() == owner_pid:
            log.info("shutting down", extra={"signal": signal.Signals(signum).name})
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("plugin listening", extra={"socket": str(path), "plugin": path.stem})
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.worker.shutdown()
        try:
            found = path.lstat()
            if (found.st_dev, found.st_ino) == (made.st_dev, made.st_ino):
                path.unlink()
        except FileNotFoundError:
            pass
