"""A container's files and figures, in-process: ``docker cp`` both ways (running and stopped,
through volumes, never out through a symlink), ``docker diff``, ``commit`` with changes,
``prune``, ``pause``, ``top`` and ``stats`` with the sandbox's interface counters."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.runtime.changes import ADDED, DELETED, MODIFIED
from cnm.runtime.model import Image
from cnm.runtime.runtime import Runtime
from tests.support.runtime import config, host, logged, make_network, output


def _tar(**files: bytes) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name.replace("__", "/"))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _read(runtime: Runtime, ref: str, path: str) -> dict[str, bytes]:
    archive = runtime.read_archive(ref, path)
    try:
        data = archive.stream.read()
    finally:
        archive.close()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar}  # type: ignore[union-attr]


def test_copy_both_ways_running_and_stopped(runtime: Runtime, busybox: str, tmp_path: Path) -> None:
    runtime.create_container(
        "files", config(busybox, "sh", "-c", "cat /vol/in /tmp/in; sleep 1000"),
        host(binds=["cpvol:/vol"]), {},
    )  # fmt: skip
    # Stopped, never started: into its volume and its own layer.
    runtime.write_archive("files", "/vol", _tar(**{"in": b"to the volume\n"}))
    runtime.write_archive("files", "/tmp", _tar(**{"in": b"to the layer\n"}))
    with pytest.raises(NotFound, match="Could not find the file /absent"):
        runtime.write_archive("files", "/absent", _tar(x=b""))
    with pytest.raises(InvalidParameter, match="not a directory"):
        runtime.write_archive("files", "/tmp/in", _tar(x=b""))
    runtime.start_container("files")
    deadline = time.monotonic() + 10
    while "to the layer" not in logged(runtime, "files"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert logged(runtime, "files") == "to the volume\nto the layer\n"
    # Running: out of it, with its PathStat; a directory with its contents.
    found = runtime.stat_path("files", "/tmp/in")
    assert (found.name, found.size, found.mode & 0o777) == ("in", 13, 0o644)
    assert _read(runtime, "files", "/vol/in") == {"in": b"to the volume\n"}
    runtime.write_archive("files", "/tmp", _tar(**{"d__a": b"A", "d__b": b"B"}))
    assert sorted(_read(runtime, "files", "/tmp/d")) == ["d", "d/a", "d/b"]
    assert sorted(_read(runtime, "files", "/tmp/d/.")) == [".", "./a", "./b"]
    with pytest.raises(NotFound):
        runtime.stat_path("files", "/nowhere")


def test_copy_never_leaves_the_container_through_a_symlink(
    runtime: Runtime, busybox: str, tmp_path: Path
) -> None:
    marker = f"cnm-escape-{os.getpid()}"
    runtime.create_container(
        "tricky", config(busybox, "sh", "-c", f"ln -s / /up && ln -s /tmp/{marker} /link; sleep 1000"),
        host(), {},
    )  # fmt: skip
    runtime.start_container("tricky")
    deadline = time.monotonic() + 10
    while "link" not in output(runtime, "tricky", "ls", "/"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runtime.write_archive("tricky", "/up/tmp", _tar(**{marker: b"inside\n"}))
    assert not Path("/tmp", marker).exists()  # the container's /tmp, not the host's
    assert output(runtime, "tricky", "cat", f"/tmp/{marker}") == "inside\n"
    hostname = _read(runtime, "tricky", "/up/etc/hostname")
    assert hostname == {"hostname": (runtime.container("tricky").id[:12] + "\n").encode()}
    runtime.stop_container("tricky", timeout=0)
    runtime.write_archive("tricky", "/up/tmp", _tar(**{f"{marker}-2": b"x"}))
    assert not Path("/tmp", f"{marker}-2").exists()


def test_diff_commit_and_prune(runtime: Runtime, busybox: str) -> None:
    runtime.create_container(
        "changer",
        config(
            busybox, "sh", "-c", "touch /new; rm /bin/true; echo x >> /etc/motd; mkdir -p /tmp/d"
        ),
        host(binds=["diffvol:/data"]),
        {},
    )
    runtime.start_container("changer")
    assert runtime.wait_container("changer", timeout=20) == 0
    changes = dict(runtime.container_changes("changer"))
    assert changes["/new"] == ADDED and changes["/bin/true"] == DELETED
    assert changes["/etc/motd"] == ADDED or changes["/etc/motd"] == MODIFIED
    assert changes["/bin"] == MODIFIED and changes["/tmp/d"] == ADDED
    assert "/data" not in changes and "/etc/hosts" not in changes  # mount points never show

    template = Image(id="", comment="made in a test", author="cnm")
    image = runtime.commit_container(
        "changer", "changed:v1", template, ['CMD ["cat", "/new"]', "ENV MODE=test", "EXPOSE 80"]
    )
    assert image.repo_tags == ["changed:v1"] and image.cmd == ["cat", "/new"]
    assert "MODE=test" in image.env and image.exposed_ports == ["80/tcp"]
    assert image.parent == runtime.container("changer").image_id
    assert image.container_config is not None and image.container_config.image == busybox
    runtime.create_container("child", config("changed:v1"), host(), {})
    runtime.start_container("child")
    assert runtime.wait_container("child", timeout=20) == 0
    assert logged(runtime, "child") == ""  # /new, empty, is in the image
    code, _, _ = _exec_in_image(runtime, "changed:v1", "true")
    assert code != 0  # /bin/true was deleted in the commit

    runtime.create_container("alive", config(busybox, "sleep", "1000"), host(), {})
    runtime.start_container("alive")
    changer = runtime.container("changer").id
    removed, reclaimed = runtime.prune_containers(lambda c: c.name in ("child", "probe"))
    assert removed == [changer] and reclaimed > 0
    assert {c.name for c in runtime.containers(all=True)} == {"child", "alive", "probe"}
    with pytest.raises(Conflict):
        runtime.remove_image("changed:v1")  # a container uses it
    removed_volumes, _ = runtime.prune_volumes(lambda v: False)
    assert removed_volumes == ["diffvol"]


def _exec_in_image(runtime: Runtime, image: str, *cmd: str) -> tuple[int, str, str]:
    runtime.create_container("probe", config(image, *cmd), host(), {})
    try:
        runtime.start_container("probe")
    except InvalidParameter as err:  # the command is missing from the image
        return 127, "", str(err)
    return runtime.wait_container("probe", timeout=20), logged(runtime, "probe"), ""


def test_pause_top_and_stats(runtime: Runtime, busybox: str) -> None:
    network = make_network(runtime, "statnet", "10.87.0.0/24")
    runtime.create_container(
        "busy", config(busybox, "sleep", "1000"), host(network_mode="statnet"), {}
    )
    runtime.start_container("busy")
    gateway = str(network.ipv4_pools[0].gateway).split("/")[0]
    output(runtime, "busy", "ping", "-c", "2", "-W", "2", gateway)
    titles, rows = runtime.container_top("busy")
    assert "PID" in titles and any(row[-1] == "sleep 1000" for row in rows)
    titles, rows = runtime.container_top("busy", "-o pid,comm")
    assert titles == ["PID", "COMMAND"] and [r[1] for r in rows if r[1] == "sleep"] == ["sleep"]
    sample = runtime.container_stats("busy")
    assert sample.cpu_total > 0 and sample.memory_usage > 0 and sample.pids_current == 1
    assert sample.system_cpu > 0 and sample.online_cpus >= 1
    eth0 = sample.networks["eth0"]
    assert eth0["tx_packets"] >= 2 and eth0["rx_packets"] >= 2 and eth0["rx_bytes"] > 0
    assert "lo" not in sample.networks
    runtime.pause_container("busy")
    assert runtime.container("busy").state.paused
    with pytest.raises(Conflict, match="is paused"):
        runtime.exec_create("busy", ["true"], [], False)
    with pytest.raises(Conflict, match="already paused"):
        runtime.pause_container("busy")
    runtime.unpause_container("busy")
    assert runtime.container("busy").state.status == "running"
    runtime.pause_container("busy")
    runtime.stop_container("busy", timeout=1)  # a paused container stops (it is thawed)
    assert runtime.container("busy").state.status == "exited"
    stopped = runtime.container_stats("busy")
    assert stopped.cpu_total == 0 and stopped.networks == {}
