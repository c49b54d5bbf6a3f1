"""``cnm topology`` and ``cnm explain``: the picture of the network, and why A can or cannot
reach B.

``cnm topology`` asks the daemon for the topology (``GET /cnm/topology``) and renders it here
(DOT needs nothing; SVG and PNG need Graphviz's ``dot``). ``cnm explain`` prints the daemon's
answer (``GET /cnm/explain``) and exits 0 when A reaches B, 1 when it does not, so scripts and
tests can branch on it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from cnm.cli.client import Client, CliError

FORMATS = ("dot", "svg", "png")


def topology(client: Client, args: argparse.Namespace) -> int:
    from graphviz import ExecutableNotFound

    from cnm.observe.dot import render
    from cnm.observe.topology import Topology

    data = client.request("GET", "/cnm/topology")
    if args.format == "json":
        rendered = (json.dumps(data, indent=4) + "\n").encode()
    else:
        try:
            rendered = render(Topology.from_dict(data), args.format)
        except ExecutableNotFound:
            raise CliError(
                f"cannot render {args.format}: Graphviz's dot is not installed "
                "(apt-get install graphviz); --format dot needs nothing"
            ) from None
        except (OSError, subprocess.CalledProcessError) as err:
            raise CliError(f"cannot render {args.format}: {err}") from None
    if args.output in (None, "-"):
        if args.format == "png" and sys.stdout.isatty():
            raise CliError("refusing to write PNG to a terminal: use -o FILE")
        sys.stdout.buffer.write(rendered)
        sys.stdout.flush()
    else:
        try:
            with open(args.output, "wb") as out:
                out.write(rendered)
        except OSError as err:
            raise CliError(f"cannot write {args.output}: {err.strerror}") from None
    return 0


def render_explanation(data: dict[str, Any]) -> str:
    port = f":{data['Port']}/{data['Proto']}" if data.get("Port") else ""
    verdict = "reachable" if data["Reachable"] else "unreachable"
    lines = [f"{data['Source']} -> {data['Target']}{port} ({data['Address'] or '?'}): {verdict}"]
    lines.append(f"  {data['Reason']}")
    dns = data.get("DNS")
    if dns:
        answer = dns["Answer"] or "no answer"
        lines.append(f"  dns: {dns['Name']} -> {answer}: {dns['Why']}")
    lines.append("  path:")
    for step in data["Path"]:
        mark = {"accept": "+", "drop": "x"}.get(step["verdict"], "-")
        lines.append(f"    {mark} [{step['where']}] {step['text']}")
    rule = data.get("DecidingRule")
    if rule:
        handle = f"handle {rule['handle']}" if rule["handle"] is not None else "policy"
        where = f"{rule['family']} {rule['table']} {rule['chain']} {handle}"
        lines.append(f"  deciding rule: {where}: {rule['text']}")
    for suggestion in data.get("Suggestions", []):
        lines.append(f"  would change it: {suggestion}")
    return "\n".join(lines)


def explain(client: Client, args: argparse.Namespace) -> int:
    query = {"from": args.source, "to": args.target}
    if args.ipv6:
        query["ipv6"] = "1"
    data = client.request("GET", "/cnm/explain", query=query)
    if args.format == "json":
        print(json.dumps(data, indent=4))
    else:
        print(render_explanation(data))
    return 0 if data["Reachable"] else 1


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("topology", help="print the topology as DOT, SVG or PNG (Graphviz)")
    p.add_argument("--format", choices=[*FORMATS, "json"], default="dot", help="(dot)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(handler=topology)

    p = commands.add_parser(
        "explain",
        help="whether A can reach B and why (exit 0: reachable, 1: not)",
        description="A and B: a container (name or id), 'host', or an address; "
        "B may carry :port[/proto] ([v6]:port for IPv6 addresses).",
    )
    p.add_argument("source", metavar="A")
    p.add_argument("target", metavar="B[:PORT[/PROTO]]")
    p.add_argument("-6", "--ipv6", action="store_true", help="use B's IPv6 address")
    p.add_argument("--format", choices=["json"], default=None, help="print the answer as JSON")
    p.set_defaults(handler=explain)
