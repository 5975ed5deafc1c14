""":class:`Skipped`: what a benchmark, or the environment it needs, raises when it cannot run here.

Its own module so that both the framework and the environment (the PostgreSQL provider) can raise it without
importing each other.
"""

from __future__ import annotations

__all__ = ["Skipped"]


class Skipped(Exception):
    """A benchmark (or part of one) cannot run here; the message says why."""
