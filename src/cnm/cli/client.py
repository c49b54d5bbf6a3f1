"""A small Engine API client over the daemon's Unix socket (stdlib only, so ``cnm`` starts fast).

Requests use the versioned paths (``/v1.47/...``) the way the docker CLI does. A non-2xx answer
raises ApiError with the daemon's message; a daemon that cannot be reached raises
DaemonUnreachable with a sentence the user can act on.

Three shapes of exchange: ``request`` (a JSON answer, read whole), ``open`` (an answer read
while it arrives: logs, import progress, a wait that answers when the container exits) and
``hijack`` (the connection taken over for attach and exec: frames out, stdin in).
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import struct
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote, urlencode

from cnm.api import API_VERSION
from cnm.unixhttp import UnixHTTPConnection

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


class Client:
    def __init__(self, host: str, timeout: float = TIMEOUT_S) -> None:
        self.host = host
        self.path = socket_path(host)
        self.timeout = timeout

    def _url(self, path: str, query: dict[str, str] | None) -> str:
        url = f"/v{API_VERSION}{path}"
        if query:
            url += "?" + urlencode(query)
        return url

    def _unreachable(self, err: Exception) -> DaemonUnreachable:
        if isinstance(err, FileNotFoundError | ConnectionRefusedError):
            return DaemonUnreachable(
                f"Cannot connect to the cnm daemon at {self.host}. Is the cnm daemon running?"
            )
        if isinstance(err, PermissionError):
            return DaemonUnreachable(
                f"permission denied while trying to connect to the cnm daemon socket at {self.host}"
            )
        return DaemonUnreachable(f"error talking to the cnm daemon at {self.host}: {err}")

    def open(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: object = None,
        upload: IO[bytes] | None = None,
        upload_size: int | None = None,
        forever: bool = False,
    ) -> http.client.HTTPResponse:
        """Send one request and return the answer once its headers arrived, to be read as it
        comes (the connection closes with the response). ``upload`` streams a file as the body;
        ``forever`` waits for the answer without a timeout (it comes when a container exits).
        An error answer raises ApiError."""
        headers = {"Accept": "application/json"}
        payload: bytes | IO[bytes] | None = None
        if upload is not None:
            payload = upload
            headers["Content-Type"] = "application/x-tar"
            if upload_size is not None:
                headers["Content-Length"] = str(upload_size)
        elif body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = UnixHTTPConnection(self.path, None if forever else self.timeout)
        try:
            connection.request(
                method,
                self._url(path, query),
                body=payload,
                headers=headers,
                encode_chunked=upload is not None and upload_size is None,
            )
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            raise self._unreachable(err) from None
        if response.status >= 400:
            try:
                raw = response.read()
            finally:
                connection.close()
            raise _api_error(response, raw)
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: object = None,
    ) -> Any:
        """Send one request; return the decoded JSON answer (None when there is no body)."""
        response = self.open(method, path, query=query, body=body)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as err:
            raise self._unreachable(err) from None
        finally:
            response.close()
        return _decode(raw, response.getheader("Content-Type", ""))

    def hijack(
        self, method: str, path: str, *, query: dict[str, str] | None = None, body: object = None
    ) -> Hijacked:
        """Send a request asking to upgrade the connection (as the docker CLI does for attach
        and exec) and return the connection once the daemon answered 101 (or 200)."""
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {self._url(path, query)} HTTP/1.1\r\n"
            "Host: localhost\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: tcp\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
            sock.sendall(head.encode() + payload)
            reader = sock.makefile("rb")
            status_line = reader.readline().decode("latin-1")
            headers: dict[str, str] = {}
            while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        except OSError as err:
            sock.close()
            raise self._unreachable(err) from None
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status not in (101, 200):
            raw = reader.read(int(headers.get("content-length", "0") or 0))
            sock.close()
            data = _decode(raw, headers.get("content-type", ""))
            message = data.get("message") if isinstance(data, dict) else None
            raise ApiError(status, message or status_line.strip())
        return Hijacked(sock, reader)

    def network(self, ref: str) -> dict[str, Any]:
        return self.request("GET", f"/networks/{quote(ref, safe='')}")


def frames(reader: io.BufferedIOBase, multiplexed: bool) -> Iterator[tuple[int, bytes]]:
    """(stream, data) read from Docker's multiplexed framing until the end; stream 1 is
    stdout, 2 stderr. A raw (TTY) stream is all stdout."""
    while True:
        if not multiplexed:
            data = reader.read1(1 << 16)
            if not data:
                return
            yield 1, data
            continue
        header = reader.read(8)
        if len(header) < 8:
            return
        stream, length = struct.unpack(">BxxxL", header)
        yield stream, reader.read(length)


class Hijacked:
    """A connection taken over after the HTTP exchange: Docker's frames from the daemon,
    the user's input to it."""

    def __init__(self, sock: socket.socket, reader: io.BufferedIOBase) -> None:
        self.sock = sock
        self.reader = reader

    def frames(self, multiplexed: bool) -> Iterator[tuple[int, bytes]]:
        return frames(self.reader, multiplexed)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _api_error(response: http.client.HTTPResponse, raw: bytes) -> ApiError:
    data = _decode(raw, response.getheader("Content-Type", ""))
    message = data.get("message") if isinstance(data, dict) else None
    text = message or raw.decode(errors="replace").strip()
    return ApiError(response.status, text or f"HTTP {response.status} {response.reason}")


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw or not content_type.startswith("application/json"):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
