"""The engine's log records while a command runs: on stderr, one line each.

Owns :func:`engine_logging`, which a command runs inside, and the handler and formatter it installs on the
``sessionflow`` logger (INFO records too with ``--verbose``; an exception as ``Type: message``, never a
traceback). Nothing is left installed once the command is done.

A one-shot command (``show``, ``create``, ``list``...) does not show the store's retry warnings (the
``sessionflow.store`` logger: "connection lost; retrying", once per attempt) unless ``--verbose``: the command
either succeeds after a retry or fails with its one-line error, which says what went wrong. The long-running
commands (``worker``, ``serve``, ``events --follow``) keep them, as a service's log shows what it lived through.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from sessionflow.entrypoints.cli.errors import one_line

__all__ = ["RETRY_LOGGER", "OneLineFormatter", "StderrHandler", "engine_logging", "hide_retries"]

#: The logger of the stores' retries, hidden from one-shot commands unless ``--verbose``.
RETRY_LOGGER = "sessionflow.store"


class OneLineFormatter(logging.Formatter):
    """Log records on one line each: an exception shows as ``Type: message``, never as a traceback."""

    def formatException(self, ei: Any) -> str:
        kind, value = ei[0], ei[1]
        return f"[{getattr(kind, '__name__', 'error')}: {one_line(str(value))}]"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return " ".join(text.splitlines())


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def hide_retries(record: logging.LogRecord) -> bool:
    """A handler filter: drop the store's records below ERROR (its retry warnings), keep every other one."""
    return not (record.levelno < logging.ERROR
                and (record.name == RETRY_LOGGER or record.name.startswith(RETRY_LOGGER + ".")))


@contextlib.contextmanager
def engine_logging(verbose: bool, *, long_running: bool = False) -> Iterator[None]:
    """While a command runs, the engine's log records go to stderr one line each (INFO too with -v).

    Unless ``verbose`` or ``long_running``, the store's retry warnings are left out (:func:`hide_retries`): a
    one-shot command's failure is its one error line. The handler stays installed even so, which also keeps
    Python's last-resort handler from printing the dropped records bare.
    """
    logger = logging.getLogger("sessionflow")
    handler = StderrHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not (verbose or long_running):
        handler.addFilter(hide_retries)
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
