"""One duration grammar (sessionflow.domain.durations): what it reads, what it refuses, in linear time."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionflow.domain.durations import MAX_DURATION, format_duration, parse_duration
from sessionflow.errors import InvalidInput


@pytest.mark.parametrize(("text", "expected"), [
    ("90", timedelta(seconds=90)),
    ("1.5", timedelta(seconds=1.5)),
    ("90s", timedelta(seconds=90)),
    ("90sec", timedelta(seconds=90)),
    ("500ms", timedelta(milliseconds=500)),
    ("15m", timedelta(minutes=15)),
    ("15min", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("1d", timedelta(days=1)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1.5h", timedelta(hours=1, minutes=30)),
    ("1d 12h", timedelta(days=1, hours=12)),
    ("1 h 30 m", timedelta(hours=1, minutes=30)),
    ("2m30s", timedelta(minutes=2, seconds=30)),
    ("1s500ms", timedelta(seconds=1, milliseconds=500)),
    ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
    ("  10m\t\n", timedelta(minutes=10)),
    ("2H", timedelta(hours=2)),
    ("007s", timedelta(seconds=7)),
    ("0.000001s", timedelta(microseconds=1)),
    ("36500d", MAX_DURATION),
])
def test_the_grammar_reads(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "ttl") == expected


@pytest.mark.parametrize(("value", "expected"), [
    (90, timedelta(seconds=90)),
    (1.5, timedelta(seconds=1.5)),
    (0.25, timedelta(milliseconds=250)),
    (timedelta(minutes=5), timedelta(minutes=5)),
])
def test_numbers_are_seconds_and_timedeltas_are_checked(value: int | float | timedelta, expected: timedelta) -> None:
    assert parse_duration(value, "after") == expected


_INVALID: list[object] = [
    "", "   ", "soon", "-5s", "+5s", "0", "0s", "0.0000001s", "5 parsecs", "1h30", "30m1h", "1m1m", "1.h", ".5h",
    "1e3", "1,5h", "1h-30m", "s", "\u0661\u0662s", "99999999999999999999d", "36500d1s", "NaN", "inf", "1" * 5000 + "s",
    "0" * 90 + "1s" + "x", 0, -1, 0.0, -0.5, float("nan"), float("inf"), float("-inf"), 10**30, 10**5000, 1e300,
    True, False, None, [], {"h": 1}, timedelta(0), timedelta(seconds=-1), timedelta(days=36501),
]


@pytest.mark.parametrize("value", _INVALID, ids=[f"{type(v).__name__}-{i}" for i, v in enumerate(_INVALID)])
def test_everything_else_is_invalid_input_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_duration(value, "timeouts.review.after")  # type: ignore[arg-type]
    assert raised.value.field == "timeouts.review.after"
    assert raised.value.message.startswith("invalid timeouts.review.after: ")
    assert len(raised.value.message) < 300  # a hostile value is not echoed whole


def test_messages_say_what_is_wrong() -> None:
    with pytest.raises(InvalidInput, match="unknown unit 'parsecs'"):
        parse_duration("5 parsecs", "x")
    with pytest.raises(InvalidInput, match="largest first"):
        parse_duration("30m1h", "x")
    with pytest.raises(InvalidInput, match="must be positive"):
        parse_duration("0s", "x")
    with pytest.raises(InvalidInput, match="longer than 36500d"):
        parse_duration("99999999999999999999d", "x")
    with pytest.raises(InvalidInput, match="finite"):
        parse_duration(float("inf"), "x")


@pytest.mark.parametrize("hostile", [
    " " * 100_000 + "x",
    "1" * 100_000,
    "1" * 100_000 + "x",
    "1." + "1" * 100_000 + "s",
    "1h" * 50_000,
    " 1 " * 33_333 + "x",
    "\t" * 99_999 + "5",
])
def test_hostile_text_is_refused_quickly(hostile: str) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidInput):
        parse_duration(hostile, "x")
    assert time.perf_counter() - start < 0.5  # an upper bound on pathology, not a speed requirement


durations = st.builds(timedelta, microseconds=st.integers(1, MAX_DURATION // timedelta(microseconds=1)))


@given(durations)
def test_format_then_parse_is_the_identity(value: timedelta) -> None:
    text = format_duration(value)
    assert parse_duration(text, "x") == value
    assert parse_duration(f"  {text.upper()} ", "x") == value


@given(st.integers(1, int(MAX_DURATION.total_seconds())))
def test_a_number_of_seconds_is_that_many_seconds(seconds: int) -> None:
    assert parse_duration(seconds, "x") == parse_duration(str(seconds), "x") == timedelta(seconds=seconds)


@given(st.text(max_size=60))
def test_any_text_parses_or_is_invalid_input(text: str) -> None:
    try:
        value = parse_duration(text, "x")
    except InvalidInput:
        return
    assert timedelta(0) < value <= MAX_DURATION


def test_format_duration_examples() -> None:
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(milliseconds=500)) == "500ms"
    assert format_duration(timedelta(seconds=2, milliseconds=5)) == "2s5ms"
    assert format_duration(timedelta(seconds=2.5)) == "2s500ms"
    assert format_duration(timedelta(microseconds=1500)) == "0.0015s"
    assert format_duration(timedelta(days=2)) == "2d"
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(timedelta(minutes=-5)) == "-5m"
