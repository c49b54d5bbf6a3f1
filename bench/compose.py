"""`docker-compose up -d` and `down` of a project of four services over three networks, on cnm
and on dockerd 20.10 in the same run (issue 11's figure).

The project is the client tests' (tests/clients/compose/three-networks.yml: four services,
networks front, back (internal, a fixed subnet) and mgmt, an external one, ports, aliases,
links, a static and a link-local address, network_mode: service:). Each daemon runs in a
throwaway namespace of its own with its roots in a temp dir; the busybox fixture is imported
into each. R times: `up -d`, then `down -t 0`, each timed whole (Compose's own start-up,
about half a second of Python, is in both). dockerd is Debian's /usr/sbin/dockerd, skipped when
absent. Prints figures, asserts nothing; everything it made is removed on exit.

    sudo .venv/bin/python bench/compose.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchlib import bench_root, fmt, host_namespace, percentile, run_main
from containers import call, daemon, import_busybox, serving

PROJECT = Path(__file__).resolve().parent.parent / "tests/clients/compose/three-networks.yml"
DOCKERD = next((p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if Path(p).exists()), None)
COMPOSE = shutil.which("docker-compose")


@contextmanager
def dockerd(root: Path, netns: str) -> Iterator[Path]:
    assert DOCKERD is not None
    sock = root / "docker.sock"
    process = subprocess.Popen(
        [
            "nsenter", f"--net={netns}", DOCKERD,
            "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "-H", f"unix://{sock}", "--pidfile", str(root / "dockerd.pid"),
            "--dns", "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "dockerd.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    try:
        with serving(process, sock, root / "dockerd.log", "dockerd", start_s=30, stop_s=30):
            yield sock
    finally:
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True, check=False)
        subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True, check=False)


def compose_times(sock: Path, home: Path, reps: int) -> tuple[list[float], list[float]]:
    assert COMPOSE is not None
    call(sock, "POST", "/networks/create", {"Name": "bench-shared"})
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DOCKER_HOST": f"unix://{sock}",
        "WEB_PORT": "18280",
        "BACK_PREFIX": "172.31.252",
        "SHARED": "bench-shared",
    }
    base = [COMPOSE, "--no-ansi", "-p", "bench", "-f", str(PROJECT)]
    ups: list[float] = []
    downs: list[float] = []
    for _ in range(reps):
        began = time.perf_counter()
        subprocess.run([*base, "up", "-d"], env=env, check=True, capture_output=True)
        ups.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        subprocess.run([*base, "down", "-t", "0"], env=env, check=True, capture_output=True)
        downs.append((time.perf_counter() - began) * 1000)
    return ups, downs


def line(name: str, values: list[float]) -> str:
    return (
        f"  {name:<22} p50 {fmt(percentile(values, 50), 8, 0)} ms"
        f"  min {fmt(min(values), 8, 0)} ms  max {fmt(max(values), 8, 0)} ms  (n={len(values)})"
    )


def bench(reps: int) -> None:
    if COMPOSE is None:
        raise SystemExit("docker-compose is not installed (scripts/setup.sh --test)")
    print(f"docker-compose up -d / down -t 0 of {PROJECT.name}, {reps} times each")
    with bench_root("cnm-bench-compose-") as root:
        (root / "cnm").mkdir()
        with host_namespace(root / "cnm-ns") as ns, daemon(root / "cnm", ns.path) as sock:
            import_busybox(sock)
            ups, downs = compose_times(sock, root, reps)
        print("cnm:")
        print(line("up -d", ups))
        print(line("down", downs))
        if DOCKERD is None:
            print("dockerd: not installed, not measured")
            return
        (root / "docker").mkdir()
        with host_namespace(root / "docker-ns") as ns, dockerd(root / "docker", ns.path) as sock:
            import_busybox(sock)
            ups, downs = compose_times(sock, root, reps)
        print("dockerd 20.10:")
        print(line("up -d", ups))
        print(line("down", downs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    bench(args.reps)


if __name__ == "__main__":
    run_main(main)
