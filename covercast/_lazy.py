"""Lazy package exports: names resolved from their module on first use (PEP 562).

Keeps ``import covercast.envs`` / ``covercast.agents`` / ``covercast.ope`` light: heavy
modules (torch, scipy.optimize, ...) load only when one of their names is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` exporting ``names`` (name -> module).

    A resolved name is cached in ``namespace`` (the package's ``globals()``), so the module
    is imported once.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
