"""Value rules: immutable JSON, its limits, UTC timestamps and the input validators."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import RFC_4122, UUID, uuid4

import pytest

from sessionflow.domain.values import (
    MAX_FILE_PATHS,
    MAX_ID_LENGTH,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_PATH_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TTL,
    MIN_TTL,
    FrozenDict,
    FrozenList,
    compact_json,
    format_timestamp,
    freeze_json,
    new_uuid4,
    parse_session_id,
    thaw_json,
    to_utc,
    truncate_to_ms,
    validate_identifier,
    validate_path,
    validate_paths,
    validate_text,
    validate_ttl,
)
from sessionflow.errors import InvalidInput

# ---------------------------------------------------------------- FrozenDict / FrozenList

DICT_MUTATIONS: list[tuple[str, Any]] = [
    ("setitem", lambda d: d.__setitem__("a", 2)),
    ("delitem", lambda d: d.__delitem__("a")),
    ("ior", lambda d: d.__ior__({"b": 1})),
    ("clear", lambda d: d.clear()),
    ("pop", lambda d: d.pop("a")),
    ("popitem", lambda d: d.popitem()),
    ("setdefault", lambda d: d.setdefault("z", 1)),
    ("update", lambda d: d.update(z=1)),
]

LIST_MUTATIONS: list[tuple[str, Any]] = [
    ("setitem", lambda v: v.__setitem__(0, 9)),
    ("delitem", lambda v: v.__delitem__(0)),
    ("iadd", lambda v: v.__iadd__([4])),
    ("imul", lambda v: v.__imul__(2)),
    ("append", lambda v: v.append(4)),
    ("clear", lambda v: v.clear()),
    ("extend", lambda v: v.extend([4])),
    ("insert", lambda v: v.insert(0, 4)),
    ("pop", lambda v: v.pop()),
    ("remove", lambda v: v.remove(1)),
    ("reverse", lambda v: v.reverse()),
    ("sort", lambda v: v.sort()),
]


@pytest.mark.parametrize(("name", "mutate"), DICT_MUTATIONS, ids=[n for n, _ in DICT_MUTATIONS])
def test_frozen_dict_refuses_every_mutation(name: str, mutate: Any) -> None:
    d = FrozenDict({"a": 1})
    with pytest.raises(TypeError, match="immutable"):
        mutate(d)
    assert d == {"a": 1}


@pytest.mark.parametrize(("name", "mutate"), LIST_MUTATIONS, ids=[n for n, _ in LIST_MUTATIONS])
def test_frozen_list_refuses_every_mutation(name: str, mutate: Any) -> None:
    v = FrozenList([1, 2, 3])
    with pytest.raises(TypeError, match="immutable"):
        mutate(v)
    assert v == [1, 2, 3]


def test_augmented_assignment_on_a_name_does_not_touch_the_frozen_value() -> None:
    d = FrozenDict({"a": 1})
    with pytest.raises(TypeError):
        d |= {"b": 2}
    v = FrozenList([1])
    with pytest.raises(TypeError):
        v += [2]
    assert d == {"a": 1}
    assert v == [1]


def test_frozen_values_equal_plain_values_and_hash_consistently() -> None:
    a = FrozenDict({"x": FrozenList([1, 2]), "y": FrozenDict({"z": None})})
    b = FrozenDict({"y": FrozenDict({"z": None}), "x": FrozenList([1, 2])})
    assert a == {"x": [1, 2], "y": {"z": None}}
    assert a == b
    assert hash(a) == hash(b)
    assert FrozenList([1, 2]) == [1, 2]
    assert hash(FrozenList([1, 2])) == hash(FrozenList([1, 2]))
    assert a != {"x": [1, 2]}
    assert len({a, b}) == 1


def test_copies_are_the_same_object_and_pickle_round_trips() -> None:
    d = freeze_json({"a": [1, {"b": 2}]})
    assert copy.copy(d) is d
    assert copy.deepcopy(d) is d
    assert copy.deepcopy(d["a"]) is d["a"]
    back = pickle.loads(pickle.dumps(d))
    assert back == d
    assert isinstance(back, FrozenDict)
    assert isinstance(pickle.loads(pickle.dumps(d["a"])), FrozenList)


def test_thaw_gives_independent_mutable_copies() -> None:
    frozen = freeze_json({"a": [1, {"b": 2}], "c": "d"})
    thawed = thaw_json(frozen)
    assert thawed == frozen
    assert type(thawed) is dict
    assert type(thawed["a"]) is list
    assert type(thawed["a"][1]) is dict
    thawed["a"][1]["b"] = 3
    assert frozen["a"][1]["b"] == 2


# ---------------------------------------------------------------- freeze_json


def test_freeze_json_is_deep() -> None:
    frozen = freeze_json({"a": [1, {"b": [2, 3]}], "t": (1, 2)})
    assert isinstance(frozen, FrozenDict)
    assert isinstance(frozen["a"], FrozenList)
    assert isinstance(frozen["a"][1], FrozenDict)
    assert isinstance(frozen["a"][1]["b"], FrozenList)
    assert frozen["t"] == [1, 2]
    with pytest.raises(TypeError):
        frozen["a"][1]["b"].append(4)


def test_freeze_json_copies_the_input() -> None:
    source: dict[str, Any] = {"a": [1]}
    frozen = freeze_json(source)
    source["a"].append(2)
    source["b"] = 1
    assert frozen == {"a": [1]}


def test_freeze_json_none_is_empty_and_frozen_input_is_reused() -> None:
    assert freeze_json(None) == {}
    assert isinstance(freeze_json(None), FrozenDict)
    frozen = freeze_json({"a": 1})
    assert freeze_json(frozen) is frozen


@pytest.mark.parametrize("value", [[1], "text", 3, 1.5, True])
def test_freeze_json_wants_an_object(value: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        freeze_json(value, "metadata")
    assert info.value.field == "metadata"
    assert "JSON object" in info.value.problem


def test_freeze_json_size_limit_is_64_kib() -> None:
    assert MAX_JSON_BYTES == 64 * 1024
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    fits = {"k": "x" * (MAX_JSON_BYTES - overhead)}
    assert freeze_json(fits) == fits
    with pytest.raises(InvalidInput, match="byte limit"):
        freeze_json({"k": "x" * (MAX_JSON_BYTES - overhead + 1)})


def test_freeze_json_size_counts_utf8_bytes() -> None:
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    chars = (MAX_JSON_BYTES - overhead) // 2 + 1  # 2 bytes each in UTF-8
    with pytest.raises(InvalidInput, match="byte limit"):
        freeze_json({"k": "é" * chars})
    assert freeze_json({"k": "é" * (chars - 1)})["k"] == "é" * (chars - 1)


def test_freeze_json_respects_a_custom_size() -> None:
    with pytest.raises(InvalidInput):
        freeze_json({"k": "x" * 20}, "payload", max_bytes=10)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_freeze_json_depth_limit_is_32() -> None:
    assert MAX_JSON_DEPTH == 32
    assert freeze_json(_nested(MAX_JSON_DEPTH))
    with pytest.raises(InvalidInput, match="deeper"):
        freeze_json(_nested(MAX_JSON_DEPTH + 1))


def test_freeze_json_depth_counts_lists() -> None:
    value: Any = 1
    for _ in range(MAX_JSON_DEPTH):
        value = [value]
    with pytest.raises(InvalidInput, match="deeper"):
        freeze_json({"a": value})


def test_freeze_json_survives_very_deep_input() -> None:
    value: Any = {}
    for _ in range(10_000):
        value = {"a": value}
    with pytest.raises(InvalidInput):
        freeze_json(value)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_freeze_json_refuses_nan_and_infinities(number: float) -> None:
    with pytest.raises(InvalidInput, match="NaN"):
        freeze_json({"n": number})
    with pytest.raises(InvalidInput, match="NaN"):
        freeze_json({"n": [1.0, number]})


@pytest.mark.parametrize("key", [1, 1.5, None, ("a",), b"a"])
def test_freeze_json_refuses_non_string_keys(key: Any) -> None:
    with pytest.raises(InvalidInput, match="keys must be strings"):
        freeze_json({key: 1})
    with pytest.raises(InvalidInput, match="keys must be strings"):
        freeze_json({"nested": {key: 1}})


@pytest.mark.parametrize("where", ["value", "key", "nested"])
def test_freeze_json_refuses_lone_surrogates(where: str) -> None:
    bad = "a\ud800b"
    value = {"value": {"k": bad}, "key": {bad: 1}, "nested": {"k": [{"x": bad}]}}[where]
    with pytest.raises(InvalidInput, match="surrogate"):
        freeze_json(value)


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), datetime(2030, 1, 1, tzinfo=UTC), uuid4()])
def test_freeze_json_refuses_values_that_are_not_json(value: Any) -> None:
    with pytest.raises(InvalidInput, match="not a JSON value"):
        freeze_json({"v": value})


def test_freeze_json_accepts_every_json_type() -> None:
    value = {"s": "é✓", "i": -(2**70), "f": 1.25, "t": True, "n": None, "l": [], "o": {}}
    frozen = freeze_json(value)
    assert frozen == value
    assert json.loads(json.dumps(frozen)) == value


# ---------------------------------------------------------------- timestamps


def test_to_utc_refuses_naive_datetimes() -> None:
    with pytest.raises(InvalidInput) as info:
        to_utc(datetime(2030, 1, 1), "when")
    assert info.value.field == "when"
    assert "naive" in info.value.problem


def test_to_utc_refuses_non_datetimes() -> None:
    with pytest.raises(InvalidInput):
        to_utc("2030-01-01T00:00:00Z")  # type: ignore[arg-type]


def test_to_utc_converts_other_zones_to_utc() -> None:
    plus2 = datetime(2030, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    utc = to_utc(plus2)
    assert utc.tzinfo is UTC
    assert utc == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert (utc.hour, utc.minute) == (12, 0)
    already = datetime(2030, 1, 1, tzinfo=UTC)
    assert to_utc(already) is already


def test_truncate_to_ms_drops_microseconds() -> None:
    value = datetime(2030, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC)
    assert truncate_to_ms(value).microsecond == 123_000
    exact = datetime(2030, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)
    assert truncate_to_ms(exact) is exact


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC), "2030-01-02T03:04:05.678Z"),
        (datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), "2030-01-02T03:04:05.000Z"),
        (datetime(2030, 1, 2, 5, 4, 5, 1_000, tzinfo=timezone(timedelta(hours=2))), "2030-01-02T03:04:05.001Z"),
        (datetime(2030, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), "2029-12-31T23:30:00.000Z"),
    ],
)
def test_format_timestamp_is_iso_8601_utc_with_ms_and_z(value: datetime, expected: str) -> None:
    text = format_timestamp(value)
    assert text == expected
    assert datetime.fromisoformat(text) == truncate_to_ms(value)


# ---------------------------------------------------------------- validators


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_validate_text_refuses_blank_unless_allowed(value: str) -> None:
    with pytest.raises(InvalidInput, match="empty or blank"):
        validate_text(value, "reason")
    assert validate_text(value, "reason", allow_empty=True) == value


def test_validate_text_limits() -> None:
    assert validate_text("x" * MAX_TEXT_LENGTH, "t") == "x" * MAX_TEXT_LENGTH
    with pytest.raises(InvalidInput, match="longer than"):
        validate_text("x" * (MAX_TEXT_LENGTH + 1), "t")
    with pytest.raises(InvalidInput, match="NUL"):
        validate_text("a\x00b", "t")
    with pytest.raises(InvalidInput, match="surrogate"):
        validate_text("a\udfffb", "t")
    with pytest.raises(InvalidInput, match="expected a string"):
        validate_text(5, "t")


def test_validate_identifier() -> None:
    assert validate_identifier("user-1", "user_id") == "user-1"
    assert validate_identifier("x" * MAX_ID_LENGTH, "user_id") == "x" * MAX_ID_LENGTH
    with pytest.raises(InvalidInput) as info:
        validate_identifier("x" * (MAX_ID_LENGTH + 1), "user_id")
    assert info.value.field == "user_id"
    for bad in ["", "   ", "a\nb", "a\x7fb", "a\x01"]:
        with pytest.raises(InvalidInput):
            validate_identifier(bad, "user_id")
    with pytest.raises(InvalidInput):
        validate_identifier(None, "user_id")


def test_validate_path() -> None:
    assert validate_path("src/a b/é.py") == "src/a b/é.py"
    assert validate_path("p" * MAX_PATH_LENGTH) == "p" * MAX_PATH_LENGTH
    for bad in ["", " ", "a\nb", "p" * (MAX_PATH_LENGTH + 1)]:
        with pytest.raises(InvalidInput):
            validate_path(bad)


def test_validate_paths() -> None:
    assert validate_paths(None) == ()
    assert validate_paths(["a", "b"]) == ("a", "b")
    assert validate_paths(iter(["a"])) == ("a",)
    with pytest.raises(InvalidInput, match="same path twice"):
        validate_paths(["a", "a"])
    with pytest.raises(InvalidInput, match="list of paths"):
        validate_paths("a.py")
    with pytest.raises(InvalidInput, match=f"more than {MAX_FILE_PATHS}"):
        validate_paths([str(i) for i in range(MAX_FILE_PATHS + 1)])


def test_validate_ttl() -> None:
    assert validate_ttl(MIN_TTL) == MIN_TTL
    assert validate_ttl(MAX_TTL) == MAX_TTL
    for bad in [MIN_TTL - timedelta(microseconds=1), timedelta(0), -MIN_TTL, MAX_TTL + timedelta(seconds=1)]:
        with pytest.raises(InvalidInput):
            validate_ttl(bad)
    for wrong_type in [60, 60.0, True, "60", None]:
        with pytest.raises(InvalidInput, match="expected a timedelta"):
            validate_ttl(wrong_type)


def test_parse_session_id() -> None:
    sid = uuid4()
    assert parse_session_id(sid) is sid
    assert parse_session_id(str(sid)) == sid
    assert parse_session_id(str(sid).upper()) == sid
    for bad in ["", "nope", str(sid)[:-1], "x" * 100, 42, None, sid.bytes, "' OR 1=1 --"]:
        with pytest.raises(InvalidInput) as info:
            parse_session_id(bad)
        assert info.value.field == "session_id"
    assert isinstance(parse_session_id(UUID(int=1)), UUID)


# ---------------------------------------------------------------------------------------------- encoders, ids

_JSON_SAMPLES: list[Any] = [
    {}, [], "", 0, -1.5, 1e300, None, True, False, "é ☃ \u2028 \x00 \" \\ / \n",
    {"a": [1, 2.0, None, {"b": []}], "é": {"nested": {"deeper": "x"}}},
    FrozenDict({"metadata": FrozenDict({"k": FrozenList([1, "two"])})}),
    [["row", 1, None, 2.5], ["other", -3, "x", 0.0]],
]


@pytest.mark.parametrize("value", _JSON_SAMPLES)
def test_compact_json_is_json_dumps_compact_and_unescaped(value: Any) -> None:
    assert compact_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(compact_json(value)) == value


def test_compact_json_refuses_values_that_are_not_json() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json({"a": object()})


def test_new_uuid4_makes_random_version_4_uuids_like_uuid4() -> None:
    made = [new_uuid4() for _ in range(2000)]
    assert len({u.int for u in made}) == len(made)
    for u in made[:200]:
        assert isinstance(u, UUID)
        assert (u.version, u.variant) == (4, RFC_4122)
        assert UUID(str(u)) == u
        assert hash(UUID(u.hex)) == hash(u)
        assert UUID(bytes=u.bytes) == u
        with pytest.raises(TypeError):
            u.int = 5  # type: ignore[misc]  # immutable, as every UUID
    # every random bit takes both values across the sample: nothing but the version and variant is fixed
    fixed = {i for i in range(128) if len({(u.int >> i) & 1 for u in made}) == 1}
    assert fixed == {76, 77, 78, 79, 62, 63}


def test_identifiers_remembered_as_valid_stay_exactly_as_checked() -> None:
    """Valid identifiers are remembered (bounded) so the next check is a lookup; refusals never are."""
    from sessionflow.domain import values

    for _ in range(2):
        assert validate_identifier("performer-7", "performer_id") == "performer-7"
        for bad in ["", "  ", "a\x00b", "tab\there", "x" * (MAX_ID_LENGTH + 1), "\ud800"]:
            with pytest.raises(InvalidInput):
                validate_identifier(bad, "performer_id")
    assert "performer-7" in values._VALID_IDS

    class Sneaky(str):
        pass

    assert validate_identifier(Sneaky("sub-class"), "user_id") == "sub-class"
    assert "sub-class" not in values._VALID_IDS  # only exact strings are remembered
    for i in range(values._VALID_IDS_MAX + 10):
        validate_identifier(f"id-{i}", "user_id")
    assert len(values._VALID_IDS) <= values._VALID_IDS_MAX
