"""cnm's CNI endpoints, which the ``cnm-cni`` plugin calls (cnm's own, hence ``/cnm``):

* ``POST /cnm/cni/add``, ``/del``, ``/check``, ``/gc``, ``/status``, each with the body
  ``{"env": {"CNI_CONTAINERID": ..., "CNI_NETNS": ..., "CNI_IFNAME": ..., "CNI_ARGS": ...,
  "CNI_PATH": ...}, "config": <the request configuration the runtime gave on stdin>}``.

The command is the route's; the environment and the configuration are checked again here with
the plugin's own rules (``cnm.cni.protocol``), since anyone with the socket may call. ADD
answers 200 with the CNI result in the configuration's version; the others 204 with no body.
Errors are the spec's error object (``cniVersion``, ``code``, ``msg``, ``details``), not
Docker's ``{"message"}``, with an HTTP status that follows the code (``protocol.http_status``):
the plugin prints the object as it is.

Added by the daemon next to the Engine API routes (``add_routes``), with the attachments it
started.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cnm.api.common import add_route, backend, json_response, read_json
from cnm.cni import protocol
from cnm.cni.attachments import translate
from cnm.cni.protocol import CniError, Code
from cnm.errors import CnmError

if TYPE_CHECKING:
    from cnm.cni.attachments import CniAttachments

log = logging.getLogger(__name__)

ATTACHMENTS: web.AppKey[CniAttachments] = web.AppKey("cni-attachments")


async def _request(request: web.Request) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        body = await read_json(request)
    except CnmError as err:
        raise CniError(Code.DECODE_FAILURE, "error decoding the CNI request", str(err)) from None
    if not isinstance(body, dict):
        raise CniError(Code.DECODE_FAILURE, "error decoding the CNI request", "expected an object")
    config = body.get("config")
    env = body.get("env", {})
    if not isinstance(config, dict):
        raise CniError(
            Code.DECODE_FAILURE, "error decoding the CNI request", "config: not an object"
        )
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise CniError(
            Code.DECODE_FAILURE, "error decoding the CNI request", "env: not an object of strings"
        )
    return config, env


def _handler(
    command: str,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        version = protocol.SPEC_VERSION
        try:
            config, env = await _request(request)
            if isinstance(config.get("cniVersion"), str):
                version = config["cniVersion"]
            invocation = protocol.parse_environment(env, command)
            conf = protocol.parse_config(config, command, invocation.args)
            attachments = request.app[ATTACHMENTS]
            backend_ = backend(request)
            if command == "ADD":
                result = await backend_.run(attachments.add, invocation, conf)
                return json_response(result)
            if command == "DEL":
                await backend_.run(attachments.delete, invocation)
            elif command == "CHECK":
                await backend_.run(attachments.check, invocation, conf)
            elif command == "GC":
                await backend_.run(attachments.gc, conf)
            else:
                await backend_.run(attachments.status, conf)
            return web.Response(status=204)
        except CniError as err:
            return _error(err, version)
        except CnmError as err:
            return _error(translate(err), version)
        except Exception as err:
            log.exception("CNI %s failed", command)
            return _error(CniError(Code.DAEMON_FAILURE, "the cnm daemon failed", str(err)), version)

    return handle


def _error(err: CniError, version: str) -> web.Response:
    return web.Response(
        body=json.dumps(err.to_json(version)).encode() + b"\n",
        status=protocol.http_status(err.code),
        content_type="application/json",
    )


def add_routes(app: web.Application, attachments: CniAttachments) -> None:
    app[ATTACHMENTS] = attachments
    for command in ("ADD", "DEL", "CHECK", "GC", "STATUS"):
        add_route(app, "POST", f"/cnm/cni/{command.lower()}", _handler(command))
