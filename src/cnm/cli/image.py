"""``cnm image import|ls|rm``: images come from local tarballs, never from a registry.

``import FILE NAME[:TAG]`` streams the file (``-`` for stdin) as the request body and prints the
daemon's progress as it arrives, then the image id, like ``docker import``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import IO, Any
from urllib.parse import quote

from cnm.api.timefmt import human_duration
from cnm.cli import format as fmt
from cnm.cli.client import ApiError, Client, CliError

LS_TABLE = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}"
LS_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
}


def human_size(size: float) -> str:
    """As ``docker images`` shows sizes: decimal units, three significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


def import_(client: Client, args: argparse.Namespace) -> int:
    upload: IO[bytes]
    if args.file == "-":
        upload, size = sys.stdin.buffer, None
    else:
        try:
            upload = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as err:
            raise CliError(f"cannot read {args.file}: {err.strerror}") from None
        size = os.fstat(upload.fileno()).st_size
    query = {"fromSrc": "-", "repo": args.reference} if args.reference else {"fromSrc": "-"}
    try:
        response = client.open(
            "POST", "/images/create", query=query, upload=upload, upload_size=size, forever=True
        )
        status = 0
        for line in response:
            message = json.loads(line)
            if "error" in message:
                print(f"Error: {message['error']}", file=sys.stderr)
                status = 1
            elif message.get("status"):
                print(message["status"], flush=True)
        response.close()
        return status
    finally:
        upload.close()


def _rows(image: dict[str, Any], now: float, no_trunc: bool) -> list[dict[str, str]]:
    short_id = image["Id"] if no_trunc else image["Id"].removeprefix("sha256:")[:12]
    common = {
        "ID": short_id,
        "CreatedSince": human_duration(now - image["Created"]) + " ago",
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(image["Created"])),
        "Size": human_size(image["Size"]),
    }
    tags = image.get("RepoTags") or ["<none>:<none>"]
    return [
        {"Repository": tag.rsplit(":", 1)[0], "Tag": tag.rsplit(":", 1)[1], **common}
        for tag in tags
    ]


def ls(client: Client, args: argparse.Namespace) -> int:
    images = client.request("GET", "/images/json")
    now = time.time()
    rows = [row for image in images for row in _rows(image, now, args.no_trunc)]
    if args.quiet:
        for image_id in dict.fromkeys(row["ID"] for row in rows):
            print(image_id)
        return 0
    template = args.format or LS_TABLE
    fmt.print_rows(rows, template, LS_TABLE, LS_HEADERS)
    return 0


def rm(client: Client, args: argparse.Namespace) -> int:
    status = 0
    query = {"force": "1"} if args.force else None
    for ref in args.images:
        try:
            report = client.request("DELETE", f"/images/{quote(ref, safe='')}", query=query)
        except ApiError as err:
            print(err, file=sys.stderr)
            status = 1
            continue
        for entry in report or []:
            for key, value in entry.items():
                print(f"{key}: {value}")
    return status


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = commands.add_parser("image", help="manage images (imported from tarballs)")
    image.set_defaults(handler=None, parser=image)
    sub = image.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("import", help="import a root filesystem tarball as an image")
    p.add_argument("file", metavar="FILE", help="a tar archive of a root filesystem, or -")
    p.add_argument("reference", nargs="?", metavar="NAME[:TAG]", help="e.g. busybox:local")
    p.set_defaults(handler=import_)

    p = sub.add_parser("ls", aliases=["list"], help="list images")
    p.add_argument("-q", "--quiet", action="store_true", help="only display image IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    p.add_argument("--format", help="table, json, or a template such as {{.Repository}}")
    p.set_defaults(handler=ls)

    p = sub.add_parser("rm", aliases=["remove"], help="remove images")
    p.add_argument("-f", "--force", action="store_true", help="remove even if in use")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(handler=rm)
