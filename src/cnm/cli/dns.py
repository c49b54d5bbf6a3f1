"""``cnm dns lookup`` and ``cnm dns stats``: what a container's query would get from the
embedded resolver and why, and the resolver's counters."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cnm.cli import format as fmt
from cnm.cli.client import Client


def _render_lookup(data: dict[str, Any]) -> str:
    lines = [f"{data['Container']} asks {data['Name']} {data['Type']}: {data['Source']}"]
    lines.append(f"  why: {data['Why']}")
    for record in data.get("Records", []):
        lines.append(f"  record: container {record['Container']} ({record['Matched']})")
    if "Nameservers" in data:
        lines.append(f"  nameservers: {' '.join(data['Nameservers']) or '(none)'}")
    if "Upstreams" in data:
        lines.append(f"  upstreams: {' '.join(data['Upstreams']) or '(none)'}")
    for attempt in data.get("Tries", []):
        lines.append(
            f"  tried {attempt['Upstream']} over {attempt['Transport']}: {attempt['Result']}"
        )
    if "Rcode" in data:
        truncated = " (truncated)" if data.get("Truncated") else ""
        lines.append(f"  answer: {data['Rcode']}{truncated}")
        lines += [f"    {line}" for line in data.get("Answers", [])]
    return "\n".join(lines)


def _show(data: dict[str, Any], template: str | None, plain: str) -> None:
    if template == "json":
        print(json.dumps(data, indent=4))
    elif template:
        print(fmt.render(template, data))
    else:
        print(plain)


def lookup(client: Client, args: argparse.Namespace) -> int:
    data = client.request(
        "GET",
        "/cnm/dns/lookup",
        query={"container": args.container, "name": args.name, "type": args.type},
    )
    _show(data, args.format, _render_lookup(data))
    return 0


def stats(client: Client, args: argparse.Namespace) -> int:
    data = client.request("GET", "/cnm/metrics")["DNS"]
    _show(data, args.format, json.dumps(data, indent=4))
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("dns", help="inspect the embedded DNS resolver")
    group.set_defaults(handler=None, parser=group)
    sub = group.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("lookup", help="show what a container would get for a name, and why")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-t", "--type", default="A", help="record type (A)")
    p.add_argument("-f", "--format", help="json, or a template such as {{.Rcode}}")
    p.set_defaults(handler=lookup)

    p = sub.add_parser("stats", help="show the resolver's query counters")
    p.add_argument("-f", "--format", help="json, or a template such as {{.Queries.udp}}")
    p.set_defaults(handler=stats)
