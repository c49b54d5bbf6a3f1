"""The plugin suite's processes: sample plugins (``sample_plugin.py``) and ``cnm plugin serve``,
each started and stopped by PID. Every process started is kept in ``STARTED`` so that the
suite's leftover check (``conftest.py``) can kill any a failing test left running."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnm.errors import CnmError
from cnm.plugins.client import PluginClient

SAMPLE_PLUGIN = Path(__file__).with_name("sample_plugin.py")
STARTED: list[subprocess.Popen[Any]] = []


@dataclass
class SamplePlugin:
    name: str
    socket: Path
    log_path: Path
    command: list[str]
    process: subprocess.Popen[str] | None = None

    @classmethod
    def make(
        cls, name: str, socket: Path, workdir: Path, *options: str, netns: str | None = None
    ) -> SamplePlugin:
        """A plugin (not started) logging and keeping state in ``workdir``; it runs in
        ``netns`` if given, else in the caller's namespace."""
        log_path = workdir / f"{name}.calls.jsonl"
        command = [
            sys.executable,
            str(SAMPLE_PLUGIN),
            "--socket",
            str(socket),
            "--log",
            str(log_path),
            "--state",
            str(workdir / f"{name}.state.json"),
            *options,
        ]
        if netns is not None:
            command = ["nsenter", f"--net={netns}", *command]
        return cls(name, socket, log_path, command)

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        STARTED.append(self.process)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        line = self.process.stdout.readline().strip() if ready else ""
        if line != "ready":
            self.stop()
            raise AssertionError(f"plugin {self.name} did not start: {line!r}")

    def stop(self) -> None:
        """SIGTERM by PID (the plugin removes its socket), SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """The requests the plugin got, oldest first (only ``method``'s if given)."""
        if not self.log_path.exists():
            return []
        entries = [json.loads(line) for line in self.log_path.read_text().splitlines()]
        return [e for e in entries if method is None or e["method"] == method]

    def methods(self) -> list[str]:
        return [entry["method"] for entry in self.calls()]

    def forget_calls(self) -> None:
        self.log_path.unlink(missing_ok=True)


CNM = str(Path(sys.executable).parent / "cnm")


@dataclass
class ServedPlugin:
    """``cnm plugin serve`` as a process (in ``netns`` if given, else the caller's)."""

    socket: Path
    data_root: Path
    log_path: Path
    netns: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [CNM, "plugin", "serve", "--socket", str(self.socket)]
        command += ["--data-root", str(self.data_root), "--log-level", "debug"]
        if self.netns is not None:
            command = ["nsenter", f"--net={self.netns}", *command]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        STARTED.append(self.process)
        client = PluginClient("cnm", f"unix://{self.socket}", 5.0)
        deadline = time.monotonic() + 20
        try:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"cnm plugin serve exited:\n{self.log()}")
                try:
                    client.call("Plugin.Activate")
                    return
                except CnmError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"no answer:\n{self.log()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def stop_leftover_processes() -> list[int]:
    """Kill the plugin processes of this session that still run; return their PIDs."""
    running = [process for process in STARTED if process.poll() is None]
    for process in running:
        process.kill()
        process.wait()
    return [process.pid for process in running]
