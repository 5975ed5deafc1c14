"""Zero mislabelled outcomes: a write whose connection breaks reports what really happened to it.

Every write kind of the manager — create, start (send; also under ``single_active_per_user``, which takes
PostgreSQL's transactional path), touch, add_note, record_file, update, delete, expire, create_many, send_many, a
sweep of overdue sessions (one batch; 150 sessions, PostgreSQL's pipelined large batch; two batches, the second
faulted), purge (one batch; two, the second faulted), saving a consumer's position — runs on PostgreSQL and on
Redis, from the synchronous manager and from the asyncio one, through a :class:`FaultProxy` that breaks its
connection at one exact place:

``reply-lost-no-lookup``
    the write reaches the server and commits; its reply is lost; every connection is cut and new ones are refused
    for longer than the retry budget (``retries=1``): the store cannot look the write up. It must say success
    (impossible here) or :class:`OutcomeUnknown` — never :class:`StoreError`, which would say "not applied".
``reply-lost-lookup``
    the same, but the refusal ends within the budget (``retries=2``): the store looks the write up, finds it and
    must report success, the write being there exactly once.
``reply-before-commit-lost``
    (where a write is several statements: PostgreSQL's batches, purge, the consumer position, the sweep's claim;
    Redis's sweep claim) the reply of a statement before the commit is lost, so the transaction dies with its
    connection: nothing was applied, StoreError and OutcomeUnknown are both true, success is not.
``request-lost``
    the write's request never reaches the server (the connection is cut as it is sent): not applied.

After each faulted write the truth is read straight from the server (not through the proxy, nor through the
store under test) and held against the outcome with the three rules of ``outcome_checks.judge``: success =>
applied exactly once; OutcomeUnknown => applied at most once, and it names the write (its sessions, and record ids
found among the write's events if applied, nowhere if not); any other error => not applied. A sweep must also
report exactly the sessions it expired, a purge exactly those it removed (an OutcomeUnknown of their later
batch: ``applied``, the sessions the earlier batches changed).

Beside the matrix: the HTTP service (``POST /sessions``: a 503 ``store_error`` means the session does not exist;
a client that sends a create or a note again with its ``Idempotency-Key`` after any 503 ends with exactly one),
the command line (exit 7 = not applied, exit 10 = outcome unknown), group commit (each thread of a group whose
commit was lost is told OutcomeUnknown or success, never StoreError), and the retry budget the modes rest on
(``retries=N``: at most N new connections after the lost one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest

from sessionflow import OutcomeUnknown
from sessionflow.entrypoints.http import create_app
from tests.reliability.outcome_checks import Outcome, attempt, check_named, repetitions
from tests.reliability.outcome_harness import (
    BEFORE_COMMIT,
    LOOKUP,
    NO_LOOKUP,
    PG_APPEND,
    PG_COMMIT,
    R_APPEND_MANY,
    REQUEST_LOST,
    ROOT,
    Backdrop,
    Mode,
    harness,
    verdict,
)
from tests.reliability.outcome_kinds import ASYNC_REDIS_KINDS, KINDS, REQUEST_LOST_KINDS, Kind

with warnings.catch_warnings():  # Starlette's note about httpx's future; nothing the tests can act on
    warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def backdrops(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Backdrop]]:
    """``backdrops(store)``: the store's :class:`Backdrop` (``"pg"`` or ``"redis"``), made once per module."""
    made: dict[str, Backdrop] = {}

    def backdrop(store: str) -> Backdrop:
        if store not in made:
            url = str(request.getfixturevalue("postgres_url" if store == "pg" else "redis_url"))
            made[store] = Backdrop(store, url)
        return made[store]

    yield backdrop
    for each in made.values():
        each.close()


def _cases() -> list[Any]:
    cases = []
    for store in ("pg", "redis"):
        mark = pytest.mark.postgres if store == "pg" else pytest.mark.redis
        for flavour in ("sync", "async"):
            for kind in KINDS:
                for mode in (NO_LOOKUP, LOOKUP, BEFORE_COMMIT, REQUEST_LOST):
                    if kind.pattern(store, flavour, mode) is None:
                        continue
                    if mode is REQUEST_LOST and (kind.name not in REQUEST_LOST_KINDS or flavour == "async"):
                        continue
                    if store == "redis" and flavour == "async" and kind.name not in ASYNC_REDIS_KINDS:
                        continue
                    cases.append(pytest.param(store, flavour, kind, mode, marks=mark,
                                               id=f"{store}-{flavour}-{kind.name}-{mode.name}"))
    return cases


@pytest.mark.parametrize(("store", "flavour", "kind", "mode"), _cases())
def test_a_faulted_write_reports_what_happened(store: str, flavour: str, kind: Kind, mode: Mode,
                                              request: pytest.FixtureRequest) -> None:
    with harness(store, request, flavour) as h:
        state = kind.setup(h)
        manager = h.open(retries=mode.retries, **kind.options)
        pattern = kind.pattern(store, flavour, mode)
        assert pattern is not None
        mode.arm(h.proxy, pattern, kind.skip)
        outcome = attempt(lambda: kind.run(manager, state))
        what = f"{kind.name} on {store} ({flavour}), {mode.name}"
        assert h.proxy.wait_fired(5), f"{what}: the fault never happened (no request with {pattern!r}): {outcome}"
        applied = kind.applied(h, state, what)
        verdict(what, outcome, applied, mode)
        if outcome.kind == "unknown":
            assert isinstance(outcome.error, OutcomeUnknown)
            kind.check_unknown(h, state, outcome.error, applied, what)
        elif outcome.kind == "success":
            kind.check_success(h, state, outcome.value, what)


# --------------------------------------------------------------------------- the retry budget


@pytest.mark.parametrize("retries", [0, 1])
@pytest.mark.parametrize(("store", "kind"), [
    pytest.param("pg", "touch", marks=pytest.mark.postgres, id="pg-touch"),  # a thread's kept connection first
    pytest.param("pg", "create_many", marks=pytest.mark.postgres, id="pg-create_many"),
    pytest.param("redis", "touch", marks=pytest.mark.redis, id="redis-touch"),
])
def test_the_retry_budget_bounds_the_reconnections(store: str, kind: str, retries: int,
                                                  request: pytest.FixtureRequest) -> None:
    """``retries=N``: after the connection is lost, at most N new connections are tried (the look-up of the lost
    write is one of them) before the write gives up. What the modes above call "longer than the retry budget"
    rests on it."""
    write = next(k for k in KINDS if k.name == kind)
    with harness(store, request) as h:
        state = write.setup(h)
        manager = h.open(retries=retries)
        NO_LOOKUP.arm(h.proxy, write.after[store])
        before = h.proxy.accepted
        outcome = attempt(lambda: write.run(manager, state))
        assert h.proxy.wait_fired(5), f"the fault never happened: {outcome.describe()}"
        tried = h.proxy.accepted - before + h.proxy.refused
        assert outcome.kind == "unknown", outcome.describe()
        assert tried <= retries, (f"{kind} on {store} with retries={retries}: {tried} connections were tried after "
                                  "the one lost")


# --------------------------------------------------------------------------- the HTTP service


@pytest.mark.postgres
@pytest.mark.parametrize("mode", [NO_LOOKUP, LOOKUP, REQUEST_LOST], ids=lambda m: m.name)
def test_http_create_reports_what_happened(mode: Mode, request: pytest.FixtureRequest) -> None:
    with harness("pg", request) as h:
        manager = h.open(retries=mode.retries)
        with TestClient(create_app(manager), raise_server_exceptions=False) as client:
            mode.arm(h.proxy, PG_APPEND)
            response = client.post("/sessions", json={"performer_id": "p", "user_id": h.marker})
        what = f"POST /sessions on pg, {mode.name}: {response.status_code} {response.text}"
        assert h.proxy.wait_fired(5), f"{what}: the fault never happened"
        stored = h.truth.sessions_of_user(h.marker)
        if response.status_code == 201:
            assert stored == [UUID(response.json()["id"])], f"MISLABEL {what}: the server holds {stored}"
            outcome = Outcome(value=response.json())
        else:
            assert response.status_code == 503, what
            body = response.json()
            assert body["code"] in ("store_error", "outcome_unknown"), what
            if body["code"] == "store_error":
                assert stored == [], f"MISLABEL {what}: store_error, but the session exists: {stored}"
                outcome = Outcome(error=RuntimeError(body["message"]))
            else:
                assert len(body["session_ids"]) == 1, what
                assert body["record_ids"], what
                assert stored in ([], [UUID(body["session_ids"][0])]), f"{what}: the server holds {stored}"
                outcome = Outcome(error=OutcomeUnknown(body["operation"]))
        verdict(what, outcome, len(stored), mode)


def _retried_with_key(client: TestClient, path: str, body: dict[str, Any], key: str) -> tuple[Any, list[str]]:
    """Send the write with its ``Idempotency-Key`` until it is answered with anything but a 5xx (a 503
    ``outcome_unknown`` or ``store_error`` is sent again, once the database can be reached again); the answer and
    the codes of the errors on the way."""
    errors: list[str] = []
    for _ in range(200):
        response = client.post(path, json=body, headers={"Idempotency-Key": key})
        if response.status_code < 500:
            return response, errors
        errors.append(str(response.json().get("code")))
        threading.Event().wait(0.1)
    raise AssertionError(f"POST {path}: still failing after 200 attempts: {errors[-3:]}")


@pytest.mark.postgres
@pytest.mark.parametrize("write", ["create", "note"])
@pytest.mark.parametrize("mode", [NO_LOOKUP, LOOKUP, REQUEST_LOST], ids=lambda m: m.name)
def test_http_write_retried_with_its_key_is_applied_once(mode: Mode, write: str,
                                                         request: pytest.FixtureRequest) -> None:
    """A client that sends ``POST /sessions`` (or a note) again with its ``Idempotency-Key`` after any 503 ends
    with exactly one session (one note): the retry of a write that was applied is answered from its stored key
    (``Idempotent-Replayed: true``), that of one that was not is the write."""
    with harness("pg", request) as h:
        sid = None
        if write == "note":
            sid = h.seed.create(performer_id="p", user_id=h.marker, file_paths=["a.py"]).id
            h.seed.start(sid, performer_id="p")
        manager = h.open(retries=mode.retries)
        path, body = (("/sessions", {"performer_id": "p", "user_id": h.marker}) if sid is None else
                      (f"/sessions/{sid}/notes", {"performer_id": "p", "file_path": "a.py", "status": "stored"}))
        with TestClient(create_app(manager), raise_server_exceptions=False) as client:
            mode.arm(h.proxy, PG_APPEND)
            # (a key of this test's own: the keys of the module's earlier tests stay on the server)
            response, errors = _retried_with_key(client, path, body, key=f"{write}-{h.marker}")
        what = f"POST {path} on pg, {mode.name}, retried with its key after {errors}: {response.status_code}"
        assert h.proxy.wait_fired(5), f"{what}: the fault never happened"
        assert response.status_code == (201 if sid is None else 200), f"{what} {response.text}"
        assert set(errors) <= {"outcome_unknown", "store_error"}, what
        if mode is LOOKUP:
            assert errors == [], f"{what}: the store looks a lost write up itself"
        stored = h.truth.sessions_of_user(h.marker)
        if sid is None:
            assert stored == [UUID(response.json()["id"])], f"{what}: the server holds {stored}"
        else:
            notes = [e for e in h.truth.history(sid) if e.event == "note_added"]
            assert len(notes) == 1, f"{what}: {len(notes)} notes were written"
            assert len(response.json()["notes"]) == 1, what
        replayed = response.headers.get("idempotent-replayed") == "true"
        assert replayed == (mode is NO_LOOKUP), f"{what}: Idempotent-Replayed {replayed}"


# --------------------------------------------------------------------------- the command line


#: The command line's store has the default retries (4: 1.5 s of back-off in all), so it is cut off for 4 s.
CLI_LONG = 4.0


@pytest.mark.postgres
@pytest.mark.parametrize("mode", [Mode("reply-lost-no-lookup", retries=4, refuse_for=CLI_LONG),
                                  Mode("request-lost", retries=4, refuse_for=CLI_LONG, request_lost=True)],
                         ids=lambda m: m.name)
def test_cli_create_exit_code_reports_what_happened(mode: Mode, request: pytest.FixtureRequest) -> None:
    """``sessionflow --db URL create``: exit 0 = created once, 7 (store error) = not created, 10 (outcome unknown)
    = either."""
    with harness("pg", request) as h:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
        mode.arm(h.proxy, PG_APPEND)
        done = subprocess.run([sys.executable, "-m", "sessionflow", "--db", h.proxy_url, "create", "--user",
                               h.marker, "--json"], capture_output=True, text=True, timeout=90, env=env, cwd=ROOT)
        what = f"sessionflow create on pg, {mode.name}: exit {done.returncode}: {done.stdout} {done.stderr}"
        assert h.proxy.wait_fired(5), f"{what}: the fault never happened"
        stored = h.truth.sessions_of_user(h.marker)
        assert done.returncode in (0, 7, 10), what
        if done.returncode == 0:
            assert stored == [UUID(json.loads(done.stdout)["id"])], f"MISLABEL {what}: the server holds {stored}"
            outcome = Outcome(value=done.stdout)
        elif done.returncode == 7:
            assert stored == [], f"MISLABEL {what}: exit 7 (store error: not applied), but it was: {stored}"
            outcome = Outcome(error=RuntimeError(done.stderr))
        else:
            outcome = Outcome(error=OutcomeUnknown("append"))
        verdict(what, outcome, len(stored), mode)


# --------------------------------------------------------------------------- group commit


@pytest.mark.parametrize("mode", [NO_LOOKUP, LOOKUP], ids=lambda m: m.name)
@pytest.mark.parametrize("store", [pytest.param("pg", marks=pytest.mark.postgres),
                                   pytest.param("redis", marks=pytest.mark.redis)])
def test_each_write_of_a_lost_group_commit_is_told_the_truth(store: str, mode: Mode,
                                                           request: pytest.FixtureRequest) -> None:
    """Five threads write at once with ``group_commit=True``: the first commit is held (by the test) until the
    other four have queued behind it; their shared commit then loses its reply. Each of the four must be told
    success or OutcomeUnknown — never StoreError — since their writes were applied."""
    followers = 4
    with harness(store, request) as h:
        sids = [h.seed.create(performer_id="p", user_id=h.marker).id for _ in range(followers + 1)]
        manager = h.open(retries=mode.retries, group_commit=True)
        group = manager._delivery.group
        assert group is not None
        store_ = manager.store
        real_append = store_.append
        holding, release = threading.Event(), threading.Event()

        def held_append(change: Any) -> None:  # the first commit waits until the others queued
            if not holding.is_set():
                holding.set()
                assert release.wait(30)
            real_append(change)

        store_.append = held_append
        outcomes: list[Outcome] = [Outcome() for _ in sids]

        def write(i: int) -> None:
            outcomes[i] = attempt(lambda: manager.touch(sids[i], performer_id=f"w{i}"))

        leader = threading.Thread(target=write, args=(0,))
        leader.start()
        assert holding.wait(30)
        threads = [threading.Thread(target=write, args=(i,)) for i in range(1, followers + 1)]
        for thread in threads:
            thread.start()
        for _ in range(3000):
            with group._lock:
                if len(group._queue) >= followers:
                    break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("the writers did not queue behind the held commit")
        mode.arm(h.proxy, PG_COMMIT if store == "pg" else R_APPEND_MANY)
        release.set()
        for thread in [leader, *threads]:
            thread.join(60)
            assert not thread.is_alive()
        assert h.proxy.wait_fired(5), f"the group's commit was never faulted: {outcomes}"
        for i, (sid, outcome) in enumerate(zip(sids, outcomes, strict=True)):
            what = f"group commit on {store}, {mode.name}, {'leader' if i == 0 else 'follower'} {i}"
            history = h.truth.history(sid)
            applied = repetitions(what, [e.event for e in history[1:]], ["touched"])
            if i == 0:
                assert outcome.kind == "success", f"{what}: {outcome.describe()}"
                assert applied == 1, f"{what}: applied {applied} times"
                continue
            verdict(what, outcome, applied, mode)
            if outcome.kind == "unknown":
                assert isinstance(outcome.error, OutcomeUnknown)
                check_named(what, outcome.error, h.truth, sessions=[sid],
                            new_records={e.record_id for e in history[1:]}, applied=bool(applied))
