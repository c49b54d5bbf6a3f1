"""A small Docker network plugin for the tests: a bridge-like network driver and a simple IPAM
driver, speaking libnetwork's remote protocol over a Unix socket, written without cnm (its kernel work through pyroute2).

    sample_plugin.py --socket PATH --log FILE [--state FILE] [--implements A,B]
                     [--prefix eth] [--scope local] [--choose-mac] [--ipam-base 10.210.0.0/16]
                     [--misbehave Method=BEHAVIOUR ...]

Network driver: CreateNetwork makes a bridge ``tb<10 hex of the network id>`` holding the
gateway; Join makes a veth pair in the plugin's namespace, the host end ``tv<10 hex>`` on the
bridge and the other end ``tc<10 hex>`` handed over as ``SrcName``; Leave and DeleteEndpoint
delete the veth. With ``--choose-mac`` CreateEndpoint answers a MAC of its own when none was
sent. IPAM: pools are /24s carved from ``--ipam-base`` (or the pool asked for), addresses
handed out in order; the address space is ``SampleSpace``.

Every request is logged as one JSON line ``{"method", "body", "accept", "src_in_host"}`` to
the log file (``src_in_host``: for Leave, whether the endpoint's ``tc`` link is back in the
plugin's namespace). State is kept in ``--state`` so a restarted plugin knows its networks.

Behaviours for ``--misbehave``: ``slow`` (answers after 30 s), ``malformed`` (a body that is
not JSON), ``crash`` (the process exits without answering), ``err`` (200 with ``Err``/``Error``
set), ``status500`` (500 with ``{"Err": ...}``), ``404`` (not implemented), ``address`` (for
CreateEndpoint: answers an address of its own although one was sent). It prints "ready" once
it listens and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import ipaddress
import json
import os
import secrets
import signal
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

SLOW_S = 30.0
ADDRESS_SPACE = "SampleSpace"


class Links:
    """The plugin's kernel work, through one netlink socket (pyroute2) in its namespace."""

    def __init__(self) -> None:
        self.ipr = IPRoute()

    def index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def exists(self, name: str) -> bool:
        return self.index(name) is not None

    def add_bridge(self, name: str, gateways: list[str]) -> None:
        self.ipr.link("add", ifname=name, kind="bridge")
        index = self.index(name)
        for gateway in gateways:
            address, prefix = gateway.split("/")
            self.ipr.addr("add", index=index, address=address, prefixlen=int(prefix))
        self.ipr.link("set", index=index, state="up")

    def add_veth(self, host_end: str, other_end: str, bridge: str) -> None:
        self.ipr.link("add", ifname=host_end, kind="veth", peer={"ifname": other_end})
        index = self.index(host_end)
        self.ipr.link("set", index=index, master=self.index(bridge), state="up")

    def delete(self, name: str) -> None:
        index = self.index(name)
        if index is not None:
            with contextlib.suppress(NetlinkError):
                self.ipr.link("del", index=index)


class Plugin:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.state: dict[str, Any] = {"networks": {}, "endpoints": {}, "pools": {}}
        if args.state and Path(args.state).exists():
            self.state = json.loads(Path(args.state).read_text())
        self.misbehave = dict(item.split("=", 1) for item in args.misbehave)
        self.links = Links()

    def save(self) -> None:
        if self.args.state:
            Path(self.args.state).write_text(json.dumps(self.state))

    def log(self, entry: dict[str, Any]) -> None:
        with self.log_lock, open(self.args.log, "a") as log:
            log.write(json.dumps(entry) + "\n")

    # ------------------------------------------------------------------ network driver

    def network_driver(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        networks, endpoints = self.state["networks"], self.state["endpoints"]
        if method == "GetCapabilities":
            return {"Scope": self.args.scope, "ConnectivityScope": self.args.scope}
        if method == "CreateNetwork":
            bridge = "tb" + body["NetworkID"][:10]
            gateways = [d["Gateway"] for d in body.get("IPv4Data") or [] if d.get("Gateway")]
            self.links.add_bridge(bridge, gateways)
            gateway = gateways[0].split("/")[0] if gateways else ""
            networks[body["NetworkID"]] = {"bridge": bridge, "gateway": gateway}
            return {}
        if method == "DeleteNetwork":
            network = networks.pop(body["NetworkID"], None)
            if network is not None:
                self.links.delete(network["bridge"])
            return {}
        if method == "CreateEndpoint":
            interface = body.get("Interface") or {}
            answer: dict[str, Any] = {}
            mac = interface.get("MacAddress") or ""
            if self.args.choose_mac and not mac:
                mac = "02:aa:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))
                answer = {"Interface": {"MacAddress": mac}}
            if self.misbehave.get("CreateEndpoint") == "address":
                answer = {"Interface": {"Address": "10.254.254.254/24"}}
            endpoints[body["EndpointID"]] = {"network": body["NetworkID"], "mac": mac}
            return answer
        if method == "DeleteEndpoint":
            endpoints.pop(body["EndpointID"], None)
            self.links.delete("tv" + body["EndpointID"][:10])
            return {}
        if method == "Join":
            network = networks[body["NetworkID"]]
            eid = body["EndpointID"][:10]
            self.links.add_veth("tv" + eid, "tc" + eid, network["bridge"])
            answer = {
                "InterfaceName": {"SrcName": "tc" + eid, "DstPrefix": self.args.prefix},
                "Gateway": network["gateway"],
            }
            if self.args.static_route:
                answer["StaticRoutes"] = [
                    {"Destination": self.args.static_route, "RouteType": 1, "NextHop": ""}
                ]
            return answer
        if method == "Leave":
            self.links.delete("tv" + body["EndpointID"][:10])
            return {}
        if method == "EndpointOperInfo":
            return {"Value": {"host_interface": "tv" + body["EndpointID"][:10]}}
        if method in (
            "ProgramExternalConnectivity",
            "RevokeExternalConnectivity",
            "DiscoverNew",
            "DiscoverDelete",
        ):
            return {}
        raise LookupError(method)

    # ------------------------------------------------------------------ IPAM

    def ipam_driver(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        pools = self.state["pools"]
        if method == "GetCapabilities":
            return {"RequiresMACAddress": False, "RequiresRequestReplay": False}
        if method == "GetDefaultAddressSpaces":
            return {"LocalDefaultAddressSpace": ADDRESS_SPACE, "GlobalDefaultAddressSpace": "G"}
        if method == "RequestPool":
            if body.get("Pool"):
                subnet = ipaddress.ip_network(body["Pool"])
            else:
                taken = {ipaddress.ip_network(p["subnet"]) for p in pools.values()}
                base = ipaddress.ip_network(self.args.ipam_base)
                subnet = next(s for s in base.subnets(new_prefix=24) if s not in taken)
            pool_id = f"{ADDRESS_SPACE}/{subnet}"
            if pool_id in pools:
                return {"Error": f"pool {subnet} is in use"}
            pools[pool_id] = {"subnet": str(subnet), "used": []}
            return {"PoolID": pool_id, "Pool": str(subnet), "Data": {}}
        if method == "ReleasePool":
            pools.pop(body["PoolID"], None)
            return {}
        if method == "RequestAddress":
            pool = pools.get(body["PoolID"])
            if pool is None:
                return {"Error": f"no pool {body['PoolID']}"}
            subnet = ipaddress.ip_network(pool["subnet"])
            if body.get("Address"):
                address = ipaddress.ip_address(body["Address"])
                if str(address) in pool["used"]:
                    return {"Error": f"address {address} is in use"}
            else:
                address = next(h for h in subnet.hosts() if str(h) not in pool["used"])
            pool["used"].append(str(address))
            return {"Address": f"{address}/{subnet.prefixlen}", "Data": {}}
        if method == "ReleaseAddress":
            pool = pools.get(body["PoolID"])
            if pool is not None and body["Address"] in pool["used"]:
                pool["used"].remove(body["Address"])
            return {}
        raise LookupError(method)


def make_handler(plugin: Plugin) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def reply(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            method = self.path.lstrip("/")
            subsystem, _, name = method.partition(".")
            entry = {"method": method, "body": body, "accept": self.headers.get("Accept")}
            if name == "Leave":
                with plugin.lock:
                    entry["src_in_host"] = plugin.links.exists("tc" + body["EndpointID"][:10])
            plugin.log(entry)
            behaviour = plugin.misbehave.get(name) or plugin.misbehave.get(method)
            if behaviour == "slow":
                time.sleep(SLOW_S)
            if behaviour == "crash":
                os._exit(3)
            if behaviour == "malformed":
                return self.reply(200, b'{"Interface": {"Address": ')
            if behaviour == "404":
                return self.reply(404, b"404 page not found\n")
            error_key = "Error" if subsystem == "IpamDriver" else "Err"
            if behaviour == "err":
                return self.reply(200, json.dumps({error_key: f"{name} refused"}).encode())
            if behaviour == "status500":
                return self.reply(500, json.dumps({"Err": f"{name} broke"}).encode())
            try:
                with plugin.lock:
                    if method == "Plugin.Activate":
                        answer: dict[str, Any] = {"Implements": plugin.args.implements.split(",")}
                    elif subsystem == "NetworkDriver" and "NetworkDriver" in plugin.args.implements:
                        answer = plugin.network_driver(name, body)
                    elif subsystem == "IpamDriver" and "IpamDriver" in plugin.args.implements:
                        answer = plugin.ipam_driver(name, body)
                    else:
                        raise LookupError(method)
                    plugin.save()
            except LookupError:
                return self.reply(404, b"404 page not found\n")
            except (NetlinkError, KeyError) as err:
                return self.reply(500, json.dumps({"Err": f"{name}: {err}"}).encode())
            self.reply(200, json.dumps(answer).encode())

    return Handler


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--state")
    parser.add_argument("--implements", default="NetworkDriver")
    parser.add_argument("--prefix", default="eth")
    parser.add_argument("--scope", default="local")
    parser.add_argument("--choose-mac", action="store_true")
    parser.add_argument("--static-route")
    parser.add_argument("--ipam-base", default="10.210.0.0/16")
    parser.add_argument("--misbehave", action="append", default=[])
    args = parser.parse_args()
    plugin = Plugin(args)
    Path(args.socket).parent.mkdir(parents=True, exist_ok=True)
    Path(args.socket).unlink(missing_ok=True)
    server = Server(args.socket, make_handler(plugin))

    def stop(*_: object) -> None:
        Path(args.socket).unlink(missing_ok=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
