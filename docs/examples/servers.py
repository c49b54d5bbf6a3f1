"""Servers for the library's examples: module-level functions, so a lab can run them in a
sandbox (a target is passed by reference, as multiprocessing's spawn passes it)."""

from __future__ import annotations

import socket
import socketserver
from http.server import BaseHTTPRequestHandler


def http_hello(port: int, text: str = "hello") -> None:
    """Answer every GET with ``text`` and the name of the sandbox it runs in."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{text} from {socket.gethostname()}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    socketserver.TCPServer.allow_reuse_address = True
    with socketserver.TCPServer(("", port), Handler) as server:
        server.serve_forever()


def fetch(url: str) -> str:
    """GET ``url`` (from inside a sandbox, names resolve through cnm's embedded DNS)."""
    from urllib.request import urlopen

    with urlopen(url, timeout=5) as response:
        return response.read().decode()
