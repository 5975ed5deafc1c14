"""Hostile input to every public manager method: a typed error and no change, or a valid result.

Each example calls one method with arguments drawn from hostile strategies (malformed ids, wrong types, huge
and non-UTF-8 strings, deep or non-finite JSON, SQL-injection and path-traversal text, naive datetimes,
negative or enormous durations and limits) and checks the outcome: success, or a ``SessionflowError``
(never a bare ``TypeError``, ``KeyError``, driver error, ...) that left the sessions and histories as they were.
"""

from __future__ import annotations

import math
import weakref
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionflow import SessionflowError, SessionManager
from tests.conftest import MakeManager

HOSTILE_TEXT = st.one_of(
    st.sampled_from([
        "", " ", "\x00", "x' OR '1'='1", "'; DROP TABLE sessions; --", "../../etc/passwd", "/abs/path",
        "..\\..\\win", "\ud800", "a" * 300, "é" * 5000, "\n\t", "%s%s%n", "${jndi:ldap://x}", "NULL",
    ]),
    st.text(max_size=40),
)
WRONG_TYPES = st.sampled_from([None, 0, -1, 2**70, 3.5, math.nan, math.inf, b"bytes", [], {}, ["a"], {"a": 1},
                               object(), True])


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


HOSTILE_JSON = st.one_of(
    st.sampled_from([_deep(40), {"n": math.nan}, {"i": math.inf}, {1: "x"}, {"b": b"x"}, {"s": "\ud800"},
                     {"big": "x" * 70_000}, [1, 2], "text", {"set": {1, 2}}, {"dt": datetime(2020, 1, 1)}]),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
)
IDS = st.one_of(st.sampled_from(["not-a-uuid", "", "00000000-0000-0000-0000-000000000000", "{" * 70]),
                st.uuids(), WRONG_TYPES)
ANY_ARG = st.one_of(HOSTILE_TEXT, WRONG_TYPES)
DURATIONS = st.one_of(st.sampled_from([timedelta(0), timedelta(seconds=-1), timedelta(days=99_999),
                                       timedelta(microseconds=1)]),
                      st.timedeltas(min_value=timedelta(days=-10), max_value=timedelta(days=10_000)), WRONG_TYPES)
LIMITS = st.one_of(st.integers(min_value=-(2**64), max_value=2**64), WRONG_TYPES)
TIMES = st.one_of(st.datetimes(), st.datetimes(timezones=st.timezones()), WRONG_TYPES)


def _snapshot(manager: SessionManager) -> Any:
    store = manager.store
    return sorted(((s.id, s.version, s.status, s.deleted_at) for s in store.projections()), key=str), \
        sum(len(h) for h in store.histories())


CALLS = {
    "create": lambda m, sid, a: m.create(performer_id=a["performer"], user_id=a["text"], workspace_id=a["text2"],
                                         module_name=a["text"], file_paths=a["paths"], metadata=a["json"],
                                         ttl=a["ttl"]),
    "get": lambda m, sid, a: m.get(a["id"]),
    "get_active": lambda m, sid, a: m.get_active(a["id"]),
    "list": lambda m, sid, a: m.list(status=a["any"], user_id=a["text"], workspace_id=a["text2"],
                                     limit=a["limit"], offset=a["offset"]),
    "start": lambda m, sid, a: m.start(a["id"], performer_id=a["performer"]),
    "record_file": lambda m, sid, a: m.record_file(sid, a["text"], error=a["text2"], performer_id=a["performer"]),
    "add_note": lambda m, sid, a: m.add_note(sid, file_path=a["text"], status=a["text2"], memory_id=a["any"],
                                             performer_id=a["performer"]),
    "complete": lambda m, sid, a: m.complete(a["id"], performer_id=a["performer"]),
    "fail": lambda m, sid, a: m.fail(sid, reason=a["any"], performer_id=a["performer"]),
    "expire": lambda m, sid, a: m.expire(a["id"]),
    "touch": lambda m, sid, a: m.touch(sid, performer_id=a["performer"], expected_version=a["limit"]),
    "update": lambda m, sid, a: m.update(sid, performer_id=a["performer"], current_file=a["any"], metadata=a["json"],
                                         status=a["text"], expected_version=a["version"]),
    "delete": lambda m, sid, a: m.delete(a["id"], performer_id=a["performer"], expected_version=a["version"]),
    "history": lambda m, sid, a: m.history(a["id"]),
    "count": lambda m, sid, a: m.count(a["any"]),
    "expire_sessions": lambda m, sid, a: m.expire_sessions(now=a["now"], batch_size=a["limit"]),
}

ARGS = st.fixed_dictionaries({
    "performer": st.one_of(st.just("u1"), ANY_ARG),
    "text": ANY_ARG, "text2": ANY_ARG, "any": ANY_ARG, "json": HOSTILE_JSON,
    "paths": st.one_of(st.lists(ANY_ARG, max_size=3), WRONG_TYPES, st.just(["a", "a"])),
    "ttl": DURATIONS, "id": IDS, "limit": LIMITS, "offset": LIMITS, "version": LIMITS, "now": TIMES,
})


_managers: weakref.WeakKeyDictionary[Any, SessionManager] = weakref.WeakKeyDictionary()


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.parametrize("backend", ["memory", "sqlite"], indirect=True)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=ARGS)
def test_hostile_arguments_are_refused_cleanly(make_manager: MakeManager, method: str, args: dict[str, Any]) -> None:
    manager = _managers.get(make_manager)
    if manager is None:  # one manager per test function, shared by its examples
        manager = _managers[make_manager] = make_manager()
    target = manager.create(performer_id="u1", user_id="u1", file_paths=["a.py"])
    before = _snapshot(manager)
    try:
        CALLS[method](manager, target.id, args)
    except SessionflowError:
        assert _snapshot(manager) == before, f"{method} raised but changed state"
    # Any other exception propagates and fails the test.
