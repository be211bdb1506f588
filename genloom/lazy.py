"""Packages whose names load on first use (PEP 562), so that `import genloom` and `genloom --help` do not
load torch. A package lists where each of its public names lives; `from package import Name` works as
before, and importing the package itself costs nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: `where` maps a public name to the module that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    return __getattr__
