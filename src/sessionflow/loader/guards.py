"""Guards and validators by name: the callables lifecycle documents refer to.

Owns :func:`guard` (register a callable under a name documents can use), :func:`registered_guards` and
:func:`import_modules` (the modules a document lists under ``imports``, which register guards when imported).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sessionflow.errors import LifecycleDefinitionError

__all__ = ["guard", "import_modules", "registered_guards"]

F = TypeVar("F", bound=Callable[..., Any])

_guards: dict[str, Callable[..., Any]] = {}
_guards_lock = threading.Lock()


def guard(name_or_func: str | F | None = None) -> Any:
    """Register a guard or validator under a name documents can use: ``@guard`` or ``@guard("name")``."""

    def register(func: F, name: str | None = None) -> F:
        key = name or func.__name__
        with _guards_lock:
            _guards[key] = func
        return func

    if callable(name_or_func):
        return register(name_or_func)
    return lambda func: register(func, name_or_func)


def registered_guards() -> dict[str, Callable[..., Any]]:
    """A copy of the guards and validators registered with :func:`guard`, by name."""
    with _guards_lock:
        return dict(_guards)


def import_modules(names: Any) -> None:
    """Import the modules a document lists under ``imports`` (they register guards with :func:`guard`).

    A document that imports modules runs code: load documents you trust, as you would import Python.
    """
    if names is None:
        return
    import importlib

    for name in [names] if isinstance(names, str) else list(names):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise LifecycleDefinitionError(f"imports: cannot import {name!r}: {error}") from error
