"""``Idempotency-Key`` on every write route: a replay answers the first status and body (and
``Idempotent-Replayed: true``) and writes nothing; the key with another request is 422, while its first request is
under way 409; keys are scoped to the principal; a malformed key is a 400 naming the header; the OpenAPI document
shows all of it.

Every case runs twice: without tokens (the performer named in the body) and with a user token (alice), whose
deletes are retried through the ownership check that reads a deleted session's history."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.testing import ManualClock
from tests.http.conftest import MakeClient

TOKENS: dict[str, Any] = {
    "tok-alice": "alice",
    "tok-bob": {"user": "bob"},
    "tok-ops": {"service": "ops", "scopes": ["sessions:read", "sessions:write", "sessions:admin"]},
}
ALICE = {"authorization": "Bearer tok-alice"}
BOB = {"authorization": "Bearer tok-bob"}
OPS = {"authorization": "Bearer tok-ops"}
START = "/session_manager/sessions.start"
END = "/session_manager/sessions.end"
ME = {"performer_id": "alice"}


@dataclass(frozen=True)
class Write:
    """One write route: its request on a session (``None`` for a creating route), the state the session must be
    in, its success status, and what makes another request of the same route (``other``: a body; ``None``: the
    same request on another session)."""

    name: str
    method: str
    path: Callable[[str], str]
    body: Callable[[str], dict[str, Any] | None]
    status: int = 200
    state: str | None = "pending"
    params: dict[str, str] = field(default_factory=dict)
    other: Callable[[str], dict[str, Any]] | None = None

    def send(self, client: TestClient, sid: str, key: str | None, headers: dict[str, str],
             body: dict[str, Any] | None = None) -> httpx.Response:
        extra = {} if key is None else {"Idempotency-Key": key}
        json = self.body(sid) if body is None else body
        return client.request(self.method, self.path(sid), json=json, params=self.params,
                              headers={**headers, **extra})


WRITES = [
    Write("create", "POST", lambda _: "/sessions", lambda _: {**ME, "user_id": "alice", "metadata": {"n": 1}},
          status=201, state=None, other=lambda _: {**ME, "user_id": "alice", "metadata": {"n": 2}}),
    Write("update", "PATCH", lambda s: f"/sessions/{s}", lambda _: {**ME, "metadata": {"n": 1}},
          other=lambda _: {**ME, "metadata": {"n": 2}}),
    Write("delete", "DELETE", lambda s: f"/sessions/{s}", lambda _: None, params=ME),
    Write("start", "POST", lambda s: f"/sessions/{s}/start", lambda _: ME),
    Write("complete", "POST", lambda s: f"/sessions/{s}/complete", lambda _: ME, state="ready"),
    Write("touch", "POST", lambda s: f"/sessions/{s}/touch", lambda _: ME),
    Write("fail", "POST", lambda s: f"/sessions/{s}/fail", lambda _: {**ME, "reason": "disk full"},
          state="in_progress", other=lambda _: {**ME, "reason": "quota"}),
    Write("event", "POST", lambda s: f"/sessions/{s}/events/start", lambda _: ME),
    Write("files", "POST", lambda s: f"/sessions/{s}/files", lambda _: {**ME, "path": "a.py"}, state="in_progress",
          other=lambda _: {**ME, "path": "a.py", "error": "parse error"}),
    Write("notes", "POST", lambda s: f"/sessions/{s}/notes",
          lambda _: {**ME, "file_path": "a.py", "status": "stored", "memory_id": "m-1"}, state="in_progress",
          other=lambda _: {**ME, "file_path": "a.py", "status": "stored", "memory_id": "m-2"}),
    Write("seed_start", "POST", lambda _: START, lambda _: {**ME, "user_id": "alice"}, state=None,
          other=lambda _: {**ME, "user_id": "alice", "session_notes": "another"}),
    Write("seed_end", "POST", lambda _: END, lambda s: {**ME, "user_id": "alice", "session_id": s},
          state="ready"),
]
IDS = [w.name for w in WRITES]


@pytest.fixture(params=["anonymous", "alice"])
def caller(request: pytest.FixtureRequest) -> dict[str, str]:
    """The headers of the caller: none (an app without tokens), or alice's token."""
    return {} if request.param == "anonymous" else ALICE


@pytest.fixture
def served(manager: SessionManager, make_client: MakeClient, caller: dict[str, str]) -> TestClient:
    return make_client(manager, tokens=TOKENS if caller else None)


def prepared(manager: SessionManager, state: str | None) -> str:
    """A session of alice with one file, a.py: ``pending``, ``in_progress``, or ``ready`` (in progress, a.py
    recorded); an empty id (``None``) for a creating route."""
    if state is None:
        return ""
    session = manager.create(performer_id="alice", user_id="alice", file_paths=["a.py"])
    if state in ("in_progress", "ready"):
        manager.start(session.id, performer_id="alice")
    if state == "ready":
        manager.record_file(session.id, "a.py", performer_id="alice")
    return str(session.id)


def written(manager: SessionManager) -> int:
    """The position of the store's last event: it moves on with every write."""
    return manager.last_position()


@pytest.mark.parametrize("write", WRITES, ids=IDS)
def test_a_replay_answers_the_first_response_and_writes_nothing(write: Write, served: TestClient,
                                                                manager: SessionManager,
                                                                caller: dict[str, str]) -> None:
    sid = prepared(manager, write.state)
    first = write.send(served, sid, "key-1", caller)
    assert first.status_code == write.status, first.text
    assert "idempotent-replayed" not in first.headers
    before = written(manager)
    again = write.send(served, sid, "key-1", caller)
    assert again.status_code == write.status, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    for header in ("etag", "location"):
        assert again.headers.get(header) == first.headers.get(header)
    assert written(manager) == before


@pytest.mark.parametrize("write", WRITES, ids=IDS)
def test_the_key_with_another_request_is_422_and_writes_nothing(write: Write, served: TestClient,
                                                                 manager: SessionManager,
                                                                 caller: dict[str, str]) -> None:
    sid = prepared(manager, write.state)
    assert write.send(served, sid, "key-1", caller).status_code == write.status
    before = written(manager)
    if write.other is not None:
        refused = write.send(served, sid, "key-1", caller, body=write.other(sid))
    else:
        other = prepared(manager, write.state)
        before = written(manager)
        refused = write.send(served, other, "key-1", caller)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert (body["error"], body["code"], body["idempotency_key"]) == (
        "IdempotencyKeyReused", "idempotency_key_reused", "key-1")
    assert "idempotent-replayed" not in refused.headers
    assert written(manager) == before


@pytest.mark.parametrize("write", WRITES, ids=IDS)
@pytest.mark.parametrize(("key", "problem"), [
    ("", "must be 1 to 255 characters long"),
    ("k" * 256, "must be 1 to 255 characters long"),
    ("caf\xe9", "must be printable ASCII (space to '~')"),
    ("a\x7fb", "must be printable ASCII (space to '~')"),
], ids=["empty", "too-long", "latin-1", "control"])
def test_a_malformed_key_is_400_naming_the_header(write: Write, key: str, problem: str, served: TestClient,
                                                  manager: SessionManager, caller: dict[str, str]) -> None:
    sid = prepared(manager, write.state)
    before = written(manager)
    headers = {k: v.encode("latin-1") for k, v in {**caller, "Idempotency-Key": key}.items()}
    json = write.body(sid)
    refused = served.request(write.method, write.path(sid), json=json, params=write.params, headers=headers)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert (body["code"], body["field"], body["problem"]) == ("invalid_input", "Idempotency-Key", problem)
    assert written(manager) == before


def test_the_longest_key_and_every_printable_character_are_taken(served: TestClient, caller: dict[str, str]) -> None:
    for key in ("k" * 255, "".join(chr(c) for c in range(0x21, 0x7F)), "with inner spaces"):
        first = WRITES[0].send(served, "", key, caller)
        again = WRITES[0].send(served, "", key, caller)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.headers["idempotent-replayed"] == "true"


def test_a_replay_answers_the_session_as_the_first_write_left_it(served: TestClient, manager: SessionManager,
                                                                 caller: dict[str, str]) -> None:
    sid = prepared(manager, "in_progress")
    first = served.post(f"/sessions/{sid}/files", json={**ME, "path": "a.py"},
                        headers={**caller, "Idempotency-Key": "file-a"})
    served.post(f"/sessions/{sid}/complete", json=ME, headers=caller)
    again = served.post(f"/sessions/{sid}/files", json={**ME, "path": "a.py"},
                        headers={**caller, "Idempotency-Key": "file-a"})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.json()["status"] == "in_progress"
    assert again.headers["etag"] == first.headers["etag"] == '"3"'
    assert served.get(f"/sessions/{sid}", headers=caller).json()["status"] == "completed"


def test_if_match_is_part_of_the_request(served: TestClient, manager: SessionManager,
                                         caller: dict[str, str]) -> None:
    sid = prepared(manager, "pending")
    key = {**caller, "Idempotency-Key": "touch-1"}
    assert served.post(f"/sessions/{sid}/touch", json=ME, headers={**key, "If-Match": '"1"'}).status_code == 200
    assert served.post(f"/sessions/{sid}/touch", json=ME, headers={**key, "If-Match": '"1"'}
                       ).headers["idempotent-replayed"] == "true"
    assert served.post(f"/sessions/{sid}/touch", json=ME, headers=key).status_code == 422


def test_a_refused_write_keeps_no_key(served: TestClient, manager: SessionManager, caller: dict[str, str]) -> None:
    sid = prepared(manager, "pending")
    key = {**caller, "Idempotency-Key": "complete-1"}
    refused = served.post(f"/sessions/{sid}/complete", json=ME, headers=key)
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_transition")
    served.post(f"/sessions/{sid}/start", json=ME, headers=caller)
    served.post(f"/sessions/{sid}/files", json={**ME, "path": "a.py"}, headers=caller)
    done = served.post(f"/sessions/{sid}/complete", json=ME, headers=key)
    assert done.status_code == 200
    assert "idempotent-replayed" not in done.headers
    assert done.json()["status"] == "completed"


def test_a_key_is_kept_for_the_window_only(served: TestClient, manager: SessionManager, clock: ManualClock,
                                           caller: dict[str, str]) -> None:
    first = WRITES[0].send(served, "", "create-1", caller)
    clock.advance(timedelta(hours=23, minutes=59))
    assert WRITES[0].send(served, "", "create-1", caller).json()["id"] == first.json()["id"]
    clock.advance(timedelta(minutes=2))
    later = WRITES[0].send(served, "", "create-1", caller)
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert later.json()["id"] != first.json()["id"]
    assert manager.count() == 2


# --------------------------------------------------------------------------- in flight


class HeldStore:
    """A store whose next write, once :attr:`armed`, waits in :meth:`append` until :attr:`release` is set (it sets
    :attr:`holding` when it starts waiting): that write is under way, its key in flight. Everything else is the
    wrapped store's."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self._store = store
        self.armed = False
        self.holding = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append(self, change: Any) -> None:
        if self.armed and not self.holding.is_set():
            self.holding.set()
            assert self.release.wait(30)
        self._store.append(change)


@pytest.fixture
def held(clock: ManualClock, make_client: MakeClient, caller: dict[str, str]) -> Iterator[
        tuple[HeldStore, SessionManager, TestClient]]:
    store = HeldStore(InMemoryEventStore())
    with SessionManager(store, clock=clock) as mgr:  # type: ignore[arg-type]
        yield store, mgr, make_client(mgr, tokens=TOKENS if caller else None)


@pytest.mark.parametrize("write", WRITES, ids=IDS)
def test_the_key_of_a_write_in_flight_is_409(write: Write, held: tuple[HeldStore, SessionManager, TestClient],
                                             caller: dict[str, str]) -> None:
    store, manager, served = held
    sid = prepared(manager, write.state)
    store.armed = True
    answers: list[httpx.Response] = []
    first = threading.Thread(target=lambda: answers.append(write.send(served, sid, "key-1", caller)))
    first.start()
    try:
        assert store.holding.wait(30)
        before = written(manager)
        busy = write.send(served, sid, "key-1", caller)
        assert busy.status_code == 409, busy.text
        assert (busy.json()["code"], busy.json()["idempotency_key"]) == ("idempotency_key_in_flight", "key-1")
        assert written(manager) == before
        elsewhere = served.get("/sessions", headers=caller)  # the service goes on meanwhile
        assert elsewhere.status_code == 200
    finally:
        store.release.set()
        first.join(30)
    assert answers[0].status_code == write.status, answers[0].text
    after = write.send(served, sid, "key-1", caller)
    assert after.status_code == write.status
    assert after.headers["idempotent-replayed"] == "true"
    assert after.json() == answers[0].json()


# --------------------------------------------------------------------------- principals


@pytest.fixture
def secured(manager: SessionManager, make_client: MakeClient) -> TestClient:
    return make_client(manager, tokens=TOKENS)


def test_two_principals_with_one_key_are_independent(secured: TestClient, manager: SessionManager) -> None:
    key = {"Idempotency-Key": "shared"}
    alices = secured.post("/sessions", json={"metadata": {"n": 1}}, headers={**ALICE, **key})
    bobs = secured.post("/sessions", json={"metadata": {"n": 1}}, headers={**BOB, **key})
    ops = secured.post("/sessions", json={"user_id": "alice", "metadata": {"n": 1}}, headers={**OPS, **key})
    assert [r.status_code for r in (alices, bobs, ops)] == [201, 201, 201]
    assert not any("idempotent-replayed" in r.headers for r in (alices, bobs, ops))
    assert len({alices.json()["id"], bobs.json()["id"], ops.json()["id"]}) == 3
    assert (bobs.json()["user_id"], ops.json()["user_id"]) == ("bob", "alice")
    assert manager.history(ops.json()["id"])[0].performer_id == "ops"
    # Another request with the key: each principal's own key only (no 422 for bob, who never used it that way).
    other = secured.post("/sessions", json={"metadata": {"n": 2}}, headers={**BOB, "Idempotency-Key": "alices"})
    secured.post("/sessions", json={"metadata": {"n": 1}}, headers={**ALICE, "Idempotency-Key": "alices"})
    assert other.status_code == 201
    assert manager.count() == 5
    assert secured.post("/sessions", json={"metadata": {"n": 2}}, headers={**ALICE, "Idempotency-Key": "alices"}
                        ).status_code == 422


def test_another_principal_never_sees_a_stored_answer(secured: TestClient, manager: SessionManager) -> None:
    sid = prepared(manager, "in_progress")
    key = {"Idempotency-Key": "note-1"}
    note = {"file_path": "a.py", "status": "stored", "memory_id": "m-1"}
    assert secured.post(f"/sessions/{sid}/notes", json=note, headers={**ALICE, **key}).status_code == 200
    # bob: alice's session is not his (404), whatever key he sends; nothing of alice's answer shows.
    bobs = secured.post(f"/sessions/{sid}/notes", json=note, headers={**BOB, **key})
    assert bobs.status_code == 404
    assert "idempotent-replayed" not in bobs.headers
    assert "m-1" not in bobs.text
    # the ops service may write to it: its request with the same key is its own write, not alice's answer.
    before = written(manager)
    ops = secured.post(f"/sessions/{sid}/notes", json=note, headers={**OPS, **key})
    assert ops.status_code == 200
    assert "idempotent-replayed" not in ops.headers
    assert written(manager) == before + 1
    assert [n["memory_id"] for n in ops.json()["notes"]] == ["m-1", "m-1"]
    replayed = secured.post(f"/sessions/{sid}/notes", json=note, headers={**ALICE, **key})
    assert replayed.headers["idempotent-replayed"] == "true"
    assert len(replayed.json()["notes"]) == 1


def test_without_tokens_keys_are_scoped_to_the_performer(client: TestClient, manager: SessionManager) -> None:
    key = {"Idempotency-Key": "same"}
    one = client.post("/sessions", json={"performer_id": "p1", "user_id": "u"}, headers=key)
    two = client.post("/sessions", json={"performer_id": "p2", "user_id": "u"}, headers=key)
    again = client.post("/sessions", json={"performer_id": "p1", "user_id": "u"}, headers=key)
    assert (one.status_code, two.status_code, again.status_code) == (201, 201, 201)
    assert one.json()["id"] != two.json()["id"]
    assert again.json()["id"] == one.json()["id"]
    assert manager.count() == 2


def test_a_deleted_sessions_owner_check_still_applies_to_a_keyed_retry(secured: TestClient,
                                                                      manager: SessionManager) -> None:
    sid = prepared(manager, "pending")
    key = {"Idempotency-Key": "delete-1"}
    assert secured.delete(f"/sessions/{sid}", headers={**ALICE, **key}).status_code == 200
    assert secured.delete(f"/sessions/{sid}", headers={**ALICE, **key}).headers["idempotent-replayed"] == "true"
    assert secured.delete(f"/sessions/{sid}", headers={**BOB, **key}).status_code == 404
    assert secured.delete(f"/sessions/{sid}", headers={**ALICE, "Idempotency-Key": "delete-2"}).status_code == 404


# --------------------------------------------------------------------------- the OpenAPI document


def test_the_document_shows_the_key_on_every_write(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    writes = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = {p["name"]: p for p in operation.get("parameters", [])}
            responses = operation["responses"]
            if method == "get":
                assert "Idempotency-Key" not in names, path
                continue
            writes += 1
            parameter = names["Idempotency-Key"]
            assert parameter["in"] == "header"
            assert not parameter.get("required", False)
            assert "Idempotent-Replayed" in parameter["description"]
            assert "idempotency_key_reused" in responses["422"]["description"], path
            assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
            assert "idempotency_key_in_flight" in responses["409"]["description"], path
            success = next(code for code in responses if code.startswith("2"))
            assert "Idempotent-Replayed" in responses[success]["headers"], path
    assert writes == len(WRITES)
