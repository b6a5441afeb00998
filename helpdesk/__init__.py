"""helpdesk: see whether every credential email arrived, and fix it when it did not."""
from .app import create_app
from .hookspecs import hookimpl

__all__ = ["create_app", "hookimpl"]
