"""Images imported from root-filesystem tarballs (``docker import``), unpacked once and shared.

An image is the unpacked tree at ``<data-root>/images/<hex>/rootfs``, the read-only lower layer
of its containers' overlays; its id is the sha256 of the tarball as given, so importing the same
bytes again finds the same image and only adds the tag. A tag names one image: tagging another
image moves it (the old image stays, untagged, as Docker's dangling images do).

Unpacking is where a crafted tarball could write outside the tree, so every entry is checked
before it is written: absolute names and ``..`` components are refused; no entry may be written
through a symlink (a parent directory that is a symlink in the tree so far, or a symlink in
place of the entry itself, which is replaced instead); hard links must name an entry inside the
tree; device nodes are skipped (the container gets its /dev from runc). Symlink targets are kept
as they are: they are resolved inside the container's root, never by the daemon.
"""

from __future__ import annotations

import builtins
import copy
import hashlib
import logging
import re
import secrets
import shutil
import tarfile
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.runtime.model import Image
from cnm.store.api import Delete, Put, Store

log = logging.getLogger(__name__)

HOST_IMAGE = "cnm/host"  # reserved: the host's own filesystem, no rootfs
CHUNK = 1 << 20
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_HEX = re.compile(r"[0-9a-f]+")


def now_rfc3339() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def normalize_reference(reference: str) -> str:
    """``name[:tag]`` -> ``name:tag`` (tag ``latest`` by default), in Docker's familiar form
    (``docker.io/library/busybox`` is ``busybox``, as newer docker CLIs send it); InvalidParameter
    if malformed."""
    name, tag = reference, "latest"
    colon = reference.rfind(":")
    if colon > reference.rfind("/"):
        name, tag = reference[:colon], reference[colon + 1 :]
    if not _NAME.fullmatch(name) or not _TAG.fullmatch(tag):
        raise InvalidParameter(f"invalid reference format: {reference!r}")
    for registry in ("docker.io/", "index.docker.io/"):
        if name.startswith(registry):
            name = name.removeprefix(registry).removeprefix("library/")
    return f"{name}:{tag}"


def is_host_image(reference: str) -> bool:
    return reference in (HOST_IMAGE, f"{HOST_IMAGE}:latest")


def _member_path(name: str) -> str | None:
    """The entry's path relative to the root, or None for the root itself."""
    if name.startswith("/"):
        raise InvalidParameter(f"invalid tar entry {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"invalid tar entry {name!r}: it leads outside the root")
    return "/".join(parts) or None


def _check_no_symlink_parents(root: Path, relative: str, entry: str) -> None:
    path = root
    for part in relative.split("/")[:-1]:
        path = path / part
        if path.is_symlink():
            raise InvalidParameter(f"invalid tar entry {entry!r}: it goes through a symlink")


def extract_rootfs(archive: Path, dest: Path) -> int:
    """Unpack ``archive`` (tar, optionally compressed) into ``dest``; returns the size of the
    regular files. InvalidParameter for a malformed or unsafe archive."""
    dest.mkdir(parents=True)
    size = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                relative = _member_path(member.name)
                if relative is None or member.ischr() or member.isblk():
                    continue
                _check_no_symlink_parents(dest, relative, member.name)
                if member.islnk():
                    target = _member_path(member.linkname)
                    if target is None:
                        raise InvalidParameter(f"invalid hard link {member.name!r}")
                    _check_no_symlink_parents(dest, target, member.linkname)
                    if (dest / target).is_symlink() or not (dest / target).is_file():
                        raise InvalidParameter(
                            f"invalid hard link {member.name!r}: {member.linkname!r} "
                            "is not a file in the archive"
                        )
                    member.linkname = target
                path = dest / relative
                if path.is_symlink() or (path.exists() and not (path.is_dir() and member.isdir())):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                member.name = relative
                tar.extract(member, dest, set_attrs=True, numeric_owner=True)
                if member.isreg():
                    size += member.size
    except (tarfile.TarError, OSError, EOFError) as err:
        raise InvalidParameter(f"invalid image archive: {err}") from None
    dest.chmod(0o755)
    return size


class ImageStore:
    """The image records (store keys ``image/<id>``) and their unpacked trees."""

    def __init__(self, store: Store, root: Path) -> None:
        self.store = store
        self.root = root
        self._lock = threading.RLock()
        self._images: dict[str, Image] = {}

    def load(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        images = {}
        for entry in self.store.list("image/"):
            image = Image.from_json(entry.value)
            images[image.id] = image
        for path in self.root.iterdir():  # half-made imports, trees of deleted images
            if f"sha256:{path.name}" in images:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
        with self._lock:
            self._images = images

    def list(self) -> list[Image]:
        with self._lock:
            return [
                copy.deepcopy(i) for i in sorted(self._images.values(), key=lambda i: i.created)
            ]

    def get(self, ref: str) -> Image:
        with self._lock:
            return copy.deepcopy(self._find(ref)[0])

    def by_id(self, image_id: str) -> Image | None:
        with self._lock:
            image = self._images.get(image_id)
            return copy.deepcopy(image) if image else None

    def _find(self, ref: str) -> tuple[Image, str | None]:
        """The image and, if ``ref`` named it by tag, that tag."""
        hex_part = ref.removeprefix("sha256:")
        if _HEX.fullmatch(hex_part) and len(hex_part) == 64:
            image = self._images.get(f"sha256:{hex_part}")
            if image:
                return image, None
        try:
            tag = normalize_reference(ref)
        except InvalidParameter:
            tag = None
        if tag is not None:
            for image in self._images.values():
                if tag in image.repo_tags:
                    return image, tag
        if _HEX.fullmatch(hex_part):
            matches = [i for i in self._images.values() if i.id[7:].startswith(hex_part)]
            if len(matches) == 1:
                return matches[0], None
        raise NotFound(f"No such image: {ref}")

    def import_(
        self,
        stream: BinaryIO | IO[bytes],
        reference: str | None,
        progress: Callable[[str], None] | None = None,
        template: Image | None = None,
    ) -> Image:
        """Unpack a root filesystem tarball as an image. ``template`` gives a new image its
        config (a commit's, or ``--change``s); it is part of what makes the image's id."""
        tag = normalize_reference(reference) if reference else None
        if tag is not None and is_host_image(tag):
            raise InvalidParameter(f"{HOST_IMAGE} is reserved for the host's filesystem")
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = self.root / f"tmp-{secrets.token_hex(8)}"
        scratch.mkdir()
        try:
            archive = scratch / "image.tar"
            digest = hashlib.sha256()
            received = 0
            with open(archive, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    if progress:
                        progress(f"Importing {received / 1e6:.1f} MB")
            if template is not None:
                config = copy.deepcopy(template)
                config.id, config.repo_tags, config.created, config.size = "", [], "", 0
                config.rootfs = ""
                digest.update(config.to_json())
            image_id = f"sha256:{digest.hexdigest()}"
            with self._lock:
                known = image_id in self._images
            size = 0
            if not known:
                if progress:
                    progress("Unpacking")
                size = extract_rootfs(archive, scratch / "rootfs")
            with self._lock:
                image = self._images.get(image_id)
                ops: list[Put | Delete] = []
                if image is None:
                    final = self.root / digest.hexdigest()
                    shutil.rmtree(final, ignore_errors=True)
                    archive.unlink()
                    scratch.rename(final)
                    image = copy.deepcopy(template) if template is not None else Image(id="")
                    image.id = image_id
                    image.repo_tags = []
                    image.created = now_rfc3339()
                    image.size = size
                    image.rootfs = str(final / "rootfs")
                image = copy.deepcopy(image)
                moved: list[Image] = []
                if tag is not None and tag not in image.repo_tags:
                    for other in self._images.values():
                        if tag in other.repo_tags:
                            other = copy.deepcopy(other)
                            other.repo_tags.remove(tag)
                            moved.append(other)
                            ops.append(Put(f"image/{other.id}", other.to_json()))
                    image.repo_tags.append(tag)
                ops.append(Put(f"image/{image.id}", image.to_json()))
                self.store.commit(ops)
                for changed in (*moved, image):
                    self._images[changed.id] = changed
            log.info("image imported id=%s tag=%s", image_id[7:19], tag)
            return copy.deepcopy(image)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def tag(self, ref: str, reference: str) -> None:
        """``docker tag``: ``reference`` names the image ``ref`` (and no other any more)."""
        tag = normalize_reference(reference)
        if is_host_image(tag):
            raise InvalidParameter(f"{HOST_IMAGE} is reserved for the host's filesystem")
        with self._lock:
            image, _ = self._find(ref)
            if tag in image.repo_tags:
                return
            ops: list[Put | Delete] = []
            changed: list[Image] = []
            for other in self._images.values():
                if tag in other.repo_tags:
                    other = copy.deepcopy(other)
                    other.repo_tags.remove(tag)
                    changed.append(other)
                    ops.append(Put(f"image/{other.id}", other.to_json()))
            updated = copy.deepcopy(image)
            updated.repo_tags.append(tag)
            changed.append(updated)
            ops.append(Put(f"image/{updated.id}", updated.to_json()))
            self.store.commit(ops)
            for entry in changed:
                self._images[entry.id] = entry

    def remove(
        self, ref: str, force: bool, users: Callable[[str], Sequence[tuple[str, bool]]]
    ) -> builtins.list[str]:
        """Untag or delete, as ``docker rmi``. ``users(image_id)`` lists the (container id,
        running) pairs using an image. Returns "Untagged: <tag>" and "Deleted: <id>" lines."""
        with self._lock:
            image, tag = self._find(ref)
            short = image.id[7:19]
            if tag is not None and len(image.repo_tags) > 1:
                updated = copy.deepcopy(image)
                updated.repo_tags.remove(tag)
                self.store.put(f"image/{image.id}", updated.to_json())
                self._images[image.id] = updated
                return [f"Untagged: {tag}"]
            using = users(image.id)
            running = [cid for cid, is_running in using if is_running]
            if running:
                raise Conflict(
                    f"conflict: unable to delete {short} (cannot be forced) - image is being "
                    f"used by running container {running[0][:12]}"
                )
            if using and not force:
                if tag is not None:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{ref}" (must force)'
                        f" - container {using[0][0][:12]} is using its referenced image {short}"
                    )
                raise Conflict(
                    f"conflict: unable to delete {short} (must be forced) - image is being used "
                    f"by stopped container {using[0][0][:12]}"
                )
            if tag is None and len(image.repo_tags) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {short} (must be forced) - image is "
                    "referenced in multiple repositories"
                )
            self.store.delete(f"image/{image.id}")
            del self._images[image.id]
        shutil.rmtree(Path(image.rootfs).parent, ignore_errors=True)
        return [f"Untagged: {t}" for t in image.repo_tags] + [f"Deleted: {image.id}"]
