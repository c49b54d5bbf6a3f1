"""The ``cnm`` command: ``cnm daemon`` runs the daemon and ``cnm plugin serve`` serves cnm's
drivers to a dockerd; every other command is a client of the daemon's API over its Unix socket
(``-H``, ``$CNM_HOST``, default unix:///run/cnm/cnm.sock).

Failures print one readable line on stderr (``Error response from daemon: ...`` for the
daemon's refusals) and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cnm import __version__, daemon
from cnm.cli import completion, container, dns, image, network, observe, system
from cnm.cli.client import DEFAULT_HOST, Client, CliError
from cnm.plugins import server


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnm", description="The Container Network Model: daemon and client."
    )
    parser.add_argument(
        "-H",
        "--host",
        default=os.environ.get("CNM_HOST") or DEFAULT_HOST,
        help="daemon socket to connect to, unix:///path ($CNM_HOST, default %(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"cnm version {__version__}")
    parser.set_defaults(handler=None, parser=parser)
    commands = parser.add_subparsers(metavar="COMMAND")

    p = commands.add_parser("daemon", help="run the daemon (Docker Engine API on a Unix socket)")
    daemon.add_arguments(p)
    p.set_defaults(run=daemon.run)

    p = commands.add_parser("plugin", help="cnm as a plugin of an existing Docker")
    plugin_commands = p.add_subparsers(metavar="COMMAND", required=True)
    serve = plugin_commands.add_parser(
        "serve",
        help="serve cnm's bridge driver and IPAM to dockerd (docker network create -d cnm)",
    )
    server.add_arguments(serve)
    serve.set_defaults(run=server.run)

    container.add_parsers(commands)
    image.add_parser(commands)
    network.add_parser(commands)
    dns.add_parser(commands)
    system.add_parsers(commands)
    observe.add_parsers(commands)

    p = commands.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=["bash"])
    p.set_defaults(run=lambda _: _print_completion(parser))
    return parser


def _print_completion(parser: argparse.ArgumentParser) -> int:
    print(completion.bash_script(parser), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is not None:
        return args.run(args)
    if args.handler is None:
        args.parser.print_help()
        return 0
    try:
        return args.handler(Client(args.host), args)
    except CliError as err:
        print(err, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
