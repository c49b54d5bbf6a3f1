"""Images imported from tarballs: ids, tags, lookups, removal, and unpacking that refuses to
write outside the image's tree."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.runtime.runtime import Runtime
from tests.support.runtime import config, host


def _tar(*entries: tuple[str, str, str]) -> bytes:
    """A tarball of (kind, name, data) entries: kind file, dir, symlink, hardlink or chr; data
    is a file's content or a link's target."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
            }[kind]
            info.linkname = data
            tar.addfile(info)
    return buffer.getvalue()


def _import(runtime: Runtime, data: bytes, reference: str | None = None):
    return runtime.import_image(io.BytesIO(data), reference)


def test_import_id_tags_reimport_and_lookups(runtime: Runtime, busybox_tar: Path) -> None:
    data = busybox_tar.read_bytes()
    hex_id = hashlib.sha256(data).hexdigest()
    messages: list[str] = []
    with open(busybox_tar, "rb") as stream:
        image = runtime.import_image(stream, "busybox:local", messages.append)
    assert image.id == f"sha256:{hex_id}"
    assert image.repo_tags == ["busybox:local"]
    assert messages and messages[-1] == "Unpacking"
    rootfs = Path(image.rootfs)
    assert rootfs == runtime.config.data_root / "images" / hex_id / "rootfs"
    assert (rootfs / "bin" / "busybox").is_file() and (rootfs / "bin" / "sh").is_symlink()
    assert image.size > 1_000_000

    again = _import(runtime, data, "busybox")  # same bytes: same image, one more tag
    assert again.id == image.id
    assert again.repo_tags == ["busybox:local", "busybox:latest"]
    assert [i.id for i in runtime.images()] == [image.id]

    for ref in ("busybox:local", "busybox", image.id, hex_id, hex_id[:12], f"sha256:{hex_id[:12]}"):
        assert runtime.image(ref).id == image.id
    with pytest.raises(NotFound, match="No such image: busybox:nope"):
        runtime.image("busybox:nope")

    other = _import(runtime, _tar(("file", "hello", "hi\n")), "busybox:local")  # the tag moves
    assert other.id != image.id and other.repo_tags == ["busybox:local"]
    assert runtime.image(image.id).repo_tags == ["busybox:latest"]
    assert runtime.image("busybox:local").id == other.id
    untagged = _import(runtime, _tar(("file", "x", "x")))
    assert untagged.repo_tags == []
    assert len(runtime.images()) == 3


def test_bad_references_are_refused(runtime: Runtime) -> None:
    data = _tar(("file", "a", "a"))
    for reference in ("UPPER:case", "name:", "a b", "cnm/host", "cnm/host:latest"):
        with pytest.raises(InvalidParameter):
            _import(runtime, data, reference)
    assert runtime.images() == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("file", "../evil", "x")], "outside the root"),
        ([("file", "a/../../evil", "x")], "outside the root"),
        ([("file", "/evil", "x")], "absolute path"),
        ([("symlink", "link", "/"), ("file", "link/evil", "x")], "through a symlink"),
        ([("dir", "d", ""), ("symlink", "d/up", ".."), ("file", "d/up/up/evil", "x")], "symlink"),
        ([("hardlink", "h", "../../evil")], "outside the root"),
        ([("hardlink", "h", "/etc/passwd")], "absolute path"),
        (
            [("file", "a", "x"), ("symlink", "s", "/etc/passwd"), ("hardlink", "h", "s")],
            "not a file",
        ),
    ],
)
def test_unsafe_archives_are_refused_and_leave_nothing(
    runtime: Runtime, tmp_path: Path, entries: list[tuple[str, str, str]], message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        _import(runtime, _tar(*entries), "evil:1")
    assert runtime.images() == []
    assert list((runtime.config.data_root / "images").iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "data" / "evil").exists()


def test_symlinks_are_replaced_not_followed_and_devices_skipped(
    runtime: Runtime, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched\n")
    image = _import(
        runtime,
        _tar(
            ("symlink", "target", str(outside)),
            ("file", "target", "inside\n"),  # replaces the link, never writes through it
            ("chr", "dev/null", ""),
            ("symlink", "bin/sh", "/bin/busybox"),  # absolute targets are the container's
        ),
        "safe:1",
    )
    rootfs = Path(image.rootfs)
    assert outside.read_text() == "untouched\n"
    assert (rootfs / "target").read_text() == "inside\n" and not (rootfs / "target").is_symlink()
    assert not (rootfs / "dev" / "null").exists()
    assert (rootfs / "bin" / "sh").readlink() == Path("/bin/busybox")


def test_remove_image_untags_refuses_while_used_and_deletes(
    runtime: Runtime, busybox_tar: Path
) -> None:
    data = busybox_tar.read_bytes()
    image = _import(runtime, data, "busybox:local")
    _import(runtime, data, "busybox:two")
    assert runtime.remove_image("busybox:two") == ["Untagged: busybox:two"]
    assert runtime.image(image.id).repo_tags == ["busybox:local"]

    runtime.create_container("user", config("busybox:local", "sleep", "1000"), host(), {})
    with pytest.raises(Conflict, match="must force"):
        runtime.remove_image("busybox:local")
    with pytest.raises(Conflict, match="stopped container"):
        runtime.remove_image(image.id)
    runtime.start_container("user")
    with pytest.raises(Conflict, match="cannot be forced"):
        runtime.remove_image(image.id, force=True)
    runtime.remove_container("user", force=True)

    assert runtime.remove_image("busybox:local") == [
        "Untagged: busybox:local",
        f"Deleted: {image.id}",
    ]
    assert runtime.images() == []
    assert not Path(image.rootfs).exists()
    with pytest.raises(NotFound):
        runtime.remove_image(image.id)
