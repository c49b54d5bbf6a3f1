"""Docker-like output: tabwriter tables and the common subset of Go templates.

Go's template language is not reimplemented. ``--format`` takes ``json``, ``table``, or a
template of text and the actions ``{{.}}``, ``{{.Field.Sub}}`` and ``{{json .Field}}``; anything
else is refused with a clear message. ``table <template>`` prints a header row first and aligns
columns, as docker does; ``\\t`` and ``\\n`` typed literally are read as tab and newline.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from typing import Any

from cnm.cli.client import CliError

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_FIELD = re.compile(r"(json\s+)?\.((?:[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?")

MIN_WIDTH = 10
PADDING = 3


def tabulate(lines: list[str]) -> str:
    """Align tab-separated cells like Go's tabwriter(minwidth 10, padding 3), which docker uses:
    every cell but the last of a line is padded to its column's width."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            widths[index] = max(widths.get(index, MIN_WIDTH), len(cell) + PADDING)
    out = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1])
    return "\n".join(out)


def go_string(value: Any) -> str:
    """A value as Go's template printer shows it."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_string(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_string(item) for item in value) + "]"
    return str(value)


def _lookup(obj: Any, path: str | None, action: str) -> Any:
    value = obj
    for name in path.split(".") if path else []:
        if not isinstance(value, Mapping):
            raise CliError(f"template: {action}: can't evaluate field {name} in {go_string(value)}")
        value = value.get(name)
    return value


def _parse_action(action: str) -> tuple[bool, str | None]:
    match = _FIELD.fullmatch(action)
    if match is None:
        raise CliError(
            f"unsupported format action {{{{{action}}}}}: cnm supports {{{{.Field}}}}, "
            "{{json .Field}} and {{json .}}"
        )
    return bool(match[1]), match[2]


def render(template: str, obj: Any) -> str:
    """Execute a template of the supported subset against ``obj`` (a JSON-like mapping)."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")

    def execute(match: re.Match[str]) -> str:
        as_json, path = _parse_action(match[1])
        value = _lookup(obj, path, match[1])
        return json.dumps(value, separators=(",", ":")) if as_json else go_string(value)

    return _ACTION.sub(execute, template)


def header(template: str, names: Mapping[str, str]) -> str:
    """The header row of a ``table`` template: each action becomes its column's name."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")

    def name(match: re.Match[str]) -> str:
        _, path = _parse_action(match[1])
        return names.get(path or "", (path or "").upper())

    return _ACTION.sub(name, template)


def print_rows(
    rows: list[dict[str, Any]], template: str, table: str, headers: Mapping[str, str]
) -> None:
    """Print listing rows as docker does for ``--format``: ``json`` (a line per row),
    ``table`` (the command's default ``table`` template), ``table TEMPLATE`` (aligned columns
    under a header) or a bare template (a line per row)."""
    if template == "json":
        for row in rows:
            print(json.dumps(row, separators=(",", ":"), sort_keys=True))
        return
    if template == "table":
        template = table
    if template.startswith("table "):
        template = template.removeprefix("table ")
        lines = [header(template, headers)] + [render(template, row) for row in rows]
        print(tabulate(lines))
        return
    for row in rows:
        print(render(template, row))


def print_inspected(found: list[Any], errors: list[str], template: str | None) -> int:
    """``inspect``'s output: the objects as an indented JSON array (or one rendered
    ``--format`` line each), then the errors on stderr; exit status 1 if any ref failed."""
    if template and template != "json":
        for item in found:
            print(render(template, item))
    else:
        print(json.dumps(found, indent=4))
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0
