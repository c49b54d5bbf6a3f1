"""docs/openapi.yaml is true: it lists exactly the routes the daemon's application serves (each
also under /v1.xx), and it is a well-formed OpenAPI 3.0 document whose references resolve."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import yaml

from cnm.api import cni, dns
from cnm.api.common import DaemonInfo
from cnm.api.server import make_app

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = {"get", "head", "post", "put", "delete", "patch"}


def _document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _served() -> set[tuple[str, str]]:
    """(METHOD, path) of every route, unversioned, without the 501 catch-all."""
    app = make_app(
        MagicMock(),  # the controller: only subscribed to here
        DaemonInfo(engine_id="x", data_root="/d", exec_root="/e"),
        MagicMock(),  # the runtime
    )
    dns.add_routes(app, MagicMock())
    cni.add_routes(app, MagicMock())
    served = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/v{version}") or route.method == "*":
            continue
        served.add((route.method, path))
    return served


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_document_lists_exactly_the_served_routes() -> None:
    document = _document()
    served, documented = _served(), _documented(document)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_every_operation_is_well_formed() -> None:
    document = _document()
    assert document["openapi"].startswith("3.0")
    ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            ids.append(operation["operationId"])
            assert operation["responses"], (method, path)
            declared = {
                p["name"]
                for p in [*item.get("parameters", []), *operation.get("parameters", [])]
                for p in [_resolve(document, p)]
                if p["in"] == "path"
            }
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)
    assert len(ids) == len(set(ids)), "operationIds are unique"


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    reference = node.get("$ref")
    if reference is None:
        return node
    target: Any = document
    for part in reference.removeprefix("#/").split("/"):
        target = target[part]
    assert isinstance(target, dict)
    return target


def test_every_reference_resolves() -> None:
    document = _document()
    pending: list[Any] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "$ref" in node:
                _resolve(document, node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
