"""Container start, `docker run -d` and live connect/disconnect latency (issue 3's benchmark).

A real daemon runs inside a throwaway namespace playing the host (its exec and data roots in a
temp dir); the busybox fixture is imported and K containers run `sleep` on one user network.

* start: time of `POST /containers/{id}/start` — it returns once the sandbox, its endpoints
  (veth, address, routes, hosts file) and the runc process exist, i.e. with networking ready.
* docker run -d: the whole CLI command (create + start + the CLI's own ~40 ms), per CLI found.
* connect / disconnect: `POST /networks/{id}/connect|disconnect` on a running container.

Docker 20.10's figures come from ../shared/peers/RESULTS.md (not measured in this run).
Prints figures, asserts nothing; everything it made is removed on exit, also on Ctrl-C.

    sudo .venv/bin/python bench/containers.py [--k 50]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchlib import bench_root, fmt, host_namespace, percentile, run_main

from cnm.unixhttp import UnixHTTPConnection

BUSYBOX_TAR = Path("/work/shared/fixtures/busybox-rootfs.tar")
DOCKER_CLIS = [p for p in ("/usr/bin/docker", "/usr/local/bin/docker") if Path(p).exists()]
# Docker 20.10 on this machine, from ../shared/peers/RESULTS.md (API create+start on the
# default bridge; CLI `docker run --rm` on the default bridge; CLI connect re-attach).
DOCKER_BASELINE = {"start (API create+start)": 336.8, "docker run": 375.0, "connect": 62.1}


def call(sock: Path, method: str, url: str, body: object = None) -> tuple[int, object]:
    conn = UnixHTTPConnection(str(sock), 60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, url, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw)
    finally:
        conn.close()


def check(status: int, payload: object, what: str) -> object:
    if status >= 400:
        raise RuntimeError(f"{what}: HTTP {status}: {payload}")
    return payload


@contextmanager
def daemon(root: Path, netns: str) -> Iterator[Path]:
    sock = root / "cnm.sock"
    process = subprocess.Popen(
        [
            "nsenter",
            f"--net={netns}",
            sys.executable,
            "-m",
            "cnm.cli.main",
            "daemon",
            "--exec-root",
            str(root / "exec"),
            "--data-root",
            str(root / "data"),
            "--socket",
            str(sock),
            "--log-level",
            "error",
            "--dns",
            "127.0.0.1",  # forwarded DNS stays in the throwaway namespace
        ],
        stderr=open(root / "daemon.log", "wb"),  # noqa: SIM115
    )
    with serving(process, sock, root / "daemon.log", "the daemon", start_s=20, stop_s=20):
        yield sock


@contextmanager
def serving(
    process: subprocess.Popen[bytes],
    sock: Path,
    log: Path,
    what: str,
    start_s: float,
    stop_s: float,
) -> Iterator[None]:
    """Wait (up to ``start_s``) until the daemon ``process`` answers /_ping on ``sock``; on
    exit SIGTERM it, and SIGKILL it after ``stop_s``."""
    try:
        deadline = time.monotonic() + start_s
        while time.monotonic() < deadline:
            try:
                if call(sock, "GET", "/_ping")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{what} did not start: {log.read_text()}")
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=stop_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def import_busybox(sock: Path) -> None:
    conn = UnixHTTPConnection(str(sock), 60)
    try:
        conn.request(
            "POST",
            "/images/create?fromSrc=-&repo=busybox&tag=local",
            body=BUSYBOX_TAR.read_bytes(),
            headers={"Content-Type": "application/x-tar"},
        )
        response = conn.getresponse()
        body = response.read()
        if response.status >= 400:
            raise RuntimeError(f"import failed: {body!r}")
    finally:
        conn.close()


def summary(name: str, values: list[float], baseline: float | None = None) -> str:
    line = (
        f"  {name:<34} p50 {fmt(percentile(values, 50))} ms  p95 {fmt(percentile(values, 95))} ms"
        f"  (n={len(values)})"
    )
    if baseline is not None and values:
        line += (
            f"   Docker 20.10: {baseline:.1f} ms  ratio {baseline / percentile(values, 50):.1f}x"
        )
    return line


def bench(k: int) -> None:
    with bench_root("cnm-bench-containers-") as root, host_namespace(root / "ns") as ns:
        with daemon(root, ns.path) as sock:
            import_busybox(sock)
            network = check(
                *call(sock, "POST", "/networks/create", {"Name": "bench-net"}), "network"
            )
            other = check(
                *call(sock, "POST", "/networks/create", {"Name": "bench-other"}), "network"
            )
            starts: list[float] = []
            ids: list[str] = []
            for i in range(k):
                created = check(
                    *call(
                        sock,
                        "POST",
                        f"/containers/create?name=api-{i}",
                        {
                            "Image": "busybox:local",
                            "Cmd": ["sleep", "1000"],
                            "HostConfig": {"NetworkMode": "bench-net"},
                        },
                    ),
                    "create",
                )
                cid = created["Id"]  # type: ignore[index]
                ids.append(cid)
                began = time.perf_counter()
                check(*call(sock, "POST", f"/containers/{cid}/start"), "start")
                starts.append((time.perf_counter() - began) * 1000)
            runs: dict[str, list[float]] = {}
            env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(root)}
            for cli in DOCKER_CLIS:
                times = runs.setdefault(cli, [])
                for i in range(k):
                    began = time.perf_counter()
                    subprocess.run(
                        [
                            cli,
                            "run",
                            "-d",
                            "--name",
                            f"run-{len(runs)}-{i}",
                            "--network",
                            "bench-net",
                            "busybox:local",
                            "sleep",
                            "1000",
                        ],
                        env=env,
                        check=True,
                        capture_output=True,
                    )
                    times.append((time.perf_counter() - began) * 1000)
            connects: list[float] = []
            disconnects: list[float] = []
            other_id = other["Id"]  # type: ignore[index]
            for cid in ids:
                began = time.perf_counter()
                check(
                    *call(sock, "POST", f"/networks/{other_id}/connect", {"Container": cid}),
                    "connect",
                )
                connects.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                check(
                    *call(sock, "POST", f"/networks/{other_id}/disconnect", {"Container": cid}),
                    "disconnect",
                )
                disconnects.append((time.perf_counter() - began) * 1000)
            _, listed = call(sock, "GET", "/containers/json?all=1")
            for container in listed:  # type: ignore[union-attr]
                call(sock, "DELETE", f"/containers/{container['Id']}?force=1")
            call(sock, "DELETE", f"/networks/{network['Id']}")  # type: ignore[index]
            call(sock, "DELETE", f"/networks/{other_id}")
        print(f"Containers on one user network, {k} of each (busybox `sleep`, runc)")
        print(
            summary(
                "start (API, networking ready)", starts, DOCKER_BASELINE["start (API create+start)"]
            )
        )
        for cli, times in runs.items():
            print(summary(f"docker run -d ({cli})", times, DOCKER_BASELINE["docker run"]))
        print(summary("connect (API, running container)", connects, DOCKER_BASELINE["connect"]))
        print(summary("disconnect (API, running container)", disconnects))
        print("  targets: start p50 <= 60 ms; connect p50 <= 12 ms")
        print("  Docker 20.10 figures: ../shared/peers/RESULTS.md, not measured in this run")
        print("    (its start figure is create+start through the API, its run and connect the CLI)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=50, help="containers per measurement (50)")
    args = parser.parse_args()
    bench(args.k)


if __name__ == "__main__":
    run_main(main)
