"""``cnm-cni``: the CNI plugin executable, a thin client of the daemon.

A runtime runs it once per call: the parameters in ``CNI_*`` environment variables, the request
configuration on stdin, the result on stdout and exit status 0, or an error result on stdout
and a non-zero status (Section 2 and 5 of the spec). VERSION is answered here; the environment
and the configuration are checked here too (``protocol``), so a bad call fails without the
daemon. Every other command goes to the daemon's API on its Unix socket (the configuration's
``socket``, default /run/cnm/cnm.sock) as ``POST /cnm/cni/<command>`` with
``{"env": {CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH}, "config": <stdin>}``;
the daemon checks them again, does the work and answers with the CNI result (ADD), nothing
(204), or a CNI error object whose HTTP status follows its code.

A daemon that cannot be reached, or does not answer within the configuration's ``timeout``
(default 30 s), is code 11, try again later (50, not available, for STATUS). The client is a
few lines of HTTP/1.1 over the socket and nothing else is imported but the protocol module: a
runtime starts this process for every call, so its start-up is most of an ADD's cost.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any, BinaryIO, TextIO

from cnm.cni import protocol
from cnm.cni.protocol import CniError, Code

API_PREFIX = "/cnm/cni/"


class _Reply:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


def _post(path: str, url: str, body: bytes, timeout: float) -> _Reply:
    """One HTTP/1.1 request over the Unix socket at ``path``, ``Connection: close``, the answer
    read to the end. Written out rather than taken from http.client, which imports the email
    and ssl packages: a fifth of the plugin's start-up, paid on every CNI call."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        head = (
            f"POST {url} HTTP/1.1\r\nHost: cnm\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        data = bytearray()
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    header, sep, payload = bytes(data).partition(b"\r\n\r\n")
    status_line = header.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP answer: {bytes(data[:80])!r}")
    if b"transfer-encoding: chunked" in header.lower():
        payload = _unchunk(payload)
    return _Reply(int(status_line[1]), payload)


def _unchunk(payload: bytes) -> bytes:
    out = bytearray()
    while payload:
        size_line, _, rest = payload.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        payload = rest[size + 2 :]
    return bytes(out)


def call_daemon(
    conf: protocol.NetConf, invocation: protocol.Invocation, config: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Forward one command; the ADD result, None for the others, CniError on failure."""
    unreachable = Code.NOT_AVAILABLE if invocation.command == "STATUS" else Code.TRY_AGAIN_LATER
    body = json.dumps({"env": invocation.to_environment(), "config": config}).encode()
    url = API_PREFIX + invocation.command.lower()
    try:
        response = _post(conf.socket, url, body, conf.timeout)
    except TimeoutError:
        raise CniError(
            unreachable,
            "the cnm daemon did not answer in time",
            f"no answer on {conf.socket} within {conf.timeout:g}s (the config's timeout)",
        ) from None
    except OSError as err:
        raise CniError(
            unreachable,
            "cannot reach the cnm daemon",
            f"{conf.socket}: {err.strerror or err} (is the daemon running? the config's socket "
            "names its API socket)",
        ) from None
    except ValueError as err:
        raise CniError(Code.IO_FAILURE, "the cnm daemon's answer was cut off", str(err)) from None
    if response.status == 204:
        return None
    try:
        answer = json.loads(response.body) if response.body else None
    except ValueError:
        answer = None
    if response.status == 200 and isinstance(answer, dict):
        return answer
    if isinstance(answer, dict) and isinstance(answer.get("code"), int):
        raise CniError(answer["code"], str(answer.get("msg", "")), str(answer.get("details", "")))
    raise CniError(
        Code.NOT_AVAILABLE,
        "the cnm daemon does not serve the CNI API",
        f"POST {url} answered {response.status}: {response.body[:200].decode(errors='replace')}",
    )


def run(env: Mapping[str, str], stdin: BinaryIO, stdout: TextIO) -> int:
    """One plugin call; returns the exit status."""
    version = protocol.SPEC_VERSION
    try:
        command = protocol.parse_command(env)
        try:
            raw = stdin.read()
        except OSError as err:
            raise CniError(
                Code.IO_FAILURE, "error reading network config from stdin", str(err)
            ) from None
        if command == "VERSION":
            config = protocol.decode(raw) if raw.strip() else {}
            _write(stdout, protocol.version_result(config))
            return 0
        config = protocol.decode(raw)
        if isinstance(config.get("cniVersion"), str):
            version = config["cniVersion"]
        invocation = protocol.parse_environment(env, command)
        conf = protocol.parse_config(config, command, invocation.args)
        version = conf.cni_version
        result = call_daemon(conf, invocation, config)
    except CniError as err:
        _write(stdout, err.to_json(version))
        return 1
    if result is not None:
        _write(stdout, result)
    return 0


def _write(stdout: TextIO, data: object) -> None:
    stdout.write(json.dumps(data, indent=4) + "\n")
    stdout.flush()


def main() -> None:
    sys.exit(run(os.environ, sys.stdin.buffer, sys.stdout))


if __name__ == "__main__":
    main()
