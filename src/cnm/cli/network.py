"""``cnm network create|ls|inspect|rm|prune|connect|disconnect``: docker's flags and output.

Like the docker CLI, ``create`` pairs every ``--gateway``, ``--ip-range`` and ``--aux-address``
with the ``--subnet`` that contains it (docker's ``consolidateIpam``), so a gateway outside every
subnet is refused here before any request is sent, with docker's message.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from typing import Any
from urllib.parse import quote

from cnm.cli import format as fmt
from cnm.cli.client import ApiError, Client, CliError

LS_TABLE = "table {{.ID}}\\t{{.Name}}\\t{{.Driver}}\\t{{.Scope}}"
LS_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)


# ----------------------------------------------------------------------------- parsing flags


def key_values(items: list[str], what: str) -> dict[str, str]:
    """``k=v`` flags as a map; a bare ``k`` means an empty value, as in docker."""
    result = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise CliError(f"invalid {what} {item!r}: expected key=value")
        result[key] = value
    return result


def filter_args(items: list[str]) -> str:
    """``--filter k=v`` flags as the API's ``filters`` JSON (docker's ``filters.ParseFlag``)."""
    filters: dict[str, dict[str, bool]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key.strip().lower(), {})[value.strip()] = True
    return json.dumps(filters, separators=(",", ":"))


def _subnet_matches(subnet: str, data: str) -> bool:
    try:
        network = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise CliError(f"invalid subnet {subnet}: not a CIDR") from None
    try:
        address = ipaddress.ip_interface(data).ip
    except ValueError:
        if "/" in data:
            raise CliError(f"invalid CIDR address: {data}") from None
        return False
    return address in network


def consolidate_ipam(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """Docker's pairing of --ip-range, --gateway and --aux-address with their --subnet."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise CliError("every ip-range or gateway must have a corresponding subnet")
    configs: dict[str, dict[str, Any]] = {}
    for subnet in subnets:
        for other in configs:
            if _subnet_matches(subnet, other) or _subnet_matches(other, subnet):
                raise CliError("multiple overlapping subnet configuration is not supported")
        configs[subnet] = {"Subnet": subnet, "AuxiliaryAddresses": {}}
    for field, values, what in (("IPRange", ranges, "range"), ("Gateway", gateways, "gateway")):
        for value in values:
            matched = False
            for subnet in subnets:
                if not _subnet_matches(subnet, value):
                    continue
                if field in configs[subnet]:
                    plural = "ranges" if what == "range" else "gateways"
                    preposition = "on" if what == "range" else "for"
                    raise CliError(
                        f"cannot configure multiple {plural} ({value}, {configs[subnet][field]}) "
                        f"{preposition} the same subnet ({subnet})"
                    )
                configs[subnet][field] = value
                matched = True
            if not matched:
                raise CliError(f"no matching subnet for {what} {value}")
    for name, address in aux.items():
        matched = False
        for subnet in subnets:
            if _subnet_matches(subnet, address):
                configs[subnet]["AuxiliaryAddresses"][name] = address
                matched = True
        if not matched:
            raise CliError(f"no matching subnet for aux-address {address}")
    return list(configs.values())


# ----------------------------------------------------------------------------- commands


def create(client: Client, args: argparse.Namespace) -> int:
    body = {
        "Name": args.name,
        "Driver": args.driver,
        "EnableIPv6": args.ipv6,
        "IPAM": {
            "Driver": args.ipam_driver,
            "Config": consolidate_ipam(
                args.subnet,
                args.ip_range,
                args.gateway,
                key_values(args.aux_address, "aux-address"),
            ),
            "Options": key_values(args.ipam_opt, "ipam-opt"),
        },
        "Internal": args.internal,
        "Attachable": args.attachable,
        "Options": key_values(args.opt, "option"),
        "Labels": key_values(args.label, "label"),
    }
    print(client.request("POST", "/networks/create", body=body)["Id"])
    return 0


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _go_time(created: str) -> str:
    """RFC 3339 as Go's ``time.Time.String`` prints it (docker's CreatedAt column)."""
    match = re.fullmatch(r"(.{10})T(.{8})(?:\.(\d+))?Z", created)
    if match is None:
        return created
    fraction = (match[3] or "").rstrip("0")
    return f"{match[1]} {match[2]}{'.' + fraction if fraction else ''} +0000 UTC"


def _ls_row(network: dict[str, Any], no_trunc: bool) -> dict[str, Any]:
    labels = network.get("Labels") or {}
    return {
        "ID": network["Id"] if no_trunc else network["Id"][:12],
        "Name": network["Name"],
        "Driver": network["Driver"],
        "Scope": network["Scope"],
        "IPv6": fmt.go_string(network.get("EnableIPv6", False)),
        "Internal": fmt.go_string(network.get("Internal", False)),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": _go_time(network.get("Created", "")),
    }


def ls(client: Client, args: argparse.Namespace) -> int:
    query = {"filters": filter_args(args.filter)} if args.filter else None
    networks = client.request("GET", "/networks", query=query)
    rows = [
        _ls_row(n, args.no_trunc) for n in sorted(networks, key=lambda n: _natural_key(n["Name"]))
    ]
    template = "{{.ID}}" if args.quiet else (args.format or LS_TABLE)
    fmt.print_rows(rows, template, LS_TABLE, LS_HEADERS)
    return 0


def inspect(client: Client, args: argparse.Namespace) -> int:
    found = []
    errors = []
    query = {"verbose": "true"} if args.verbose else None
    for ref in args.networks:
        try:
            found.append(client.request("GET", f"/networks/{quote(ref, safe='')}", query=query))
        except ApiError as err:
            errors.append(str(err))
    return fmt.print_inspected(found, errors, args.format)


def rm(client: Client, args: argparse.Namespace) -> int:
    status = 0
    for ref in args.networks:
        try:
            client.request("DELETE", f"/networks/{quote(ref, safe='')}")
        except ApiError as err:
            if args.force and err.status == 404:
                continue
            print(err, file=sys.stderr)
            status = 1
            continue
        print(ref)
    return status


def prune(client: Client, args: argparse.Namespace) -> int:
    if not args.force:
        print(PRUNE_WARNING, end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    query = {"filters": filter_args(args.filter)}
    if sys.stderr.isatty():
        report = _prune_with_progress(client, query)
    else:
        report = client.request("POST", "/networks/prune", query=query)
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))
    return 0


def _prune_with_progress(client: Client, query: dict[str, str]) -> dict[str, Any]:
    """The daemon's prune, with a count of the networks deleted so far on the terminal."""
    response = client.open(
        "POST", "/networks/prune", query={**query, "progress": "1"}, forever=True
    )
    report: dict[str, Any] = {}
    deleted = 0
    try:
        for line in response:
            message = json.loads(line)
            if "error" in message:
                raise CliError(f"Error response from daemon: {message['error']}")
            if message.get("status") == "Deleted":
                deleted += 1
                print(f"\rdeleting networks: {deleted} deleted ({message['Name']})\x1b[K",
                      end="", file=sys.stderr, flush=True)  # fmt: skip
            else:
                report = message
    finally:
        response.close()
        if deleted:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)
    return report


def connect(client: Client, args: argparse.Namespace) -> int:
    endpoint: dict[str, Any] = {"Aliases": args.alias or None}
    if args.ip or args.ip6:
        endpoint["IPAMConfig"] = {"IPv4Address": args.ip or "", "IPv6Address": args.ip6 or ""}
    body = {"Container": args.container, "EndpointConfig": endpoint}
    client.request("POST", f"/networks/{quote(args.network, safe='')}/connect", body=body)
    return 0


def disconnect(client: Client, args: argparse.Namespace) -> int:
    body = {"Container": args.container, "Force": args.force}
    client.request("POST", f"/networks/{quote(args.network, safe='')}/disconnect", body=body)
    return 0


# ----------------------------------------------------------------------------- parser


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    network = commands.add_parser("network", help="manage networks")
    network.set_defaults(handler=None, parser=network)
    sub = network.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("create", help="create a network")
    p.add_argument("name", metavar="NETWORK")
    p.add_argument("-d", "--driver", default="bridge", help="driver (bridge)")
    p.add_argument("--subnet", action="append", default=[], help="subnet in CIDR format")
    p.add_argument("--gateway", action="append", default=[], help="gateway of a subnet")
    p.add_argument("--ip-range", action="append", default=[], help="allocate from a sub-range")
    p.add_argument(
        "--aux-address", action="append", default=[], metavar="NAME=IP", help="reserved address"
    )
    p.add_argument("--ipv6", action="store_true", help="enable IPv6")
    p.add_argument("--internal", action="store_true", help="restrict external access")
    p.add_argument("--attachable", action="store_true", help="allow manual container attachment")
    p.add_argument("-o", "--opt", action="append", default=[], metavar="K=V", help="driver option")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="network label")
    p.add_argument("--ipam-driver", default="default", help="IPAM driver (default)")
    p.add_argument("--ipam-opt", action="append", default=[], metavar="K=V", help="IPAM option")
    p.set_defaults(handler=create)

    p = sub.add_parser("ls", aliases=["list"], help="list networks")
    p.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="K=V", help="filter")
    p.add_argument("--format", help="table, json, or a template such as {{.Name}}")
    p.set_defaults(handler=ls)

    p = sub.add_parser("inspect", help="show networks in detail")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--format", help="json, or a template such as {{json .IPAM}}")
    p.add_argument("-v", "--verbose", action="store_true", help="verbose output")
    p.set_defaults(handler=inspect)

    p = sub.add_parser("rm", aliases=["remove"], help="remove networks")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--force", action="store_true", help="ignore networks that do not exist")
    p.set_defaults(handler=rm)

    p = sub.add_parser("connect", help="connect a container to a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--alias", action="append", default=[], help="a network-scoped alias")
    p.add_argument("--ip", help="IPv4 address (e.g. 172.30.100.104)")
    p.add_argument("--ip6", help="IPv6 address (e.g. 2001:db8::33)")
    p.set_defaults(handler=connect)

    p = sub.add_parser("disconnect", help="disconnect a container from a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="force the disconnection")
    p.set_defaults(handler=disconnect)

    p = sub.add_parser("prune", help="remove all unused networks")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], metavar="K=V", help="filter")
    p.set_defaults(handler=prune)
