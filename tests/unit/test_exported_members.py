"""The public surface of the library, pinned (httpx's tests/test_exported_members.py is the
model): what ``cnm`` exports, the public members of each exported class, the fixtures the
pytest plugin gives, and that ``import cnm`` loads nothing heavy (the CLI starts fast)."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import cnm
from cnm import pytest_plugin

STUB = Path(cnm.__file__).with_suffix(".pyi")

SURFACE = {
    "Lab": {"close", "entered", "image", "network", "networks", "remove", "sandbox", "sandboxes"},
    "LabError": set(),
    "Network": {"id", "internal", "ipv6_subnet", "name", "subnet"},
    "Sandbox": {
        "exec", "id", "ip", "ip_on", "ips", "ipv6", "lab", "logs", "name", "networks",
        "publish", "wait_for_port",
    },
}  # fmt: skip


def test_all_imports_are_exported() -> None:
    """Every public name of the package (its own, and those it loads lazily; submodules are
    not exports) is in ``__all__``, in the order ruff keeps it (isort-style)."""
    public = {
        name
        for name in dir(cnm)
        if not name.startswith("_") and not inspect.ismodule(getattr(cnm, name))
    }
    assert cnm.__all__ == [*sorted(public), "__version__"]  # ruff's RUF022 order
    for name in cnm.__all__:
        assert getattr(cnm, name) is not None


def test_the_stub_names_what_the_package_exports() -> None:
    tree = ast.parse(STUB.read_text())
    imported = {a.asname for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert imported == set(SURFACE)
    assert set(cnm.__all__) == {*SURFACE, "__version__"}


def test_each_class_keeps_its_public_members() -> None:
    for name, members in SURFACE.items():
        cls = getattr(cnm, name)
        assert cls.__module__ == "cnm.lab"
        found = {m for m in dir(cls) if not m.startswith("_")}
        if issubclass(cls, Exception):
            found -= set(dir(Exception))
        else:
            found |= set(getattr(cls, "__dataclass_fields__", {}))
        assert found == members, name


def test_the_lab_signatures() -> None:
    assert str(inspect.signature(cnm.Lab)) == (
        "(daemon: 'str | None' = None, *, root: 'str | os.PathLike[str] | None' = None) -> 'None'"
    )
    assert list(inspect.signature(cnm.Lab.sandbox).parameters) == [
        "self", "name", "networks", "command", "target", "args", "kwargs", "image", "publish",
    ]  # fmt: skip
    assert list(inspect.signature(cnm.Lab.network).parameters) == [
        "self", "name", "subnet", "internal", "icc", "ipv6_subnet",
    ]  # fmt: skip


def test_the_plugin_fixtures() -> None:
    fixtures = {
        name
        for name, value in vars(pytest_plugin).items()
        if hasattr(value, "_fixture_function_marker")
        or type(value).__name__ == "FixtureFunctionDefinition"
    }
    assert fixtures == {"cnm_lab", "cnm_network", "cnm_sandbox"}


def test_import_cnm_is_light() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, cnm; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    heavy = [m for m in loaded if m.split(".")[0] in {"aiohttp", "pyroute2", "prometheus_client",
             "graphviz", "dns", "nftables", "pytest"} or m.startswith("cnm.")]  # fmt: skip
    assert heavy == [], heavy
