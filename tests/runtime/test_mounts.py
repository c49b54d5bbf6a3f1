"""Mounts through the OCI spec, in-process under runc: binds read-only and read-write, tmpfs,
named and anonymous volumes (made at create, kept, removed with ``rm -v``), ``--volumes-from``,
an empty volume filled from the image, propagation's shared-mount check, and ``docker diff``,
which never shows a mount point."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound
from cnm.runtime.model import Image, MountRequest
from cnm.runtime.runtime import Runtime
from tests.support.runtime import config, host, logged


def _run(runtime: Runtime, name: str, *cmd: str, **host_options: object) -> str:
    runtime.create_container(name, config("busybox:local", *cmd), host(**host_options), {})
    runtime.start_container(name)
    code = runtime.wait_container(name, timeout=20)
    assert code == 0, logged(runtime, name)
    return logged(runtime, name)


def test_binds_tmpfs_and_a_named_volume(runtime: Runtime, busybox: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "f").write_text("from the host\n")
    out = _run(
        runtime,
        "mounts",
        "sh",
        "-c",
        "cat /ro/f; touch /ro/x 2>&1; echo written > /rw/new; df -k /t | tail -1; "
        "echo kept > /data/v",
        binds=[f"{source}:/ro:ro", f"{source}:/rw", "named:/data"],
        tmpfs={"/t": "size=1m"},
    )
    assert "from the host" in out
    assert "Read-only file system" in out
    assert (source / "new").read_text() == "written\n"
    assert " 1024 " in out  # the tmpfs has the size asked for
    volume = runtime.volume("named")
    assert (Path(volume.mountpoint) / "v").read_text() == "kept\n"
    points = {p.destination: p for p in runtime.container("mounts").mount_points}
    assert points["/ro"].read_only and points["/ro"].propagation == "rprivate"
    assert points["/data"].name == "named" and points["/data"].mode == "z"
    # Nothing the container wrote went to its own layer, and no mount point shows as a change.
    assert runtime.container_changes("mounts") == []

    # Another container sees the volume; --volumes-from shares it (read-only here).
    assert _run(runtime, "reader", "cat", "/data/v", volumes_from=["mounts:ro"]) == "kept\n"
    assert "Read-only" in _run(
        runtime, "writer", "sh", "-c", "touch /data/x 2>&1; true", volumes_from=["mounts:ro"]
    )
    with pytest.raises(Conflict, match="volume is in use"):
        runtime.remove_volume("named")
    for name in ("mounts", "reader", "writer"):
        runtime.remove_container(name)
    runtime.remove_volume("named")
    with pytest.raises(NotFound):
        runtime.volume("named")


def test_anonymous_volumes_are_filled_from_the_image_and_go_with_rm_v(
    runtime: Runtime, busybox: str
) -> None:
    _run(runtime, "seed", "sh", "-c", "mkdir /data && echo from-image > /data/seed")
    image = runtime.commit_container("seed", "seeded:1", Image(id=""), ["VOLUME /data"])
    assert image.volumes == ["/data"]
    runtime.create_container("user", config("seeded:1", "cat", "/data/seed"), host(), {})
    (point,) = runtime.container("user").mount_points
    assert point.anonymous and point.type == "volume" and len(point.name) == 64
    runtime.start_container("user")
    assert runtime.wait_container("user", timeout=20) == 0
    assert logged(runtime, "user") == "from-image\n"  # the empty volume got the image's files
    assert (Path(point.source) / "seed").read_text() == "from-image\n"
    runtime.remove_container("user", volumes=True)
    with pytest.raises(NotFound):
        runtime.volume(point.name)
    runtime.remove_container("seed")
    runtime.remove_image("seeded:1")


def test_mount_requests_and_their_refusals(runtime: Runtime, busybox: str, tmp_path: Path) -> None:
    source = tmp_path / "m"
    source.mkdir()
    out = _run(
        runtime,
        "mount",
        "sh",
        "-c",
        "ls /bound; df -k /scratch | tail -1",
        mounts=[
            MountRequest("bind", "/bound", str(source), read_only=True),
            MountRequest("tmpfs", "/scratch", tmpfs_size=2 << 20),
            MountRequest("volume", "/vol", "by-mount", volume_labels={"team": "a"}),
        ],
    )
    assert " 2048 " in out
    assert runtime.volume("by-mount").labels == {"team": "a"}
    runtime.remove_container("mount")
    runtime.remove_volume("by-mount")
    before = {v.name for v, _ in runtime.volumes()}
    refusals = [
        ({"binds": ["relative:dst"]}, "mount path must be absolute"),
        ({"binds": ["/a:/b:bogus"]}, "invalid mode: bogus"),
        ({"binds": ["vol:/b:rshared"]}, "invalid mode"),
        ({"binds": ["made:/same", "/tmp:/same"]}, "Duplicate mount point: /same"),
        (
            {"mounts": [MountRequest("bind", "/b", str(tmp_path / "absent"))]},
            "bind source path does not exist",
        ),
        ({"mounts": [MountRequest("tmpfs", "/t", "src")]}, "field Source must not be specified"),
        ({"tmpfs": {"/t": "size=1m,bogus=2"}}, "invalid tmpfs option"),
        ({"volume_driver": "nfs-plugin"}, "volume driver"),
        ({"volumes_from": ["absent"]}, "No such container: absent"),
    ]
    for options, message in refusals:
        with pytest.raises((InvalidParameter, NotFound), match=message):
            runtime.create_container("bad", config(busybox, "true"), host(**options), {})
    assert {v.name for v, _ in runtime.volumes()} == before  # nothing made for a refusal
    with pytest.raises(NotFound):
        runtime.container("bad")


def test_shared_propagation_needs_a_shared_source(
    runtime: Runtime, busybox: str, tmp_path: Path
) -> None:
    """Docker's rule: a shared (or slave) bind of a source on a private mount could never
    propagate anything, so the start fails and says why."""
    runtime.create_container(
        "prop", config(busybox, "true"), host(binds=[f"{tmp_path}:/p:rshared"]), {}
    )
    with pytest.raises(CnmError, match=r"is mounted on .* but it is not a shared mount"):
        runtime.start_container("prop")
