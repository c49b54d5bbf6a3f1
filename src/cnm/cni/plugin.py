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
(default 30 s), is code 11, try again later (50, not available, for STATUS). The client is
``http.client`` over the socket: no third-party import, so the process starts in tens of
milliseconds.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO, TextIO

from cnm.cni import protocol
from cnm.cni.protocol import CniError, Code

API_PREFIX = "/cnm/cni/"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def call_daemon(
    conf: protocol.NetConf, invocation: protocol.Invocation, config: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Forward one command; the ADD result, None for the others, CniError on failure."""
    unreachable = Code.NOT_AVAILABLE if invocation.command == "STATUS" else Code.TRY_AGAIN_LATER
    body = json.dumps({"env": invocation.to_environment(), "config": config}).encode()
    connection = _UnixConnection(conf.socket, conf.timeout)
    try:
        connection.request(
            "POST",
            API_PREFIX + invocation.command.lower(),
            body=body,
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        payload = response.read()
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
    except http.client.HTTPException as err:
        raise CniError(Code.IO_FAILURE, "the cnm daemon's answer was cut off", str(err)) from None
    finally:
        connection.close()
    if response.status == 204:
        return None
    try:
        answer = json.loads(payload) if payload else None
    except ValueError:
        answer = None
    if response.status == 200 and isinstance(answer, dict):
        return answer
    if isinstance(answer, dict) and isinstance(answer.get("code"), int):
        raise CniError(answer["code"], str(answer.get("msg", "")), str(answer.get("details", "")))
    raise CniError(
        Code.NOT_AVAILABLE,
        "the cnm daemon does not serve the CNI API",
        f"POST {API_PREFIX}{invocation.command.lower()} answered {response.status}: "
        f"{payload[:200].decode(errors='replace')}",
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
