"""cnm: the Container Network Model (the design behind Docker's libnetwork) in Python.

The public library is ``cnm.Lab`` and its handles (``cnm.lab``); they are imported on first use,
so ``import cnm`` (which every ``cnm`` command does) stays as light as this file. Type
checkers read ``__init__.pyi``, which names them (the lazy-loading pattern of SPEC 1's
``lazy_loader``).
"""

import importlib as _importlib
from typing import Any as _Any

__version__ = "0.1.0"
__all__ = ["Lab", "LabError", "Network", "Sandbox", "__version__"]
_LAZY = frozenset({"Lab", "LabError", "Network", "Sandbox"})


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        return getattr(_importlib.import_module("cnm.lab"), name)
    raise AttributeError(f"module 'cnm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
