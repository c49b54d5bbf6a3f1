"""Local volumes: named directories under the data root that outlive containers.

A volume is a record (store key ``volume/<name>``) and a directory,
``<data-root>/volumes/<name>/_data``, as Docker lays them out; a container mounts the directory
(a bind mount, made by runc). Only Docker's ``local`` driver exists; another driver is
refused as Docker refuses a plugin it cannot find. ``local``'s mount options (``type``,
``device``, ``o``: a tmpfs or a device mounted on first use) are refused with that said, rather
than a plain directory being handed out in their place.

Names are Docker's (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``); an anonymous volume (``-v /data``, an
image's VOLUME) gets 64 random hex digits and the label ``com.docker.volume.anonymous``, which
``docker volume prune`` uses to tell anonymous volumes from named ones (API 1.42 and later).
Which volumes are in use the runtime tells (``users``): a volume in use cannot be removed.
The record is written before the directory is made and removed after it is deleted, so a crash
leaves at worst a record whose directory is made again, or a directory the next start removes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.runtime.images import now_rfc3339
from cnm.runtime.model import from_dict
from cnm.store.api import Store

log = logging.getLogger(__name__)

PREFIX = "volume/"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")

Users = Callable[[str], list[str]]  # volume name -> ids of the containers that use it


@dataclass
class Volume:
    name: str
    mountpoint: str
    created: str
    driver: str = "local"
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    scope: str = "local"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path"
        )
    return name


def check_driver(driver: str) -> str:
    if driver not in ("", "local"):
        raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    return "local"


class VolumeStore:
    def __init__(self, store: Store, root: Path) -> None:
        self._store = store
        self._root = root
        self._lock = threading.RLock()
        self._volumes: dict[str, Volume] = {}

    def load(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        volumes = {}
        for entry in self._store.list(PREFIX):
            volume = from_dict(Volume, json.loads(entry.value))
            volumes[volume.name] = volume
            Path(volume.mountpoint).mkdir(parents=True, exist_ok=True)
        for path in self._root.iterdir():
            if path.name not in volumes:
                log.warning("removing the directory of unknown volume %s", path.name)
                shutil.rmtree(path, ignore_errors=True)
        with self._lock:
            self._volumes = volumes

    def list(self) -> list[Volume]:
        with self._lock:
            return [copy.deepcopy(v) for v in sorted(self._volumes.values(), key=lambda v: v.name)]

    def get(self, name: str) -> Volume:
        with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                raise NotFound(f"get {name}: no such volume")
            return copy.deepcopy(volume)

    def create(
        self,
        name: str | None,
        driver: str = "local",
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> tuple[Volume, bool]:
        """The volume ``name`` (made if missing; a new anonymous one for None) and whether it
        was made now."""
        check_driver(driver)
        if options:
            raise InvalidParameter(
                "local volume options (" + ", ".join(sorted(options)) + ") are not supported by "
                "cnm: its local volumes are plain directories under the data root"
            )
        labels = dict(labels or {})
        if name is None:
            name = secrets.token_hex(32)
            labels.setdefault(ANONYMOUS_LABEL, "")
        check_name(name)
        with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return copy.deepcopy(existing), False
            directory = self._root / name / "_data"
            volume = Volume(
                name=name, mountpoint=str(directory), created=now_rfc3339(), labels=labels
            )
            self._store.put(PREFIX + name, _encode(volume), expect_revision=0)
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError:
                self._store.delete(PREFIX + name)
                raise
            self._volumes[name] = volume
        log.info("volume created name=%s", name[:24])
        return copy.deepcopy(volume), True

    def remove(self, name: str, users: Users, force: bool = False) -> None:
        with self._lock:
            if name not in self._volumes:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            using = users(name)
            if using:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(using)}]")
            volume = self._volumes.pop(name)
            self._store.delete(PREFIX + name)
        shutil.rmtree(Path(volume.mountpoint).parent, ignore_errors=True)
        log.info("volume removed name=%s", name[:24])

    def size(self, name: str) -> int:
        """Bytes of the files in the volume."""
        return directory_size(Path(self.get(name).mountpoint))


def _encode(volume: Volume) -> bytes:
    return json.dumps(dataclasses.asdict(volume), separators=(",", ":")).encode()


def directory_size(root: Path) -> int:
    """The bytes of the regular files under ``root`` (each hard link once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in root.rglob("*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        if path.is_file() and not path.is_symlink() and (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_size
    return total
