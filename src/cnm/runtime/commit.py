"""``docker commit``: a container's filesystem made a local image, and the Dockerfile
instructions that ``commit --change`` and ``import --change`` apply to an image's config.

cnm's images are single unpacked trees (``images``), so a commit is an import of the
container's merged view: its overlay (upper, init layer and image) as one tree, streamed as a
tar through a pipe into ``ImageStore.import_`` (which unpacks with its checks and records the
image). Volumes are not part of it (they are mounted in the container's namespace, not on the
overlay), as in Docker. A running container is paused meanwhile unless asked not to (Docker's
``pause=true``). The new image's config is the container's, changed by the request's config and
``changes``, and it records its parent image and the container's config (``ContainerConfig``).

Instructions: CMD, ENTRYPOINT (JSON or shell form: ``sh -c``), ENV, EXPOSE, LABEL, USER,
VOLUME, WORKDIR, STOPSIGNAL; Docker's commit takes no others.
"""

from __future__ import annotations

import json
import os
import shlex
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from cnm.errors import InvalidParameter
from cnm.runtime.model import Image

INSTRUCTIONS = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "USER",
    "VOLUME",
    "WORKDIR",
    "STOPSIGNAL",
)


def _words(text: str) -> list[str]:
    """An instruction's argument in JSON form, or its shell form run by ``/bin/sh -c``."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", stripped]


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    """``KEY=VALUE ...`` (quotes allowed), or the old ``KEY VALUE`` form."""
    words = shlex.split(text)
    if words and "=" not in words[0]:
        if len(words) < 2:
            raise InvalidParameter(f"{what} requires at least two arguments")
        return [(words[0], " ".join(words[1:]))]
    found = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or not key:
            raise InvalidParameter(f"{what} names can not be blank: {word!r}")
        found.append((key, value))
    return found


def apply_changes(image: Image, changes: list[str]) -> None:
    for change in changes:
        keyword, _, rest = change.strip().partition(" ")
        keyword = keyword.upper()
        if keyword not in INSTRUCTIONS:
            raise InvalidParameter(f"{keyword} is not a valid change command")
        if keyword == "CMD":
            image.cmd = _words(rest)
        elif keyword == "ENTRYPOINT":
            image.entrypoint = _words(rest)
        elif keyword == "ENV":
            env = {e.partition("=")[0]: e for e in image.env}
            for key, value in _pairs(rest, "ENV"):
                env[key] = f"{key}={value}"
            image.env = list(env.values())
        elif keyword == "LABEL":
            image.labels.update(_pairs(rest, "LABEL"))
        elif keyword == "EXPOSE":
            for port in rest.split():
                number, _, proto = port.partition("/")
                if not number.isdigit():
                    raise InvalidParameter(f"invalid port in EXPOSE: {port}")
                key = f"{number}/{proto or 'tcp'}"
                if key not in image.exposed_ports:
                    image.exposed_ports.append(key)
        elif keyword == "USER":
            image.user = rest.strip()
        elif keyword == "VOLUME":
            paths = _words(rest) if rest.strip().startswith("[") else rest.split()
            for path in paths:
                if path not in image.volumes:
                    image.volumes.append(path)
        elif keyword == "WORKDIR":
            path = rest.strip()
            image.working_dir = (
                path if path.startswith("/") else str(Path(image.working_dir or "/", path))
            )
        elif keyword == "STOPSIGNAL":
            image.stop_signal = rest.strip()


def tar_writer(root: Path) -> tuple[IO[bytes], Callable[[], None]]:
    """A stream of the tar of the tree at ``root``, written by a thread; call the second
    value once the stream was read (it waits for the thread and raises what it hit)."""
    read_end, write_end = os.pipe()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_end, "wb") as out, tarfile.open(fileobj=out, mode="w|") as tar:
                for entry in sorted(os.listdir(root)):
                    tar.add(root / entry, arcname=entry, recursive=True)
        except BrokenPipeError:
            pass  # the reader stopped: it reports why
        except BaseException as err:
            failures.append(err)

    thread = threading.Thread(target=write, name="cnm-commit-tar", daemon=True)
    thread.start()
    reader = os.fdopen(read_end, "rb")

    def done() -> None:
        reader.close()
        thread.join()
        if failures:
            raise failures[0]

    return reader, done
