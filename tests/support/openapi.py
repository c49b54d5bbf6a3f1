"""docs/openapi.yaml as hypothesis strategies: requests that follow the document, and requests
that do not (any JSON where an object is expected, any text where a number is).

The converter covers the part of JSON Schema the document uses: ``$ref``, ``type`` (object with
``properties`` and ``additionalProperties``, array with ``items`` and ``maxItems``, string,
integer, boolean), ``enum``, ``minimum``/``maximum``. Each value that follows the schema is
drawn beside one that may not (``strict=False``), so a run exercises both the handlers' work and
their refusals. ``examples`` maps a property name to values worth trying more often than random
text would find them (an image that exists, a network's name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from hypothesis import strategies as st

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "head", "post", "put", "delete")
TEXT = st.text(max_size=40)
JSON_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def load_document() -> dict[str, Any]:
    document = yaml.safe_load(DOCUMENT.read_text())
    assert isinstance(document, dict)
    return document


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    parameters: tuple[dict[str, Any], ...]
    body: dict[str, Any] | None  # the JSON request body's schema
    responses: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)


def operations(document: Mapping[str, Any]) -> list[Operation]:
    found = []
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method not in METHODS:
                continue
            parameters = tuple(
                resolve(document, p) for p in [*shared, *operation.get("parameters", [])]
            )
            content = (operation.get("requestBody") or {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            found.append(
                Operation(
                    method.upper(),
                    path,
                    parameters,
                    resolve(document, schema) if schema is not None else None,
                    tuple(int(code) for code in operation["responses"]),
                )
            )
    return found


def resolve(document: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return dict(node)


def values(
    document: Mapping[str, Any],
    schema: Mapping[str, Any],
    examples: Mapping[str, Sequence[object]],
    strict: bool = False,
) -> st.SearchStrategy[Any]:
    """Values for ``schema``; unless ``strict``, sometimes any JSON value instead, at any
    depth."""
    follows = _follows(document, resolve(document, schema), examples, strict)
    return follows if strict else st.one_of(follows, follows, follows, JSON_ANY)


def _follows(
    document: Mapping[str, Any],
    schema: Mapping[str, Any],
    examples: Mapping[str, Sequence[object]],
    strict: bool,
) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | TEXT
    kind = schema.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "string":
        return TEXT
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(
            values(document, items, examples, strict), max_size=min(schema.get("maxItems", 4), 4)
        )
    if kind == "object":
        properties = {
            name: _property(document, name, sub, examples, strict)
            for name, sub in schema.get("properties", {}).items()
        }
        required = {name: properties.pop(name) for name in schema.get("required", [])}
        extra = schema.get("additionalProperties")
        fixed = st.fixed_dictionaries(required, optional=properties)
        if strict:
            # Mostly only the fields with examples (and objects that may hold some), so that
            # whole valid requests come often enough to reach the handlers' work.
            likely = {
                name: strategy
                for name, strategy in properties.items()
                if name in examples
                or resolve(document, schema["properties"][name]).get("type") == "object"
            }
            fixed = st.one_of(st.fixed_dictionaries(required, optional=likely), fixed)
        if not extra:
            return fixed
        more = st.dictionaries(TEXT, values(document, extra, examples, strict), max_size=3)
        return st.builds(lambda a, b: {**b, **a}, fixed, more)
    return JSON_ANY


def _property(
    document: Mapping[str, Any],
    name: str,
    schema: Mapping[str, Any],
    examples: Mapping[str, Sequence[object]],
    strict: bool,
) -> st.SearchStrategy[Any]:
    drawn = values(document, schema, examples, strict)
    if name in examples:
        known = st.sampled_from(list(examples[name]))
        return st.one_of(known, known, drawn) if strict else st.one_of(known, drawn)
    return drawn


def requests(
    document: Mapping[str, Any],
    operation: Operation,
    examples: Mapping[str, Sequence[object]],
    overrides: Mapping[str, st.SearchStrategy[str]] | None = None,
) -> st.SearchStrategy[Request]:
    """Requests for ``operation``: path parameters from ``examples`` or any text, query
    parameters present or not, the body from its schema (or any JSON, or none). ``overrides``
    fixes the strategy of a parameter by name, and such a parameter is always sent."""
    overrides = overrides or {}

    def parameter(spec: Mapping[str, Any]) -> st.SearchStrategy[str]:
        if spec["name"] in overrides:
            return overrides[spec["name"]]
        schema = spec.get("schema", {})
        own = values(document, schema, examples, strict=True).map(_as_text)
        known = [str(v) for v in examples.get(spec["name"], [])]
        choices = [own, TEXT]
        if known:
            choices.append(st.sampled_from(known))
        return st.one_of(choices)

    path_parts = {
        p["name"]: parameter(p).filter(lambda v: v not in ("", ".", ".."))
        for p in operation.parameters
        if p["in"] == "path"
    }
    query = {p["name"]: parameter(p) for p in operation.parameters if p["in"] == "query"}
    required = {p["name"] for p in operation.parameters if p["in"] == "query" and p.get("required")}
    body: st.SearchStrategy[Any] = st.none()
    if operation.body is not None:
        body = st.one_of(
            values(document, operation.body, examples, strict=True),
            values(document, operation.body, examples),
            st.just(None),
        )

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        path = operation.path
        for name, strategy in path_parts.items():
            path = path.replace("{" + name + "}", quote(draw(strategy), safe=""))
        chosen = {
            name: draw(strategy)
            for name, strategy in query.items()
            if name in required or name in overrides or draw(st.booleans())
        }
        if chosen:
            path += "?" + urlencode(chosen)
        data = draw(body)
        if data is None:
            return Request(operation.method, path, None)
        return Request(
            operation.method,
            path,
            _json_bytes(data),
            {"Content-Type": "application/json"},
        )

    return build()


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()
