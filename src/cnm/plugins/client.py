"""The plugin transport: one JSON POST per call, made the way Docker's ``pkg/plugins`` makes it.

Why it looks like this:

* Every call is ``POST /<Subsystem>.<Method>`` with ``Accept:
  application/vnd.docker.plugins.v1.2+json`` and a JSON body (none for the handshakes), and is
  answered with a JSON object (``null`` is taken as ``{}``, as Go's decoder takes it).
* Connections are kept alive and reused, so a call is one write and one read on an open
  socket. Before an idle connection is reused it is polled: readable means the plugin closed it
  (it restarted, or it closes idle connections), and it is dropped. A request is never sent
  twice: the methods are not idempotent (a second CreateEndpoint is a second endpoint).
* ``timeout`` bounds every wait on the socket (connect, send, each read). A plugin that hangs
  fails the call with ``Unavailable`` after that long, and the caller rolls its operation back.
* Status codes, as Docker reads them: 200 is an answer; 404 means the plugin does not
  implement the method (``MethodNotImplemented``: optional methods are skipped); any other
  status is the plugin's refusal (``PluginRefused``) whose text is the body's ``Err``, else the
  body itself. A refusal says the plugin did nothing; a timeout, a lost connection or a
  malformed answer (``Unavailable``, ``CnmError``) leave open whether it did, and callers undo.
"""

from __future__ import annotations

import http.client
import json
import select
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cnm.errors import CnmError, InvalidParameter, Unavailable
from cnm.unixhttp import UnixHTTPConnection

PLUGIN_MIME_TYPE = "application/vnd.docker.plugins.v1.2+json"
IDLE_CONNECTIONS = 4  # kept per plugin; more concurrent calls open more, closed afterwards


class MethodNotImplemented(CnmError):
    """The plugin answered 404 for the method: it does not implement it."""

    def __init__(self, plugin: str, method: str) -> None:
        super().__init__(f"{method}: plugin {plugin} does not implement it")
        self.method = method


class PluginRefused(CnmError):
    """The plugin answered that it could not do what was asked (an error status, or ``Err``)."""


def parse_address(address: str) -> tuple[str, str]:
    """``unix:///path`` -> ("unix", "/path"); ``tcp://host:port`` or ``http://host:port`` ->
    ("tcp", "host:port"). TLS (``https://``) is refused: cnm has no TLS for plugins."""
    parts = urlsplit(address)
    if parts.scheme == "unix" and parts.path.startswith("/"):
        return "unix", parts.path
    if parts.scheme in ("tcp", "http") and parts.hostname and parts.port:
        return "tcp", parts.netloc
    if parts.scheme == "https":
        raise InvalidParameter(f"plugin address {address}: TLS plugin addresses are not supported")
    raise InvalidParameter(f"plugin address {address!r}: expected unix:///path or tcp://host:port")


class PluginClient:
    """Calls to one plugin at ``address`` (see ``parse_address``); safe to share by threads."""

    def __init__(self, name: str, address: str, timeout: float) -> None:
        self.name = name
        self.address = address
        self.timeout = timeout
        self._scheme, self._where = parse_address(address)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def call(self, method: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST ``/method`` with ``payload`` as JSON (no body when None) and return the answer.

        Raises ``Unavailable`` when the plugin cannot be reached, times out or closes the
        connection without an answer; ``MethodNotImplemented`` on 404; ``PluginRefused`` for
        any other error status; ``CnmError`` for an answer that is not a JSON object."""
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = {"Accept": PLUGIN_MIME_TYPE, "Content-Length": str(len(body))}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        connection = self._take()
        try:
            connection.request("POST", "/" + method, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except TimeoutError:
            connection.close()
            raise Unavailable(
                f"{method}: plugin {self.name} did not answer within {self.timeout:g}s"
            ) from None
        except (ConnectionRefusedError, FileNotFoundError) as err:
            connection.close()
            raise Unavailable(
                f"{method}: cannot reach plugin {self.name} at {self.address}: {err.strerror}"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            raise Unavailable(
                f"{method}: plugin {self.name} closed the connection without an answer "
                f"({type(err).__name__})"
            ) from None
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return self._answer(method, response.status, data)

    def _answer(self, method: str, status: int, data: bytes) -> dict[str, Any]:
        if status == 404:
            raise MethodNotImplemented(self.name, method)
        if status != 200:
            raise PluginRefused(f"{method}: {_error_text(data)}")
        try:
            answer = json.loads(data) if data.strip() != b"null" else {}
        except ValueError as err:
            raise CnmError(
                f"{method}: plugin {self.name} sent malformed JSON ({err}): {_excerpt(data)}"
            ) from None
        if not isinstance(answer, dict):
            raise CnmError(f"{method}: plugin {self.name} sent {_excerpt(data)}, not a JSON object")
        return answer

    def _take(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if _still_open(connection):
                    return connection
                connection.close()
        if self._scheme == "unix":
            return UnixHTTPConnection(self._where, self.timeout, host="plugin")
        return http.client.HTTPConnection(self._where, timeout=self.timeout)

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle connection is usable if nothing is waiting to be read on it: a readable idle
    socket holds the peer's EOF (or bytes nobody asked for)."""
    sock = connection.sock
    if sock is None:
        return False
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def _error_text(data: bytes) -> str:
    try:
        decoded = json.loads(data)
    except ValueError:
        decoded = None
    message = decoded.get("Err") if isinstance(decoded, dict) else None
    if isinstance(message, str) and message:
        return message
    return data.decode(errors="replace").strip()


def _excerpt(data: bytes, limit: int = 80) -> str:
    text = data.decode(errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
