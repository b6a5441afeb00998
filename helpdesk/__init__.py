"""helpdesk: see whether every credential email arrived, and fix it when it did not.

The package's attributes load on first use (PEP 562), so that a plugin's ``from helpdesk import
hookimpl`` imports pluggy alone, not the app (Flask, SQLAlchemy, Huey)."""
from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["create_app", "hookimpl"]

_LAZY = {"create_app": ".app", "hookimpl": ".hookspecs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
