"""Finding plugins by name and activating them, as Docker's ``pkg/plugins`` does for v1
("legacy") plugins.

Where a plugin named ``NAME`` is looked for, in this order (Docker's):

1. a Unix socket ``NAME.sock`` or ``NAME/NAME.sock`` in each socket directory
   (``/run/docker/plugins``);
2. a spec file in each spec directory (``/etc/docker/plugins``, ``/usr/lib/docker/plugins``):
   ``NAME.spec`` or ``NAME/NAME.spec`` holding an address (``unix:///path``,
   ``tcp://host:port``), then ``NAME.json`` or ``NAME/NAME.json`` holding
   ``{"Name": ..., "Addr": ...}``. TLS addresses are refused: cnm speaks plain HTTP only.

The directories are daemon options (tests point them at temporary directories). Activation is
``POST /Plugin.Activate`` answered by ``{"Implements": ["NetworkDriver", ...]}``; an activated
plugin is kept and serves every subsystem it implements. Unlike Docker, a plugin that is not
there is not waited for (Docker retries for 30 s): ``docker network create -d typo`` fails at
once, and a plugin started later is found by the next request that names it.
"""

from __future__ import annotations

import json
import logging
import re
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnm.errors import CnmError, InvalidParameter, NotFound, Unavailable
from cnm.plugins.client import PluginClient, parse_address

log = logging.getLogger(__name__)

SOCKET_DIRS = (Path("/run/docker/plugins"),)
SPEC_DIRS = (Path("/etc/docker/plugins"), Path("/usr/lib/docker/plugins"))
DEFAULT_TIMEOUT_S = 30.0
PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class PluginConfig:
    """Where plugins are looked for, and how long a call to one may take."""

    socket_dirs: Sequence[Path] = SOCKET_DIRS
    spec_dirs: Sequence[Path] = SPEC_DIRS
    timeout: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Plugin:
    """An activated plugin: its client and the subsystems it implements."""

    name: str
    client: PluginClient
    implements: tuple[str, ...]


def locate(name: str, config: PluginConfig) -> str | None:
    """The address of plugin ``name`` (``unix:///...`` or ``tcp://...``), or None."""
    if not PLUGIN_NAME.match(name):
        return None
    for directory in config.socket_dirs:
        for path in _candidates(directory, name, ".sock"):
            try:
                if stat.S_ISSOCK(path.stat().st_mode):
                    return f"unix://{path}"
            except OSError:
                continue
    for directory in config.spec_dirs:
        for extension in (".spec", ".json"):
            for path in _candidates(directory, name, extension):
                if path.is_file():
                    return _read_spec(path)
    return None


def _candidates(directory: Path, name: str, extension: str) -> tuple[Path, Path]:
    return directory / f"{name}{extension}", directory / name / f"{name}{extension}"


def _read_spec(path: Path) -> str:
    """The address in a ``.spec`` (the URL itself) or ``.json`` (``Addr``) spec file."""
    try:
        text = path.read_text()
    except OSError as err:
        raise Unavailable(f"cannot read plugin spec {path}: {err.strerror}") from None
    if path.suffix == ".spec":
        address = text.strip()
    else:
        try:
            spec = json.loads(text)
        except ValueError as err:
            raise InvalidParameter(f"plugin spec {path} is not valid JSON: {err}") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("Addr"), str):
            raise InvalidParameter(f"plugin spec {path} has no Addr string")
        if spec.get("TLSConfig"):
            raise InvalidParameter(f"plugin spec {path}: TLS plugin addresses are not supported")
        address = spec["Addr"]
    try:
        parse_address(address)
    except InvalidParameter as err:
        raise InvalidParameter(f"plugin spec {path}: {err}") from None
    return address


class PluginManager:
    """Activated plugins by name. ``get`` finds and activates a plugin the first time it is
    named; a failed activation is not kept, so the next request tries again."""

    def __init__(self, config: PluginConfig) -> None:
        self.config = config
        self._plugins: dict[str, Plugin] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            plugins, self._plugins = list(self._plugins.values()), {}
        for plugin in plugins:
            plugin.client.close()

    def get(self, name: str, subsystem: str) -> Plugin | None:
        """The plugin ``name`` if it exists and implements ``subsystem``; None if no plugin
        of that name is found. Raises ``NotFound`` when it exists but implements other
        subsystems, ``Unavailable``/``CnmError`` when it cannot be activated."""
        with self._lock:
            plugin = self._plugins.get(name)
            if plugin is None:
                address = locate(name, self.config)
                if address is None:
                    return None
                plugin = self._activate(name, address)
                self._plugins[name] = plugin
        if subsystem not in plugin.implements:
            raise NotFound(
                f"plugin {name} does not implement {subsystem} "
                f"(it implements {', '.join(plugin.implements) or 'nothing'})"
            )
        return plugin

    def _activate(self, name: str, address: str) -> Plugin:
        client = PluginClient(name, address, self.config.timeout)
        try:
            manifest = client.call("Plugin.Activate")
        except CnmError:
            client.close()
            raise
        implements = manifest.get("Implements")
        if not isinstance(implements, list) or not all(isinstance(i, str) for i in implements):
            client.close()
            raise CnmError(
                f"Plugin.Activate: plugin {name} answered without an Implements list of strings"
            )
        log.info("plugin activated name=%s address=%s implements=%s", name, address, implements)
        return Plugin(name, client, tuple(implements))
