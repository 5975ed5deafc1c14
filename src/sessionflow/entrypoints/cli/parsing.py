"""Values typed on the command line, read into Python values.

Owns the parsers of option values — durations (``--ttl 15m``), JSON objects (``--metadata``), an event's
``--arg KEY=VALUE`` pairs — and :func:`mask_url`, which hides a database URL's password before it is printed.
A malformed value is a usage error (exit 2).
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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | timedelta) -> timedelta:
    """``"90"``/``"90s"``, ``"500ms"``, ``"15m"``, ``"2h"``, ``"1.5d"`` → a timedelta (seconds by default)."""
    if isinstance(text, timedelta):
        return text
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration (examples: 30s, 1.5s, 500ms, 15m, 2h, 1d)")
    unit = (match.group(2) or "s").lower()
    return timedelta(seconds=float(match.group(1)) * _UNITS[unit])


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


def mask_url(url: str) -> str:
    """The URL with its password hidden."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)
