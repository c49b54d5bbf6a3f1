"""The layer rules of docs/ARCHITECTURE.md, held against every import under src/cnm.

The page's ``layers`` block lists the layers top to bottom; its ``never`` block lists arrows
that must not exist. This test parses both and every module's imports (``import`` and
``from ... import``, also inside functions), so an import that runs back up a layer, across a
layer, or along a forbidden arrow fails here, naming the file and the line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src"
PAGE = ROOT / "docs" / "ARCHITECTURE.md"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    where: str  # file:line


def _block(name: str) -> list[str]:
    match = re.search(rf"```{name}\n(.*?)```", PAGE.read_text(), re.S)
    assert match is not None, f"docs/ARCHITECTURE.md has no {name} block"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def layers() -> dict[str, int]:
    """Layer entry -> depth (0 is the top)."""
    return {entry: depth for depth, line in enumerate(_block("layers")) for entry in line.split()}


def never_rules() -> list[tuple[str, str]]:
    rules = []
    for line in _block("never"):
        source, _, targets = line.partition("->")
        rules += [(source.strip(), target) for target in targets.split()]
    return rules


def modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports() -> list[Import]:
    known = modules()
    found = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from cnm import validate`` imports the module cnm.validate
                targets = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in known
                    else node.module
                    for alias in node.names
                ]
            for target in targets:
                if target == "cnm" or target.startswith("cnm."):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.append(Import(name, target, where))
    return found


def entry_of(module: str, entries: dict[str, int]) -> str:
    """The longest layer entry that is the module or a package above it."""
    candidates = [e for e in entries if module == e or module.startswith(e + ".")]
    assert candidates, f"{module} is in no layer of docs/ARCHITECTURE.md: add it there"
    return max(candidates, key=len)


def test_every_module_has_a_layer() -> None:
    entries = layers()
    for module in modules():
        entry_of(module, entries)


def test_no_import_runs_up_or_across_a_layer() -> None:
    entries = layers()
    broken = []
    for imp in imports():
        source, target = entry_of(imp.source, entries), entry_of(imp.target, entries)
        if source == target:
            continue
        if entries[target] < entries[source]:
            broken.append(f"{imp.where}: {imp.source} imports {imp.target}, a higher layer")
        elif entries[target] == entries[source]:
            broken.append(f"{imp.where}: {imp.source} imports {imp.target}, on its own layer")
    assert not broken, "\n".join(broken)


def test_no_forbidden_arrow() -> None:
    entries = layers()
    rules = never_rules()
    broken = [
        f"{imp.where}: {imp.source} imports {imp.target} ({source} -> {target} is never allowed)"
        for imp in imports()
        for source, target in rules
        if entry_of(imp.source, entries) == source or imp.source.startswith(source + ".")
        if entry_of(imp.target, entries) == target
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(
    ("source", "target", "why"),
    [
        ("cnm.osl.links", "cnm.controller", "a higher layer"),
        ("cnm.drivers.bridge", "cnm.ipam.default", "on its own layer"),
    ],
)
def test_the_check_sees_a_broken_rule(source: str, target: str, why: str) -> None:
    entries = layers()
    source_entry, target_entry = entry_of(source, entries), entry_of(target, entries)
    if "higher" in why:
        assert entries[target_entry] < entries[source_entry]
    else:
        assert entries[target_entry] == entries[source_entry] and source_entry != target_entry


def test_a_contract_below_a_forbidden_package_stays_allowed() -> None:
    entries = layers()
    assert entry_of("cnm.firewall.api", entries) == "cnm.firewall.api"
    assert entry_of("cnm.firewall.nftables", entries) == "cnm.firewall"
    assert ("cnm.controller", "cnm.firewall") in never_rules()
