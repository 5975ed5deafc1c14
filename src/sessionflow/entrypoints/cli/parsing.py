"""Values typed on the command line, read into Python values.

Owns the parsers of option values — durations (``--ttl 15m``, in the one grammar of
:mod:`sessionflow.domain.durations`), JSON objects (``--metadata``), an event's ``--arg KEY=VALUE`` pairs — and
:func:`mask_url`, which hides a URL's password before it is printed. A malformed value is a usage error (exit 2):
a duration's is reported on one line, like every error of the command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import typer

from sessionflow.entrypoints.cli.errors import CliError, ExitCode

__all__ = ["mask_url", "parse_arguments", "parse_duration", "parse_json_object"]


def parse_duration(text: str | timedelta, option: str = "duration") -> timedelta:
    """``"90"``/``"90s"``, ``"500ms"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1h30m"``, ``"1.5h"`` → a timedelta (a
    number alone is seconds), read by :func:`sessionflow.domain.durations.parse_duration`.

    A malformed or out-of-range value raises :class:`CliError`, a usage error (exit 2) whose one line names
    ``option`` and says what is wrong.
    """
    from sessionflow.domain.durations import parse_duration as read
    from sessionflow.errors import InvalidInput

    try:
        return read(text, option)
    except InvalidInput as error:
        raise CliError(f"invalid {option}: {error.problem}", code="usage", exit_code=ExitCode.USAGE) from None


def parse_json_object(text: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON object given on the command line (``--metadata '{"ticket": "T-1"}'``)."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("expected a JSON object, e.g. '{\"key\": \"value\"}'")
    return value


def parse_arguments(values: Sequence[str] | None) -> dict[str, Any]:
    """``--arg KEY=VALUE`` pairs → keyword arguments; a value is JSON when it parses as JSON, else a string."""
    args: dict[str, Any] = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CliError(f"--arg takes KEY=VALUE, not {item!r}", code="usage", exit_code=ExitCode.USAGE)
        try:
            args[key] = json.loads(raw)
        except ValueError:
            args[key] = raw
    return args


#: The Sentinels' password in a ``redis+sentinel://`` URL's query.
_SENTINEL_PASSWORD = re.compile(r"([?&]sentinel_password=)[^&#]*")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, as SQLAlchemy renders it
    (``make_url(url).render_as_string(hide_password=True)``), for a database URL and a Redis URL alike.

    A password holding an ``@`` that was not percent-encoded (which SQLAlchemy reads as part of the host, where
    a Redis client reads it as part of the password) is hidden whole too. A text that is not a URL is shown as
    it is when it has no ``@``, else as ``<scheme>://***``; a URL without a password is shown as it was given.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    url = _SENTINEL_PASSWORD.sub(r"\1***", url)  # (a redis+sentinel:// URL's password for the Sentinels)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        if "@" not in url:
            return url
        scheme, separator, _ = url.partition("://")
        return f"{scheme}://***" if separator else "***"
    host = parsed.host or ""
    if "@" in host:  # the password's "@" was not encoded: what precedes the last "@" is the password's too
        parsed = parsed.set(host=host.rpartition("@")[2], password=parsed.password or "***")
    elif parsed.password is None:
        return url  # nothing to hide: shown as it was given
    return parsed.render_as_string(hide_password=True)
