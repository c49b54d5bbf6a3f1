"""A CNI runtime written from the spec (SPEC.md 1.1, Sections 2 and 3), to drive plugins the way
containerd or CRI-O would: no packaged runtime (``cnitool``) exists for this machine, so the
tests carry their own.

``invoke`` is the execution protocol: the plugin found by its ``type`` in CNI_PATH, run in the
runtime's network namespace (``nsenter --net=<host>``: the reference ``bridge`` plugin makes its
bridge there), the parameters in CNI_* variables and nothing else inherited but PATH, the
configuration on stdin, the result (or error) parsed from stdout, the exit status kept.

``CniRuntime`` is Section 3 for a network configuration list: each plugin's request
configuration derived from its plugin object (``cniVersion`` and ``name`` inserted,
``runtimeConfig`` built from the capabilities the plugin declares and the runtime offers,
``capabilities`` removed, ``prevResult`` chained), ADD in order, DEL in reverse with the ADD's
final result, CHECK in order (skipped for ``disableCheck``), GC with
``cni.dev/valid-attachments``, STATUS. It caches each attachment's result as the spec asks.

Container namespaces are the runtime's: ``container_netns`` makes one under /run/cnm-test and
the test deletes it; the leftover check knows them.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnm.osl.namespace import create_netns, delete_netns
from tests.support.netns import MADE_NAMESPACES, NETNS_DIR

CNM_CNI = Path(sys.executable).parent / "cnm-cni"
REFERENCE_PLUGINS = Path("/usr/lib/cni")
CNI_PATH = f"{CNM_CNI.parent}:{REFERENCE_PLUGINS}"
TIMEOUT_S = 60


@dataclass
class Outcome:
    """One plugin execution: exit status, stdout parsed as JSON (None if empty), stderr."""

    returncode: int
    output: Any
    stderr: str

    @property
    def code(self) -> int:
        """The error result's code (the test fails if the call did not fail with one)."""
        assert self.returncode != 0, f"the call succeeded: {self.output}"
        assert isinstance(self.output, dict) and isinstance(self.output.get("code"), int), self
        return int(self.output["code"])

    @property
    def message(self) -> str:
        assert isinstance(self.output, dict), self
        return f"{self.output.get('msg', '')}: {self.output.get('details', '')}"


def find_plugin(plugin_type: str, cni_path: str = CNI_PATH) -> Path:
    for directory in cni_path.split(":"):
        candidate = Path(directory) / plugin_type
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no CNI plugin {plugin_type!r} in {cni_path}")


def invoke(
    plugin: Path,
    command: str,
    stdin: bytes | Mapping[str, Any],
    *,
    host_netns: str | None,
    container_id: str | None = None,
    netns: str | None = None,
    ifname: str | None = None,
    args: str | None = None,
    cni_path: str | None = CNI_PATH,
    environment: Mapping[str, str] | None = None,
) -> Outcome:
    """Run ``plugin`` once, as Section 2 says; ``environment`` adds or overrides variables."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command}
    for name, value in (
        ("CNI_CONTAINERID", container_id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_ARGS", args),
        ("CNI_PATH", cni_path),
    ):
        if value is not None:
            env[name] = value
    env.update(environment or {})
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    argv = [str(plugin)]
    if host_netns is not None:
        argv = ["nsenter", f"--net={host_netns}", *argv]
    done = subprocess.run(
        argv, input=data, env=env, capture_output=True, timeout=TIMEOUT_S, check=False
    )
    text = done.stdout.decode().strip()
    return Outcome(done.returncode, json.loads(text) if text else None, done.stderr.decode())


@dataclass(frozen=True)
class Attachment:
    container_id: str
    netns: str
    ifname: str = "eth0"
    args: str | None = None  # CNI_ARGS
    capability_args: Mapping[str, Any] = field(default_factory=dict)


class CniError(AssertionError):
    def __init__(self, plugin: str, outcome: Outcome) -> None:
        super().__init__(
            f"{plugin} failed ({outcome.returncode}): {outcome.output} {outcome.stderr}"
        )
        self.outcome = outcome


class CniRuntime:
    """Section 3 over one network configuration list, as a runtime executes it."""

    def __init__(
        self, netconf: Mapping[str, Any], host_netns: str, cni_path: str = CNI_PATH
    ) -> None:
        self.netconf = dict(netconf)
        self.host_netns = host_netns
        self.cni_path = cni_path
        self.results: dict[tuple[str, str], Any] = {}  # the cached final ADD results

    @property
    def version(self) -> str:
        """The highest version of ``cniVersion`` and ``cniVersions`` (Section 1)."""
        versions = [self.netconf["cniVersion"], *self.netconf.get("cniVersions", [])]
        return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))

    def request_config(
        self, plugin: Mapping[str, Any], attachment: Attachment | None, prev: Any
    ) -> dict[str, Any]:
        """Section 3, "Deriving request configuration from plugin configuration"."""
        config = {k: v for k, v in plugin.items() if k != "capabilities"}
        config["cniVersion"] = self.version
        config["name"] = self.netconf["name"]
        if attachment is not None:
            offered = plugin.get("capabilities", {})
            runtime_config = {
                key: value for key, value in attachment.capability_args.items() if offered.get(key)
            }
            if runtime_config:
                config["runtimeConfig"] = runtime_config
            if prev is not None:
                config["prevResult"] = prev
        return config

    def _run(
        self,
        command: str,
        plugin: Mapping[str, Any],
        config: Mapping[str, Any],
        attachment: Attachment | None,
    ) -> Outcome:
        return invoke(
            find_plugin(plugin["type"], self.cni_path),
            command,
            config,
            host_netns=self.host_netns,
            container_id=attachment.container_id if attachment else None,
            netns=attachment.netns if attachment and command != "DEL" else None,
            ifname=attachment.ifname if attachment else None,
            args=attachment.args if attachment else None,
            cni_path=self.cni_path,
        )

    def add(self, attachment: Attachment) -> Any:
        prev = None
        for plugin in self.netconf["plugins"]:
            outcome = self._run(
                "ADD", plugin, self.request_config(plugin, attachment, prev), attachment
            )
            if outcome.returncode != 0:
                raise CniError(plugin["type"], outcome)
            prev = outcome.output
        self.results[(attachment.container_id, attachment.ifname)] = prev
        return prev

    def delete(self, attachment: Attachment, *, with_netns: bool = True) -> None:
        prev = self.results.get((attachment.container_id, attachment.ifname))
        for plugin in reversed(self.netconf["plugins"]):
            config = self.request_config(plugin, attachment, prev)
            outcome = invoke(
                find_plugin(plugin["type"], self.cni_path),
                "DEL",
                config,
                host_netns=self.host_netns,
                container_id=attachment.container_id,
                netns=attachment.netns if with_netns else None,
                ifname=attachment.ifname,
                args=attachment.args,
                cni_path=self.cni_path,
            )
            if outcome.returncode != 0:
                raise CniError(plugin["type"], outcome)
        self.results.pop((attachment.container_id, attachment.ifname), None)

    def check(self, attachment: Attachment) -> None:
        if self.netconf.get("disableCheck"):
            return
        prev = self.results[(attachment.container_id, attachment.ifname)]
        for plugin in self.netconf["plugins"]:
            config = self.request_config(plugin, attachment, prev)
            outcome = self._run("CHECK", plugin, config, attachment)
            if outcome.returncode != 0:
                raise CniError(plugin["type"], outcome)

    def gc(self, valid: Sequence[Attachment]) -> list[Outcome]:
        """GC every plugin (going on past errors); the failed outcomes."""
        if self.netconf.get("disableGC"):
            return []
        failed = []
        for plugin in self.netconf["plugins"]:
            config = self.request_config(plugin, None, None)
            config["cni.dev/valid-attachments"] = [
                {"containerID": a.container_id, "ifname": a.ifname} for a in valid
            ]
            outcome = self._run("GC", plugin, config, None)
            if outcome.returncode != 0:
                failed.append(outcome)
        return failed

    def status(self) -> list[Outcome]:
        return [
            self._run("STATUS", plugin, self.request_config(plugin, None, None), None)
            for plugin in self.netconf["plugins"]
        ]


@contextmanager
def container_netns(prefix: str = "ctr") -> Iterator[str]:
    """A container's namespace as a runtime makes it (loopback left down: bringing it up is
    the loopback plugin's job), deleted afterwards."""
    namespace = create_netns(NETNS_DIR / f"{prefix}-{secrets.token_hex(4)}")
    MADE_NAMESPACES.append(namespace.path)
    namespace.close()
    try:
        yield namespace.path
    finally:
        delete_netns(namespace.path)


def netns_run(netns: str, *args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={netns}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
