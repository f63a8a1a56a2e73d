"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists the names it offers and the module each lives in; the module is imported the first
time one of its names is used. Importing a package therefore costs nothing, and a command that never
touches torch never imports it (``dense-retrieval --help``, ``davis evaluate``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` offering ``exports`` (name -> relative module).

    A relative module of ``""`` means the name is a sub-module of the package itself.

    Example:
        >>> __getattr__, __dir__ = lazy_exports(__name__, {"SegmentIndex": ".index", "viz": ""})
    """

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name = exports[name]
        if module_name == "":
            return importlib.import_module(f".{name}", package)
        return getattr(importlib.import_module(module_name, package), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
