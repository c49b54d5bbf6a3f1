"""An HTTP connection over a Unix socket: what the CLI speaks to the daemon and the daemon to a
plugin (``http.client`` knows only TCP)."""

from __future__ import annotations

import http.client
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    """``host`` is only what the Host header says; the socket at ``path`` is what is reached."""

    def __init__(self, path: str, timeout: float | None, host: str = "localhost") -> None:
        super().__init__(host, timeout=timeout)
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
