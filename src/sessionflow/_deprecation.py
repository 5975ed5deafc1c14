"""Deprecations: an old name keeps working for one minor release and says what replaces it.

The policy is in ``docs/api.md``: a public name (a module attribute, a function, a keyword argument) that is
renamed or replaced keeps working, unchanged, through every release of the minor version that deprecates it,
and each use emits a :class:`DeprecationWarning` naming the replacement; it may be removed in the next minor
version. These helpers are the one way the package does that, so every warning reads alike:

``sessionflow.OldName is deprecated since 0.2.0 and may be removed in 0.3.0; use sessionflow.NewName instead.``

A module attribute, through the module's ``__getattr__`` (PEP 562)::

    from sessionflow._deprecation import deprecated_alias, module_getattr

    __getattr__ = module_getattr(__name__, deprecated_alias(
        "OldName", "sessionflow.NewName", since="0.2.0", target=lambda: NewName))

A module that already has a ``__getattr__`` (the package root imports its names lazily) looks the name up
in a mapping of :class:`DeprecatedAlias` first and returns ``alias.get(__name__)``.

A keyword argument::

    @renamed_keyword("ttl_seconds", "ttl", since="0.2.0", public_name="sessionflow.SessionManager.create")
    def create(self, *, ttl: timedelta | None = None) -> Session: ...

Anything else (a behaviour, a value) calls :func:`warn_deprecated` where the old way is taken. A deprecation is
also an entry under "Deprecated" in the changelog, and the removal one under "Removed" marked "Breaking".

This module is internal (its name starts with ``_``); it imports only the standard library.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

__all__ = ["DeprecatedAlias", "deprecated_alias", "deprecation_message", "module_getattr", "removal_version",
           "renamed_keyword", "warn_deprecated"]

P = ParamSpec("P")
R = TypeVar("R")

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?$")


def removal_version(since: str) -> str:
    """The first release that may remove what ``since`` deprecated: the next minor version.

    >>> removal_version("0.2.0"), removal_version("1.4.2")
    ('0.3.0', '1.5.0')
    """
    match = _VERSION.match(since)
    if match is None:
        raise ValueError(f"since must be a version such as '0.2.0', not {since!r}")
    return f"{match[1]}.{int(match[2]) + 1}.0"


def deprecation_message(old: str, new: str, *, since: str, removed_in: str | None = None) -> str:
    """The text of every deprecation warning: what is deprecated, since when, until when, and what to use.

    >>> deprecation_message("sessionflow.Old", "sessionflow.New", since="0.2.0")
    'sessionflow.Old is deprecated since 0.2.0 and may be removed in 0.3.0; use sessionflow.New instead.'
    """
    until = removed_in or removal_version(since)
    return f"{old} is deprecated since {since} and may be removed in {until}; use {new} instead."


def warn_deprecated(old: str, new: str, *, since: str, removed_in: str | None = None, stacklevel: int = 2) -> None:
    """Emit the :class:`DeprecationWarning` for ``old``, naming its replacement ``new``.

    ``stacklevel`` counts as for :func:`warnings.warn`, from the caller of this function: the default, 2,
    attributes the warning to the code that called the function that calls this one.
    """
    warnings.warn(deprecation_message(old, new, since=since, removed_in=removed_in), DeprecationWarning,
                  stacklevel=stacklevel + 1)


@dataclass(frozen=True, slots=True)
class DeprecatedAlias:
    """An old module attribute ``old`` that now stands for ``target()``, replaced by ``new``.

    Attributes:
        old: the deprecated attribute's name in its module (``"OldName"``).
        new: the replacement as a caller should write it (``"sessionflow.NewName"``, or a sentence).
        since: the release that deprecated it.
        target: returns the object the old name gives (called on each use, so it may import lazily).
        removed_in: the first release that may remove it (default: the minor version after ``since``).
    """

    old: str
    new: str
    since: str
    target: Callable[[], object]
    removed_in: str | None = None

    def get(self, module: str) -> object:
        """The target, after the warning; call it from the module's ``__getattr__`` (the warning then points
        at the code that used the old name)."""
        warn_deprecated(f"{module}.{self.old}", self.new, since=self.since, removed_in=self.removed_in,
                        stacklevel=3)
        return self.target()


def deprecated_alias(old: str, new: str, *, since: str, target: Callable[[], object],
                     removed_in: str | None = None) -> DeprecatedAlias:
    """A deprecated module attribute: ``old`` keeps giving ``target()``, with a warning naming ``new``."""
    removal_version(since)  # a malformed version fails where the alias is declared, not on first use
    return DeprecatedAlias(old, new, since, target, removed_in)


def module_getattr(module: str, *aliases: DeprecatedAlias,
                   fallback: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``aliases`` (with their warning), and any other name through
    ``fallback`` (default: :class:`AttributeError`, as for a module without ``__getattr__``)."""
    by_name = {alias.old: alias for alias in aliases}

    def __getattr__(name: str) -> Any:
        alias = by_name.get(name)
        if alias is not None:
            warn_deprecated(f"{module}.{alias.old}", alias.new, since=alias.since, removed_in=alias.removed_in)
            return alias.target()
        if fallback is not None:
            return fallback(name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def renamed_keyword(old: str, new: str, *, since: str, removed_in: str | None = None,
                    public_name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function whose keyword argument ``old`` is now called ``new``.

    A call with ``old=`` warns and is passed on as ``new=``; a call with both raises :class:`TypeError`.
    The signature seen by type checkers and :func:`inspect.signature` is the new one. ``public_name`` is the
    function as callers know it, for the warning (``"sessionflow.SessionManager.create"``; default: its
    module and qualified name).
    """
    removal_version(since)
    if old == new:
        raise ValueError("the old and the new keyword must differ")

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = public_name or f"{function.__module__}.{function.__qualname__}"

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{name}() got both {old!r} (deprecated) and {new!r}; pass only {new!r}")
                warn_deprecated(f"the keyword argument {old!r} of {name}()", repr(new), since=since,
                                removed_in=removed_in)
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate
