"""``cnm version`` and ``cnm info``: what the client is, and what the daemon reports."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Any

from cnm import __version__
from cnm.api import API_VERSION
from cnm.cli import format as fmt
from cnm.cli.client import Client, CliError


def _client_json() -> dict[str, Any]:
    return {
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": "linux",
        "Arch": platform.machine(),
    }


def version(client: Client, args: argparse.Namespace) -> int:
    local = _client_json()
    server: dict[str, Any] | None = None
    error: CliError | None = None
    try:
        server = client.request("GET", "/version")
    except CliError as err:
        error = err
    if args.format:
        print(fmt.render(args.format, {"Client": local, "Server": server}))
    else:
        print("Client:")
        print(f" Version:           {local['Version']}")
        print(f" API version:       {local['ApiVersion']}")
        print(f" Python version:    {local['PythonVersion']}")
        print(f" OS/Arch:           {local['Os']}/{local['Arch']}")
        if server is not None:
            print()
            print(f"Server: {server.get('Platform', {}).get('Name', '')}")
            for component in server.get("Components") or []:
                details = component.get("Details") or {}
                print(f" {component['Name']}:")
                print(f"  Version:          {component['Version']}")
                print(
                    f"  API version:      {details.get('ApiVersion', '')} "
                    f"(minimum version {details.get('MinAPIVersion', '')})"
                )
                print(f"  Runtime:          {details.get('GoVersion', '')}")
                print(f"  OS/Arch:          {details.get('Os', '')}/{details.get('Arch', '')}")
                print(f"  Kernel version:   {details.get('KernelVersion', '')}")
    if error is not None:
        print(error, file=sys.stderr)
        return 1
    return 0


def info(client: Client, args: argparse.Namespace) -> int:
    data = client.request("GET", "/info")
    if args.format:
        print(fmt.render(args.format, data))
        return 0
    pools = data.get("DefaultAddressPools") or []
    lines = [
        "Server:",
        f" Server Version: {data['ServerVersion']}",
        f" Network Plugins: {' '.join(data['Plugins']['Network'])}",
        f" Kernel Version: {data['KernelVersion']}",
        f" Operating System: {data['OperatingSystem']}",
        f" OSType: {data['OSType']}",
        f" Architecture: {data['Architecture']}",
        f" CPUs: {data['NCPU']}",
        f" Total Memory: {data['MemTotal'] / 2**30:.2f}GiB",
        f" Name: {data['Name']}",
        f" ID: {data['ID']}",
        f" Data Root Dir: {data['DockerRootDir']}",
        f" Debug Mode: {fmt.go_string(data['Debug'])}",
    ]
    if pools:
        lines.append(" Default Address Pools:")
        lines += [f"   Base: {p['Base']}, Size: {p['Size']}" for p in pools]
    print("\n".join(lines))
    return 0


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("version", help="show the client and daemon versions")
    p.add_argument("-f", "--format", help="a template such as {{.Server.Version}}")
    p.set_defaults(handler=version)
    p = commands.add_parser("info", help="show daemon-wide information")
    p.add_argument("-f", "--format", help="a template such as {{json .}}")
    p.set_defaults(handler=info)
