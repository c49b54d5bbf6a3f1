"""A container's mounts: ``-v``/``Binds``, ``--mount``, ``--tmpfs``, ``--volumes-from``, and the
anonymous volumes of ``Config.Volumes`` and of the image, resolved at create as Docker does and
handed to runc as OCI mounts at start.

At create (``resolve``), in Docker's order: the mounts of the ``--volumes-from`` containers
(``:ro``/``:rw`` override their mode), then ``Binds``, then ``Mounts`` (one destination twice is
refused: "Duplicate mount point"), then an anonymous volume for every volume path of the
container's config or its image not mounted yet. A named volume that does not exist is made
(Docker does); a bind source that does not exist is made as a directory for ``Binds`` and
refused for ``--mount`` (Docker's two rules). Volumes made by a create that then fails are
removed again.

Modes of ``-v``: ``ro``/``rw``; propagation ``[r]private``, ``[r]slave``, ``[r]shared`` (binds;
``rprivate`` unless given); ``nocopy`` (volumes: do not fill an empty volume from the image);
``z``/``Z`` (SELinux relabelling: this host labels nothing, so there is nothing to do) and
``consistent``/``cached``/``delegated`` (macOS hints, meaningless on Linux, as Docker treats them).
A shared or slave propagation needs the source's mount to be shared (or slave), or nothing
would propagate: refused at start otherwise, with Docker's message.

At start: each mount point becomes an OCI mount (a recursive bind, read-only if asked, its
propagation), ``--tmpfs`` a tmpfs with Docker's defaults (``noexec,nosuid,nodev``) under the
user's options; they are sorted parents first. An empty volume mounted where the image has
files is filled with them first (``nocopy`` says not to). Every mount point missing from the
image is made in the container's init layer (``files.init_layer``), a lower layer of the
overlay above the image, so mount points never show as changes of the container
(``docker diff``), as Docker's own init layer does it.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnm.errors import CnmError, InvalidParameter
from cnm.osl.reaper import REAPER
from cnm.runtime import rootpath
from cnm.runtime.model import (
    Container,
    ContainerConfig,
    HostConfig,
    Image,
    MountPoint,
    MountRequest,
)
from cnm.runtime.volumes import VolumeStore, check_name

PROPAGATIONS = ("rprivate", "private", "rslave", "slave", "rshared", "shared")
CONSISTENCY = ("consistent", "cached", "delegated", "default")
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]
_TMPFS_FLAGS = {
    "ro",
    "rw",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "sync",
    "async",
    "dirsync",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
}
_TMPFS_DATA = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}
_OPPOSITES = {"exec": "noexec", "suid": "nosuid", "dev": "nodev", "rw": "ro"}
_TMPFS_SIZE = re.compile(r"\d+[kmgKMG%]?")

FindMounts = Callable[[str], tuple[str, list[MountPoint]]]  # container ref -> (id, its mounts)


def _absolute(path: str, kind: str) -> str:
    if not path.startswith("/"):
        raise InvalidParameter(
            f"invalid mount config for type \"{kind}\": invalid mount path: '{path}' mount path "
            "must be absolute"
        )
    return os.path.normpath(path) if path != "/" else path


def parse_bind(spec: str) -> MountPoint:
    """One ``Binds`` entry (``-v``): ``[source:]destination[:mode]``."""
    parts = spec.split(":")
    if len(parts) > 3 or (len(parts) > 1 and not all(parts)):
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        return MountPoint(
            "volume",
            _absolute(parts[0], "volume"),
            mode="",
            spec="binds",
            anonymous=True,
            copy_image_data=True,
            driver="local",
        )
    source, destination = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    kind = "bind" if source.startswith("/") else "volume"
    point = MountPoint(kind, _absolute(destination, kind), mode=mode, spec="binds")
    options = [o for o in mode.split(",") if o]
    access = [o for o in options if o in ("ro", "rw")]
    propagation = [o for o in options if o in PROPAGATIONS]
    unknown = [
        o for o in options if o not in ("ro", "rw", "z", "Z", "nocopy", *PROPAGATIONS, *CONSISTENCY)
    ]
    if unknown or len(access) > 1 or len(propagation) > 1 or options.count("nocopy") > 1:
        raise InvalidParameter(f"invalid mode: {mode}")
    point.read_only = access == ["ro"]
    if kind == "bind":
        if "nocopy" in options:
            raise InvalidParameter(f"invalid mode: {mode}")
        point.source = os.path.normpath(source)
        point.propagation = propagation[0] if propagation else "rprivate"
    else:
        if propagation:
            raise InvalidParameter(f"invalid mode: {mode}")
        point.name = check_name(source)
        point.driver = "local"
        point.copy_image_data = "nocopy" not in options
        point.mode = mode or "z"  # Docker shows a named volume's default mode so
    return point


def parse_mount(request: MountRequest) -> MountPoint:
    """One ``HostConfig.Mounts`` entry (``--mount``), by Docker's rules for each type."""
    kind = request.type
    where = f'invalid mount config for type "{kind}"'
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidParameter(f"mount type unknown: {kind!r}")
    if not request.target:
        raise InvalidParameter(f"{where}: field Target must not be empty")
    destination = _absolute(request.target, kind)
    if request.consistency and request.consistency not in CONSISTENCY:
        raise InvalidParameter(f"{where}: unknown consistency {request.consistency!r}")
    volume_fields = request.volume_no_copy or request.volume_labels or request.volume_driver
    volume_fields = volume_fields or request.volume_driver_options
    bind_fields = request.bind_propagation or request.bind_non_recursive
    tmpfs_fields = request.tmpfs_size or request.tmpfs_mode
    point = MountPoint(kind, destination, read_only=request.read_only, spec="mounts")
    if kind == "bind":
        if volume_fields:
            raise InvalidParameter(f"{where}: field VolumeOptions must not be specified")
        if tmpfs_fields:
            raise InvalidParameter(f"{where}: field TmpfsOptions must not be specified")
        if not request.source:
            raise InvalidParameter(f"{where}: field Source must not be empty")
        source = _absolute(request.source, kind)
        if not os.path.exists(source):
            raise InvalidParameter(f"{where}: bind source path does not exist: {source}")
        if request.bind_propagation and request.bind_propagation not in PROPAGATIONS:
            raise InvalidParameter(f"{where}: invalid propagation {request.bind_propagation!r}")
        point.source = source
        point.propagation = request.bind_propagation or "rprivate"
        if request.bind_non_recursive:
            point.options = ["bind"]
    elif kind == "volume":
        if bind_fields:
            raise InvalidParameter(f"{where}: field BindOptions must not be specified")
        if tmpfs_fields:
            raise InvalidParameter(f"{where}: field TmpfsOptions must not be specified")
        point.driver = "local"
        point.copy_image_data = not request.volume_no_copy
        if request.source:
            point.name = check_name(request.source)
        else:
            point.anonymous = True
    else:
        if request.source:
            raise InvalidParameter(f"{where}: field Source must not be specified")
        if bind_fields:
            raise InvalidParameter(f"{where}: field BindOptions must not be specified")
        if volume_fields:
            raise InvalidParameter(f"{where}: field VolumeOptions must not be specified")
        if request.tmpfs_size < 0:
            raise InvalidParameter(f"{where}: invalid tmpfs size {request.tmpfs_size}")
        if request.tmpfs_size:
            point.options.append(f"size={request.tmpfs_size}")
        point.options.append(f"mode={request.tmpfs_mode or 0o1777:o}")
    return point


def tmpfs_options(destination: str, text: str) -> list[str]:
    """``--tmpfs /path:size=3m,mode=755``: Docker's defaults with the user's options over them."""
    _absolute(destination, "tmpfs")
    options = list(TMPFS_DEFAULTS)
    for option in (o.strip() for o in text.split(",") if o.strip()):
        key, equals, value = option.partition("=")
        if equals:
            if key not in _TMPFS_DATA:
                raise InvalidParameter(f"invalid tmpfs option {option!r} for {destination}")
            if key == "size" and not _TMPFS_SIZE.fullmatch(value):
                raise InvalidParameter(f"invalid tmpfs size {value!r} for {destination}")
            if key == "mode" and not re.fullmatch(r"[0-7]{1,4}", value):
                raise InvalidParameter(f"invalid tmpfs mode {value!r} for {destination}")
            options = [o for o in options if not o.startswith(f"{key}=")]
        elif key not in _TMPFS_FLAGS:
            raise InvalidParameter(f"invalid tmpfs option {option!r} for {destination}")
        else:
            opposite = _OPPOSITES.get(key) or next(
                (k for k, v in _OPPOSITES.items() if v == key), None
            )
            options = [o for o in options if o != opposite]
        if option not in options:
            options.append(option)
    return options


class MountResolver:
    """Mount points at create: binds, volumes made or found, ``--volumes-from``."""

    def __init__(self, volumes: VolumeStore, find: FindMounts) -> None:
        self._volumes = volumes
        self._find = find

    def resolve(
        self, config: ContainerConfig, host: HostConfig, image: Image | None
    ) -> tuple[list[MountPoint], list[str]]:
        """The container's mount points and the names of the volumes made for it (to remove
        if the create fails after this)."""
        made: list[str] = []
        try:
            return self._resolve(config, host, image, made), made
        except BaseException:
            for name in made:
                self._volumes.remove(name, lambda _: [], force=True)
            raise

    def _resolve(
        self, config: ContainerConfig, host: HostConfig, image: Image | None, made: list[str]
    ) -> list[MountPoint]:
        if host.volume_driver not in ("", "local"):
            raise InvalidParameter(
                f"volume driver {host.volume_driver!r} is not available: cnm has the local "
                "driver only"
            )
        points: dict[str, MountPoint] = {}
        for entry in host.volumes_from:
            ref, _, mode = entry.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidParameter(f"invalid mode for volumes-from: {mode}")
            _, theirs = self._find(ref)
            for point in theirs:
                if point.type == "tmpfs":
                    continue
                copied = copy.deepcopy(point)
                copied.spec = "volumes-from"
                copied.anonymous = False  # theirs: removed with them, not with this one
                if mode:
                    copied.read_only = mode == "ro"
                points[copied.destination] = copied
        explicit: set[str] = set()

        def add_explicit(point: MountPoint) -> None:
            if point.destination in explicit:
                raise InvalidParameter(f"Duplicate mount point: {point.destination}")
            explicit.add(point.destination)
            points[point.destination] = point

        for spec in host.binds:
            add_explicit(parse_bind(spec))
        for request in host.mounts:
            point = parse_mount(request)
            add_explicit(point)
            if point.type == "volume" and (request.volume_labels or request.volume_driver_options):
                self._volume_for(point, made, request.volume_labels, request.volume_driver_options)
        for destination, text in host.tmpfs.items():
            tmpfs_options(destination, text)
            if _absolute(destination, "tmpfs") in explicit:
                raise InvalidParameter(f"Duplicate mount point: {destination}")
        wanted = [(p, "volumes") for p in config.volumes]
        wanted += [(p, "image") for p in (image.volumes if image else [])]
        for path, spec in wanted:
            destination = _absolute(path, "volume")
            if destination in points or destination in host.tmpfs:
                continue
            points[destination] = MountPoint(
                "volume",
                destination,
                driver="local",
                anonymous=True,
                copy_image_data=True,
                spec=spec,
            )
        for point in points.values():
            if point.type == "volume" and not point.source:
                self._volume_for(point, made, {}, {})
            if point.type == "bind" and point.spec == "binds" and not os.path.exists(point.source):
                try:
                    os.makedirs(point.source, 0o755, exist_ok=True)
                except OSError as err:
                    raise InvalidParameter(
                        f"error while creating mount source path '{point.source}': {err.strerror}"
                    ) from None
        return sorted(points.values(), key=lambda p: p.destination)

    def _volume_for(
        self, point: MountPoint, made: list[str], labels: dict[str, str], options: dict[str, str]
    ) -> None:
        volume, new = self._volumes.create(
            None if point.anonymous else point.name, "local", options, labels
        )
        if new:
            made.append(volume.name)
        point.name = volume.name
        point.source = volume.mountpoint


# ----------------------------------------------------------------------------- at start


def _propagation_of(path: str) -> str:
    """The propagation of the mount ``path`` is on: shared, slave or private."""
    best = ("", "private")
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[4]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[0]):
                optional = fields[6 : fields.index("-")]
                kind = "private"
                if any(o.startswith("shared:") for o in optional):
                    kind = "shared"
                elif any(o.startswith("master:") for o in optional):
                    kind = "slave"
                best = (point, kind)
    return best[1]


def _check_propagation(point: MountPoint) -> None:
    wanted = point.propagation.removeprefix("r")
    if wanted not in ("shared", "slave"):
        return
    mount_point = _mount_point_of(point.source)
    found = _propagation_of(point.source)
    if wanted == "shared" and found != "shared":
        raise CnmError(
            f"path {point.source} is mounted on {mount_point} but it is not a shared mount"
        )
    if wanted == "slave" and found not in ("shared", "slave"):
        raise CnmError(
            f"path {point.source} is mounted on {mount_point} but it is not a shared or slave mount"
        )


def _mount_point_of(path: str) -> str:
    best = "/"
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            point = line.split()[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(
                best
            ):
                best = point
    return best


def oci_mounts(container: Container) -> list[dict[str, Any]]:
    """The OCI mounts of the container's mount points and tmpfs mounts, parents first."""
    found: list[dict[str, Any]] = []
    for point in container.mount_points:
        if point.type == "tmpfs":
            found.append(
                {
                    "destination": point.destination,
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": [
                        *TMPFS_DEFAULTS,
                        *point.options,
                        *(["ro"] if point.read_only else []),
                    ],
                }
            )
            continue
        if point.type == "bind":
            _check_propagation(point)
        options = list(point.options) if point.options else ["rbind"]
        options.append(point.propagation or "rprivate")
        if point.read_only:
            options.append("ro")
        found.append(
            {
                "destination": point.destination,
                "type": "bind",
                "source": point.source,
                "options": options,
            }
        )
    for destination, text in container.host_config.tmpfs.items():
        found.append(
            {
                "destination": os.path.normpath(destination),
                "type": "tmpfs",
                "source": "tmpfs",
                "options": tmpfs_options(destination, text),
            }
        )
    return sorted(found, key=lambda m: len(Path(m["destination"]).parts))


def destinations(container: Container) -> list[str]:
    """Every path the container's mounts are made at (for the init layer)."""
    return [p.destination for p in container.mount_points] + [
        os.path.normpath(d) for d in container.host_config.tmpfs
    ]


def prepare_init_layer(
    init: Path, image_root: Path, directories: list[str], files: list[str]
) -> None:
    """Make in ``init`` each mount point the image lacks (directories, and files for file
    binds), resolved within the image's root so a symlink in the image is followed as the
    container will follow it."""
    for path, is_file in [(d, False) for d in directories] + [(f, True) for f in files]:
        target = rootpath.resolve(image_root, path)
        relative = target.relative_to(image_root)
        if target.exists() or target.is_symlink() or not relative.parts:
            continue
        inside = init / relative
        if inside.exists():
            continue
        if is_file:
            inside.parent.mkdir(parents=True, exist_ok=True)
            inside.touch()
        else:
            inside.mkdir(parents=True, exist_ok=True)


def fill_volumes(container: Container, rootfs: Path) -> None:
    """An empty volume mounted where the image (or the container) has files gets a copy of
    them first, owners and modes kept (Docker's copy-up)."""
    for point in container.mount_points:
        if point.type != "volume" or not point.copy_image_data:
            continue
        source = rootpath.resolve(rootfs, point.destination)
        target = Path(point.source)
        if not source.is_dir() or source.is_symlink() or not target.is_dir():
            continue
        if any(target.iterdir()) or not any(source.iterdir()):
            continue
        done = REAPER.run(["cp", "-a", f"{source}/.", f"{target}/"], timeout=300)
        if done.returncode != 0:
            raise CnmError(
                f"cannot fill volume {point.name[:12]} from the image at {point.destination}: "
                f"{done.stderr.decode().strip()}"
            )
