"""Objects named by a dotted path, ``"package.module:attribute"``: the one way hybridc loads by name (families
and adapters named in the registry and in ``Family`` attributes, plugins' entry points, lazily imported CLI
commands)."""

from __future__ import annotations

from importlib import import_module
from typing import Any


def load_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)
