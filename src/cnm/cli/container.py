"""``cnm run|create|start|stop|kill|restart|rm|ps|inspect|logs|exec|port|rename``.

Docker's flags and output, as a client of the daemon's API. ``run`` and ``create`` take
``[OPTIONS] IMAGE [COMMAND...]``, or ``[OPTIONS] -- COMMAND...``: a ``--`` where the image would
be means no image, and the command runs on the host's filesystem (the reserved image
``cnm/host``) in a sandbox of its own, with the sandbox's hosts, resolv.conf and hostname.

A foreground ``run`` does what the docker CLI does: create, ask to wait for the next exit (or
the removal, with ``--rm``: the daemon removes it), attach, start; it copies the output until
the container ends and exits with the container's exit code. ``-i`` sends our stdin to the
container (its end closes the container's stdin); ``-t`` gives the container a terminal, whose
output comes as one raw stream. With both on a terminal (``run -it``, ``exec -it``) ours is put
in raw mode while attached (keys, Ctrl-C included, go to the container) and its size follows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import quote

from cnm.api.timefmt import human_duration
from cnm.cli import format as fmt
from cnm.cli.client import ApiError, Client, CliError, Hijacked, frames

HOST_IMAGE = "cnm/host"  # the runtime's reserved image name: the host's filesystem
PS_TABLE = (
    "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}"
    "\\t{{.Names}}"
)
PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "RunningFor": "CREATED",
    "CreatedAt": "CREATED AT",
    "Status": "STATUS",
    "Ports": "PORTS",
    "Names": "NAMES",
    "State": "STATE",
    "Networks": "NETWORKS",
    "Labels": "LABELS",
}
_PUBLISH = re.compile(
    r"(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>\d*(?:-\d+)?):)?"
    r"(?P<port>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?"
)


def _path(ref: str) -> str:
    return quote(ref, safe="")


# ----------------------------------------------------------------------------- create body


def parse_publish(spec: str) -> tuple[str, dict[str, str]]:
    """``[ip:][hostPort:]containerPort[/proto]`` -> ("80/tcp", {"HostIp", "HostPort"})."""
    match = _PUBLISH.fullmatch(spec)
    if match is None:
        raise CliError(f"invalid publish spec {spec!r}: expected [ip:][hostPort:]port[/proto]")
    ip = (match["ip"] or "").strip("[]")
    port = f"{match['port']}/{match['proto'] or 'tcp'}"
    return port, {"HostIp": ip, "HostPort": match["host"] or ""}


def parse_env(items: list[str]) -> list[str]:
    """``-e K=V``; ``-e K`` takes K from this environment (and is dropped if unset)."""
    env = []
    for item in items:
        if "=" in item:
            env.append(item)
        elif item in os.environ:
            env.append(f"{item}={os.environ[item]}")
    return env


def split_image(words: list[str]) -> tuple[str, list[str]]:
    """IMAGE [COMMAND...] or -- COMMAND... (no image: the host's filesystem)."""
    if not words:
        raise CliError('"run" and "create" need an image, or -- and a command (see --help)')
    if words[0] == "--":
        if len(words) == 1:
            raise CliError("no command after --: give the command to run on the host")
        return HOST_IMAGE, words[1:]
    return words[0], words[1:]


def create_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /containers/create`` body for run/create's flags."""
    image, command = split_image(args.words)
    networks = args.network or ["default"]
    mode = networks[0]
    exposed: dict[str, dict[str, Any]] = {normalize_port(p): {} for p in args.expose}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in args.publish:
        port, binding = parse_publish(spec)
        bindings.setdefault(port, []).append(binding)
        exposed[port] = {}
    endpoints: dict[str, Any] = {}
    if mode not in ("default", "host", "none") and not mode.startswith("container:"):
        first: dict[str, Any] = {"Aliases": args.network_alias or None}
        if args.ip or args.ip6:
            first["IPAMConfig"] = {"IPv4Address": args.ip or "", "IPv6Address": args.ip6 or ""}
        if args.mac_address:
            first["MacAddress"] = args.mac_address
        endpoints[mode] = first
        for name in networks[1:]:
            endpoints[name] = {}
    elif args.network_alias or args.ip or args.ip6 or args.mac_address:
        raise CliError(
            "--network-alias, --ip, --ip6 and --mac-address need a user-defined --network"
        )
    attach_stdin = args.interactive and not getattr(args, "detach", False)
    return {
        "Hostname": args.hostname or "",
        "Domainname": args.domainname or "",
        "Env": parse_env(args.env),
        "Cmd": command or None,
        "Entrypoint": [args.entrypoint] if args.entrypoint else None,
        "Image": image,
        "WorkingDir": args.workdir or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": not getattr(args, "detach", True),
        "AttachStderr": not getattr(args, "detach", True),
        "Tty": args.tty,
        "OpenStdin": args.interactive,
        "StdinOnce": attach_stdin,  # as the docker CLI: its first attached client's input
        "ExposedPorts": exposed,
        "Labels": _labels(args.label),
        "HostConfig": {
            "NetworkMode": mode,
            "PortBindings": bindings,
            "PublishAllPorts": args.publish_all,
            "Dns": args.dns,
            "DnsSearch": args.dns_search,
            "DnsOptions": args.dns_option,
            "ExtraHosts": [h.replace("=", ":", 1) for h in args.add_host],
            "AutoRemove": args.rm,
            "ConsoleSize": list(_terminal_size()) if args.tty else [0, 0],
        },
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    }


def _terminal_size() -> tuple[int, int]:
    """Our terminal's rows and columns ((0, 0) when stdout is not a terminal)."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError):
        return 0, 0
    return size.lines, size.columns


def normalize_port(spec: str) -> str:
    return spec if "/" in spec else f"{spec}/tcp"


def _labels(items: list[str]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in items)


def _create(client: Client, args: argparse.Namespace) -> str:
    query = {"name": args.name} if args.name else None
    created = client.request("POST", "/containers/create", query=query, body=create_body(args))
    for warning in created.get("Warnings") or []:
        print(f"WARNING: {warning}", file=sys.stderr)
    return str(created["Id"])


# ----------------------------------------------------------------------------- run, attach


def pump(received: Iterator[tuple[int, bytes]]) -> None:
    """Copy the container's frames to our stdout and stderr."""
    outputs = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    for number, data in received:
        out = outputs.get(number, sys.stdout.buffer)
        out.write(data)
        out.flush()


def forward_stdin(stream: Hijacked) -> None:
    """Our stdin to the daemon, then a half-close; in a thread (the output runs meanwhile)."""

    def copy() -> None:
        try:
            while data := os.read(sys.stdin.fileno(), 1 << 16):
                stream.send(data)
            stream.close_write()
        except OSError:
            pass

    threading.Thread(target=copy, daemon=True).start()


def _exit_code(response: Any) -> int:
    result = json.loads(response.read() or b"{}")
    error = result.get("Error") or {}
    if error.get("Message"):
        print(f"Error waiting for container: {error['Message']}", file=sys.stderr)
        return 125
    return int(result.get("StatusCode", 125))


@contextmanager
def _raw_terminal(active: bool) -> Iterator[None]:
    """Our terminal in raw mode (every key goes to the container's terminal), restored after."""
    if not active:
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _follow_size(client: Client, path: str) -> None:
    """Give the terminal of the container or exec at ``path`` our size now and whenever ours
    changes (SIGWINCH)."""

    def resize(*_: object) -> None:
        height, width = _terminal_size()
        if height and width:
            with suppress(CliError):  # it ended meanwhile
                client.request("POST", f"{path}/resize", query={"h": str(height), "w": str(width)})

    resize()
    signal.signal(signal.SIGWINCH, resize)


def run(client: Client, args: argparse.Namespace) -> int:
    if args.interactive and args.tty and not args.detach and not sys.stdin.isatty():
        raise CliError("the input device is not a TTY")
    container_id = _create(client, args)
    path = f"/containers/{container_id}"
    if args.detach:
        client.request("POST", f"{path}/start")
        print(container_id)
        return 0
    condition = "removed" if args.rm else "next-exit"
    waiting = client.open("POST", f"{path}/wait", query={"condition": condition}, forever=True)
    query = {"stream": "1", "stdout": "1", "stderr": "1"}
    if args.interactive:
        query["stdin"] = "1"
    stream = client.hijack("POST", f"{path}/attach", query=query)
    try:
        with _raw_terminal(args.interactive and args.tty):
            if args.interactive:
                forward_stdin(stream)
            client.request("POST", f"{path}/start")
            if args.tty and sys.stdout.isatty():
                _follow_size(client, path)
            pump(stream.frames(multiplexed=not args.tty))
    finally:
        stream.close()
    return _exit_code(waiting)


def create(client: Client, args: argparse.Namespace) -> int:
    print(_create(client, args))
    return 0


def start(client: Client, args: argparse.Namespace) -> int:
    if args.attach:
        if len(args.containers) != 1:
            raise CliError("you cannot start and attach multiple containers at once")
        ref = args.containers[0]
        info = client.request("GET", f"/containers/{_path(ref)}/json")
        path = f"/containers/{info['Id']}"
        waiting = client.open(
            "POST", f"{path}/wait", query={"condition": "next-exit"}, forever=True
        )
        stream = client.hijack(
            "POST", f"{path}/attach", query={"stream": "1", "stdout": "1", "stderr": "1"}
        )
        try:
            client.request("POST", f"{path}/start")
            pump(stream.frames(multiplexed=not info["Config"]["Tty"]))
        finally:
            stream.close()
        return _exit_code(waiting)
    return _each(client, args.containers, lambda ref: client.request("POST", f"{ref}/start"))


def _each(client: Client, refs: list[str], action: Any) -> int:
    """Docker's pattern for commands on several containers: print each done, report each
    failure, exit 1 if any failed."""
    status = 0
    for ref in refs:
        try:
            action(f"/containers/{_path(ref)}")
        except ApiError as err:
            print(err, file=sys.stderr)
            status = 1
            continue
        print(ref)
    return status


def stop(client: Client, args: argparse.Namespace) -> int:
    query = {"t": str(args.time)} if args.time is not None else None
    return _each(
        client, args.containers, lambda p: client.request("POST", f"{p}/stop", query=query)
    )


def restart(client: Client, args: argparse.Namespace) -> int:
    query = {"t": str(args.time)} if args.time is not None else None
    return _each(
        client, args.containers, lambda p: client.request("POST", f"{p}/restart", query=query)
    )


def kill(client: Client, args: argparse.Namespace) -> int:
    query = {"signal": args.signal}
    return _each(
        client, args.containers, lambda p: client.request("POST", f"{p}/kill", query=query)
    )


def rm(client: Client, args: argparse.Namespace) -> int:
    query = {"force": "1"} if args.force else None
    return _each(client, args.containers, lambda p: client.request("DELETE", p, query=query))


def rename(client: Client, args: argparse.Namespace) -> int:
    client.request(
        "POST", f"/containers/{_path(args.container)}/rename", query={"name": args.new_name}
    )
    return 0


# ----------------------------------------------------------------------------- ps, inspect


def _ago(created: int, now: float) -> str:
    return human_duration(now - created) + " ago"


def format_ports(ports: list[dict[str, Any]]) -> str:
    """Docker's PORTS column: "0.0.0.0:8080->80/tcp, 53/udp"."""
    shown = []
    for port in sorted(ports, key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""))):
        target = f"{port['PrivatePort']}/{port['Type']}"
        if "PublicPort" in port:
            shown.append(f"{_host(port.get('IP'))}:{port['PublicPort']}->{target}")
        else:
            shown.append(target)
    return ", ".join(dict.fromkeys(shown))


def _ps_row(container: dict[str, Any], no_trunc: bool, now: float) -> dict[str, Any]:
    command = container["Command"]
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    return {
        "ID": container["Id"] if no_trunc else container["Id"][:12],
        "Image": container["Image"],
        "Command": json.dumps(command, ensure_ascii=False),
        "RunningFor": _ago(container["Created"], now),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(container["Created"])),
        "Status": container["Status"],
        "State": container["State"],
        "Ports": format_ports(container.get("Ports") or []),
        "Names": ",".join(n.lstrip("/") for n in container["Names"]),
        "Networks": ",".join(sorted((container["NetworkSettings"] or {}).get("Networks") or {})),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted((container["Labels"] or {}).items())),
    }


def ps(client: Client, args: argparse.Namespace) -> int:
    from cnm.cli.network import filter_args

    query: dict[str, str] = {}
    if args.all:
        query["all"] = "1"
    if args.last is not None:
        query["limit"] = str(args.last)
    if args.latest:
        query["limit"] = "1"
    if args.filter:
        query["filters"] = filter_args(args.filter)
    containers = client.request("GET", "/containers/json", query=query)
    now = time.time()
    rows = [_ps_row(c, args.no_trunc, now) for c in containers]
    template = "{{.ID}}" if args.quiet else (args.format or PS_TABLE)
    fmt.print_rows(rows, template, PS_TABLE, PS_HEADERS)
    return 0


def inspect(client: Client, args: argparse.Namespace) -> int:
    """Containers, or images when ``--type image`` or when no container has the name."""
    found = []
    errors = []
    for ref in args.objects:
        kinds = [args.type] if args.type else ["container", "image"]
        for kind in kinds:
            path = f"/containers/{_path(ref)}/json" if kind == "container" else None
            try:
                if path is None:
                    found.append(client.request("GET", f"/images/{_path(ref)}/json"))
                else:
                    found.append(client.request("GET", path))
                break
            except ApiError as err:
                if err.status != 404:
                    errors.append(str(err))
                    break
        else:
            errors.append(f"Error: No such object: {ref}")
    return fmt.print_inspected(found, errors, args.format)


def port(client: Client, args: argparse.Namespace) -> int:
    info = client.request("GET", f"/containers/{_path(args.container)}/json")
    ports: dict[str, Any] = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if args.port:
        wanted = normalize_port(args.port)
        if wanted not in ports or not ports[wanted]:
            raise CliError(f"Error: No public port '{wanted}' published for {args.container}")
        for binding in ports[wanted]:
            print(f"{_host(binding.get('HostIp'))}:{binding['HostPort']}")
        return 0
    for key, bindings in sorted(ports.items()):
        for binding in bindings or []:
            print(f"{key} -> {_host(binding.get('HostIp'))}:{binding['HostPort']}")
    return 0


def _host(ip: str | None) -> str:
    """A published port's host address as Docker prints it: [::] for IPv6."""
    return f"[{ip}]" if ip and ":" in ip else ip or "0.0.0.0"


# ----------------------------------------------------------------------------- logs, exec


def logs(client: Client, args: argparse.Namespace) -> int:
    info = client.request("GET", f"/containers/{_path(args.container)}/json")
    query = {"stdout": "1", "stderr": "1", "tail": args.tail}
    if args.follow:
        query["follow"] = "1"
    if args.timestamps:
        query["timestamps"] = "1"
    response = client.open(
        "GET", f"/containers/{info['Id']}/logs", query=query, forever=args.follow
    )
    try:
        pump(frames(response, multiplexed=not info["Config"]["Tty"]))
    finally:
        response.close()
    return 0


def exec_(client: Client, args: argparse.Namespace) -> int:
    if not args.command:
        raise CliError('"exec" requires a container and a command')
    body = {
        "AttachStdin": args.interactive and not args.detach,
        "AttachStdout": not args.detach,
        "AttachStderr": not args.detach,
        "Tty": args.tty,
        "ConsoleSize": list(_terminal_size()) if args.tty else [0, 0],
        "Env": parse_env(args.env),
        "WorkingDir": args.workdir or "",
        "Cmd": args.command,
    }
    created = client.request("POST", f"/containers/{_path(args.container)}/exec", body=body)
    exec_id = created["Id"]
    if args.detach:
        client.request("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": args.tty})
        return 0
    stream = client.hijack(
        "POST", f"/exec/{exec_id}/start", body={"Detach": False, "Tty": args.tty}
    )
    try:
        with _raw_terminal(args.interactive and args.tty and sys.stdin.isatty()):
            if args.interactive:
                forward_stdin(stream)
            if args.tty and sys.stdout.isatty():
                _follow_size(client, f"/exec/{exec_id}")
            pump(stream.frames(multiplexed=not args.tty))
    finally:
        stream.close()
    return int(client.request("GET", f"/exec/{exec_id}/json").get("ExitCode") or 0)


# ----------------------------------------------------------------------------- parsers


def _container_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument(
        "--network",
        "--net",
        action="append",
        default=[],
        help="connect to a network: a name, host, none or container:<name|id> (repeatable)",
    )
    p.add_argument(
        "--network-alias",
        "--net-alias",
        action="append",
        default=[],
        metavar="ALIAS",
        help="a network-scoped alias on the first --network",
    )
    p.add_argument("--ip", help="IPv4 address on the first --network (e.g. 172.30.100.104)")
    p.add_argument("--ip6", help="IPv6 address on the first --network (e.g. 2001:db8::33)")
    p.add_argument("--mac-address", help="MAC address on the first --network")
    p.add_argument("-h", "--hostname", help="container host name")
    p.add_argument("--domainname", help="container NIS domain name")
    p.add_argument("--dns", action="append", default=[], help="a DNS server")
    p.add_argument("--dns-search", action="append", default=[], help="a DNS search domain")
    p.add_argument("--dns-option", action="append", default=[], help="a DNS option")
    p.add_argument(
        "--add-host", action="append", default=[], metavar="HOST:IP", help="an /etc/hosts entry"
    )
    p.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:]HOSTPORT:PORT",
        help="publish a container port on the host",
    )
    p.add_argument("-P", "--publish-all", action="store_true", help="publish all exposed ports")
    p.add_argument("--expose", action="append", default=[], metavar="PORT", help="expose a port")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="set a variable")
    p.add_argument("-l", "--label", action="append", default=[], metavar="K=V", help="a label")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("--entrypoint", help="overwrite the image's entrypoint")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open, send ours")
    p.add_argument("-t", "--tty", action="store_true", help="give the container a terminal")
    p.add_argument(
        "words",
        nargs=argparse.REMAINDER,
        metavar="IMAGE [COMMAND...] | -- COMMAND...",
        help=f"an image and its command, or -- and a command run on the host ({HOST_IMAGE})",
    )


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    usage_note = (
        "IMAGE [COMMAND...] runs an imported image; -- COMMAND... (no image) runs the command "
        f"on the host's filesystem (the reserved image {HOST_IMAGE}) in a sandbox of its own, "
        "e.g. cnm run --name py --network my-net -- python3 -m http.server 8000"
    )
    p = commands.add_parser(
        "run", help="create and start a container", description=usage_note, add_help=False
    )
    p.add_argument("--help", action="help", help="show this help message and exit")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    _container_options(p)
    p.set_defaults(handler=run)

    p = commands.add_parser(
        "create", help="create a container", description=usage_note, add_help=False
    )
    p.add_argument("--help", action="help", help="show this help message and exit")
    _container_options(p)
    p.set_defaults(handler=create)

    p = commands.add_parser("start", help="start containers")
    p.add_argument("-a", "--attach", action="store_true", help="attach to the output")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(handler=start)

    p = commands.add_parser("stop", help="stop containers (SIGTERM, then SIGKILL)")
    p.add_argument("-t", "--time", "--timeout", type=int, help="seconds before SIGKILL (10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(handler=stop)

    p = commands.add_parser("restart", help="restart containers")
    p.add_argument("-t", "--time", "--timeout", type=int, help="seconds before SIGKILL (10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(handler=restart)

    p = commands.add_parser("kill", help="send a signal to containers")
    p.add_argument("-s", "--signal", default="SIGKILL", help="signal (SIGKILL)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(handler=kill)

    p = commands.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true", help="remove a running container too")
    p.add_argument("-v", "--volumes", action="store_true", help="accepted; cnm has no volumes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(handler=rm)

    p = commands.add_parser("rename", help="rename a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(handler=rename)

    p = commands.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show all (default: running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    p.add_argument("-n", "--last", type=int, help="show the n last created containers")
    p.add_argument("-l", "--latest", action="store_true", help="show the latest created")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="K=V", help="filter")
    p.add_argument("--format", help="table, json, or a template such as {{.Names}}")
    p.set_defaults(handler=ps)

    p = commands.add_parser("inspect", help="show containers or images in detail")
    p.add_argument("objects", nargs="+", metavar="NAME|ID")
    p.add_argument("-f", "--format", help="json, or a template such as {{.State.Status}}")
    p.add_argument("--type", choices=["container", "image"], help="only this kind")
    p.set_defaults(handler=inspect)

    p = commands.add_parser("logs", help="show a container's output")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--follow", action="store_true", help="follow until it stops")
    p.add_argument("-n", "--tail", default="all", help="lines from the end (all)")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.set_defaults(handler=logs)

    p = commands.add_parser("exec", help="run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="forward stdin")
    p.add_argument("-t", "--tty", action="store_true", help="give the command a terminal")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="a variable")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.set_defaults(handler=exec_)

    p = commands.add_parser("port", help="list a container's published ports")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.set_defaults(handler=port)
