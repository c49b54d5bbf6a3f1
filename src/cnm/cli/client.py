"""A small Engine API client over the daemon's Unix socket (stdlib only, so ``cnm`` starts fast).

Requests use the versioned paths (``/v1.47/...``) the way the docker CLI does. A non-2xx answer
raises ApiError with the daemon's message; a daemon that cannot be reached raises
DaemonUnreachable with a sentence the user can act on.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote, urlencode

from cnm.api import API_VERSION

DEFAULT_HOST = "unix:///run/cnm/cnm.sock"
TIMEOUT_S = 120.0


class CliError(Exception):
    """A failure reported to the user as its message, with exit status 1."""


class ApiError(CliError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.status = status
        self.message = message


class DaemonUnreachable(CliError):
    pass


def socket_path(host: str) -> str:
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    if host.startswith("/"):
        return host
    raise CliError(f"unsupported host {host!r}: expected unix:///path/to/socket")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Client:
    def __init__(self, host: str, timeout: float = TIMEOUT_S) -> None:
        self.host = host
        self.path = socket_path(host)
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: object = None,
    ) -> Any:
        """Send one request; return the decoded JSON answer (None when there is no body)."""
        url = f"/v{API_VERSION}{path}"
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = _UnixConnection(self.path, self.timeout)
        try:
            connection.request(method, url, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonUnreachable(
                f"Cannot connect to the cnm daemon at {self.host}. Is the cnm daemon running?"
            ) from None
        except PermissionError:
            raise DaemonUnreachable(
                f"permission denied while trying to connect to the cnm daemon socket at {self.host}"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            raise DaemonUnreachable(
                f"error talking to the cnm daemon at {self.host}: {err}"
            ) from None
        finally:
            connection.close()
        data = _decode(raw, response.getheader("Content-Type", ""))
        if response.status >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            text = message or raw.decode(errors="replace").strip()
            raise ApiError(response.status, text or f"HTTP {response.status} {response.reason}")
        return data

    def network(self, ref: str) -> dict[str, Any]:
        return self.request("GET", f"/networks/{quote(ref, safe='')}")


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw or not content_type.startswith("application/json"):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
