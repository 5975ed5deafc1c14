"""Durations as people write them: ``90`` (seconds), ``90s``, ``500ms``, ``15m``, ``2h``, ``1d``, ``1h30m``, ``1.5h``.

One grammar for every place a duration is written — lifecycle and scenario files, scenario steps, the command
line — read by :func:`parse_duration` and written back by :func:`format_duration`:

* a number alone is seconds: ``90``, ``1.5`` (and so is a YAML or JSON number: ``after: 90``);
* otherwise one or more *number unit* parts, largest unit first, each unit at most once: ``d`` (days), ``h``
  (hours), ``m`` or ``min`` (minutes), ``s`` or ``sec`` (seconds), ``ms`` (milliseconds) — ``1h30m``,
  ``1d 12h``, ``2m30s``, ``1.5h``, ``500ms``. Units are case-insensitive; spaces may surround the value and
  separate the parts; a number is digits with an optional decimal part (``1.5``, not ``.5`` or ``1e3``);
* the value is rounded to the microsecond and must be positive and at most :data:`MAX_DURATION` (36,500 days,
  about 100 years); a text longer than :data:`MAX_DURATION_TEXT` characters is refused without being read.

Anything else — empty, negative, zero, ``NaN``, infinite, too large, an unknown unit, units out of order —
raises :class:`~sessionflow.errors.InvalidInput` naming the field, never ``ValueError`` or ``OverflowError``.
The text is read by a hand-written scanner that looks at each character once, so its time is linear in the
length of the text, whatever the text.
"""

from __future__ import annotations

import math
from datetime import timedelta
from fractions import Fraction

from sessionflow.errors import InvalidInput

__all__ = ["MAX_DURATION", "MAX_DURATION_TEXT", "format_duration", "parse_duration"]

#: The longest duration accepted: 36,500 days (about 100 years).
MAX_DURATION = timedelta(days=36500)
#: The longest text :func:`parse_duration` reads (spaces around it excluded).
MAX_DURATION_TEXT = 100

_MICROSECONDS = {"d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000, "min": 60_000_000,
                 "s": 1_000_000, "sec": 1_000_000, "ms": 1_000}
_RANK = {"d": 0, "h": 1, "m": 2, "min": 2, "s": 3, "sec": 3, "ms": 4}
_MAX_MICROSECONDS = MAX_DURATION // timedelta(microseconds=1)
#: Digits of a number that matter: more integer digits are out of range anyway, more decimals are far below a
#: microsecond.
_MAX_INTEGER_DIGITS = 16
_MAX_DECIMALS = 12
_EXAMPLES = "examples: 90, 90s, 500ms, 15m, 2h, 1d, 1h30m, 1.5h"


def _show(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:  # repr() of a huge int is slow, or refused
        return f"a {value.bit_length()}-bit number"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _digits(text: str, start: int) -> int:
    """The index after the ASCII digits of ``text`` from ``start``."""
    end = start
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    return end


def _spaces(text: str, start: int) -> int:
    end = start
    while end < len(text) and text[end].isspace():
        end += 1
    return end


def _letters(text: str, start: int) -> int:
    end = start
    while end < len(text) and ("a" <= text[end] <= "z" or "A" <= text[end] <= "Z"):
        end += 1
    return end


def _number(integer: str, decimals: str) -> Fraction | None:
    """The value of ``integer.decimals``, or ``None`` when it is certainly out of range."""
    integer = integer.lstrip("0")
    if len(integer) > _MAX_INTEGER_DIGITS:
        return None
    decimals = decimals[:_MAX_DECIMALS]
    value = Fraction(int(integer or "0"))
    if decimals:
        value += Fraction(int(decimals), 10 ** len(decimals))
    return value


def _scan(text: str, field: str, original: str) -> Fraction:
    """The microseconds ``text`` (stripped, non-empty, short) stands for."""

    def refuse(problem: str) -> InvalidInput:
        return InvalidInput(field, f"{_show(original)} is not a duration: {problem} ({_EXAMPLES})")

    total = Fraction(0)
    rank = -1
    index = 0
    parts = 0
    while index < len(text):
        end = _digits(text, index)
        if end == index:
            raise refuse(f"expected a number at {text[index]!r}")
        integer, decimals = text[index:end], ""
        if end < len(text) and text[end] == ".":
            after = _digits(text, end + 1)
            if after == end + 1:
                raise refuse("expected digits after the decimal point")
            decimals, end = text[end + 1:after], after
        index = _spaces(text, end)
        unit_end = _letters(text, index)
        unit = text[index:unit_end].lower()
        number = _number(integer, decimals)
        if not unit:
            if parts or index < len(text):
                raise refuse("a number without a unit is seconds only on its own (write 1h30m, not 1h30)")
            unit = "s"
        elif unit not in _MICROSECONDS:
            raise refuse(f"unknown unit {unit!r} (use d, h, m, s or ms)")
        if _RANK[unit] <= rank:
            raise refuse("give the units largest first, each once (1d2h3m4s500ms)")
        rank = _RANK[unit]
        if number is None:
            raise InvalidInput(field, f"{_show(original)} is longer than {format_duration(MAX_DURATION)} "
                                      f"({MAX_DURATION.days} days)")
        total += number * _MICROSECONDS[unit]
        parts += 1
        index = _spaces(text, unit_end)
    return total


def _checked(microseconds: Fraction, field: str, original: object) -> timedelta:
    if microseconds <= 0:
        raise InvalidInput(field, f"{_show(original)}: a duration must be positive")
    rounded = round(microseconds)
    if rounded > _MAX_MICROSECONDS:
        raise InvalidInput(field, f"{_show(original)} is longer than {format_duration(MAX_DURATION)} "
                                  f"({MAX_DURATION.days} days)")
    if rounded == 0:
        raise InvalidInput(field, f"{_show(original)}: a duration must be at least one microsecond")
    return timedelta(microseconds=rounded)


def parse_duration(value: str | int | float | timedelta, field: str) -> timedelta:
    """``value`` as a positive :class:`~datetime.timedelta` of at most :data:`MAX_DURATION` (36,500 days).

    ``value`` is a text in the grammar of this module (``"90"``, ``"90s"``, ``"500ms"``, ``"15m"``, ``"2h"``,
    ``"1d"``, ``"1h30m"``, ``"1.5h"``, spaces around it allowed), a number of seconds (an ``int`` or a finite
    ``float``, as YAML and JSON give them) or a ``timedelta`` (checked against the same bounds). ``field``
    names the value in the error. Raises :class:`~sessionflow.errors.InvalidInput` for anything malformed or
    out of range, in time linear in the length of the text.
    """
    if isinstance(value, timedelta):
        return _checked(Fraction(value // timedelta(microseconds=1)), field, value)
    if isinstance(value, bool):
        raise InvalidInput(field, f"{value!r} is not a duration ({_EXAMPLES})")
    if isinstance(value, int):
        if value > MAX_DURATION.total_seconds():
            return _checked(Fraction(_MAX_MICROSECONDS + 1), field, value)
        return _checked(Fraction(value) * 1_000_000, field, value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, f"{value!r} is not a duration: it must be finite ({_EXAMPLES})")
        if value > MAX_DURATION.total_seconds():
            return _checked(Fraction(_MAX_MICROSECONDS + 1), field, value)
        return _checked(Fraction(value) * 1_000_000, field, value)
    if not isinstance(value, str):
        raise InvalidInput(field, f"expected a duration ({_EXAMPLES}), got {type(value).__name__}")
    if len(value) > 4 * MAX_DURATION_TEXT:  # not even stripped: a long text is refused unread
        raise InvalidInput(field, f"{_show(value)} is not a duration: longer than {MAX_DURATION_TEXT} characters")
    text = value.strip()
    if not text:
        raise InvalidInput(field, f"an empty text is not a duration ({_EXAMPLES})")
    if len(text) > MAX_DURATION_TEXT:
        raise InvalidInput(field, f"{_show(value)} is not a duration: longer than {MAX_DURATION_TEXT} characters")
    return _checked(_scan(text, field, value), field, value)


def format_duration(value: timedelta) -> str:
    """``value`` written in the grammar :func:`parse_duration` reads: ``1h30m``, ``90ms``, ``2.5s``, ``1d``.

    Largest unit first, zero parts left out, exact to the microsecond: ``parse_duration(format_duration(d))``
    is ``d`` for every duration ``parse_duration`` accepts. Zero is ``0s``; a negative duration gets a ``-``.
    """
    if value < timedelta(0):
        return "-" + format_duration(-value)
    total = value // timedelta(microseconds=1)
    if total == 0:
        return "0s"
    days, rest = divmod(total, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micro = divmod(rest, 1_000_000)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if micro == 0:
        parts += [f"{seconds}s"] if seconds else []
    elif micro % 1000 == 0:
        parts += ([f"{seconds}s"] if seconds else []) + [f"{micro // 1000}ms"]
    else:
        parts.append(f"{seconds}.{micro:06d}".rstrip("0") + "s")
    return "".join(parts)
