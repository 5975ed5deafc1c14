"""`--idempotency-key KEY` on every write of the command line, and `idempotency_key` in `apply` lines: a write run
again with its key writes nothing, prints what the first run printed and says so on stderr; the key given to
another request exits 12, a write with the same key still under way 13, a malformed key 6.

Each test runs on the in-memory store (opened by every command of a test through a URL scheme of its own) and
on an SQLite file.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sessionflow import SessionManager
from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.entrypoints.cli import ExitCode, app
from sessionflow.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from sessionflow.stores import register_store

SCHEME = "keyedmemory"

Invoke = Callable[..., Result]


class SharedMemoryStore(InMemoryEventStore):
    """The in-memory store of one test, which every command of the test opens: a command closing its manager
    leaves the store to the next command."""

    def close(self) -> None:
        """Keep the store open for the test's next command."""


def replay_note(key: str, line: int | None = None) -> str:
    where = "" if line is None else f"line {line}: "
    return f"replayed: {where}idempotency key {key!r} was already used for this request; nothing was written\n"


@pytest.fixture(params=["memory", "sqlite"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test's store, shared by every command of the test: in memory, or an SQLite file (a copy of an empty
    database at the schema's head, ``sqlite_template``)."""
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "keys.db")
        yield f"sqlite:///{tmp_path / 'keys.db'}"
        return
    store = SharedMemoryStore()
    unregister = register_store(SCHEME, lambda url, **options: store)
    try:
        yield f"{SCHEME}://test"
    finally:
        unregister()


@pytest.fixture
def url(any_url: str) -> str:
    """The test's store (every store keeps idempotency keys)."""
    return any_url


@pytest.fixture
def run(any_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Invoke the CLI on the test's store as performer ``alice``, with a clean environment."""
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, ["--db", any_url, *args], input=stdin, env={"SESSIONFLOW_PERFORMER": "alice"})

    return invoke


def manager_on(url: str) -> SessionManager:
    return SessionManager.open(url)


def total_events(url: str) -> int:
    """Every event of every session in the store (deleted ones too)."""
    with manager_on(url) as manager:
        return sum(len(manager.history(sid)) for sid in manager.store.session_ids())


def new_session(url: str, *, files: tuple[str, ...] = (), started: bool = False) -> str:
    with manager_on(url) as manager:
        return str(manager.create(performer_id="alice", file_paths=list(files), start=started).id)


#: Each write of the command line: (its arguments given the session's id, whether the session is started first).
WRITES: dict[str, tuple[Callable[[str], list[str]], bool]] = {
    "create": (lambda sid: ["create", "--user", "u1", "-f", "a.py", "--ttl", "30m"], False),
    "start": (lambda sid: ["start", sid], False),
    "send": (lambda sid: ["send", sid, "start"], False),
    "record-file": (lambda sid: ["record-file", sid, "a.py", "--error", "boom"], True),
    "note": (lambda sid: ["note", sid, "--file", "a.py", "--status", "stored", "--memory-id", "m1"], True),
    "complete": (lambda sid: ["complete", sid], True),
    "fail": (lambda sid: ["fail", sid, "--reason", "upstream down"], False),
    "touch": (lambda sid: ["touch", sid], True),
    "delete": (lambda sid: ["delete", sid], False),
}


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("command", list(WRITES))
def test_a_write_run_again_with_its_key_writes_once_and_prints_the_same(
        command: str, json_output: bool, url: str, run: Invoke) -> None:
    arguments, started = WRITES[command]
    files = ("a.py",) if command in ("record-file", "note") else ()
    args = [*arguments(new_session(url, files=files, started=started)), *(["--json"] if json_output else [])]
    events = total_events(url)
    first = run(*args, "--idempotency-key", "retry-1")
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    assert total_events(url) == events + 1
    again = run(*args, "--idempotency-key", "retry-1")
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    assert again.stderr == replay_note("retry-1")
    assert total_events(url) == events + 1
    if json_output:
        assert json.loads(again.stdout)["version"] == json.loads(first.stdout)["version"]


def test_without_a_key_the_same_write_runs_again(any_url: str, run: Invoke) -> None:
    assert run("create").exit_code == run("create").exit_code == 0
    assert total_events(any_url) == 2


def test_the_replay_answers_as_the_first_run_left_the_session(url: str, run: Invoke) -> None:
    sid = new_session(url)
    first = run("start", sid, "--json", "--idempotency-key", "k")
    assert run("fail", sid, "--reason", "later").exit_code == 0
    again = run("start", sid, "--json", "--idempotency-key", "k")
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    assert json.loads(again.stdout)["status"] == "in_progress"
    with manager_on(url) as manager:
        assert manager.get(sid).status == "failed"


def test_the_key_for_another_request_exits_12_and_writes_nothing(url: str, run: Invoke) -> None:
    one, other = new_session(url), new_session(url)
    assert run("start", one, "--idempotency-key", "k").exit_code == 0
    events = total_events(url)
    refused = run("start", other, "--idempotency-key", "k")
    assert refused.exit_code == ExitCode.IDEMPOTENCY_KEY_REUSED == 12
    assert refused.stdout == ""
    assert refused.stderr == ("error: idempotency key 'k' was already used for a different request; "
                              "nothing was written\n")
    assert run("touch", one, "--idempotency-key", "k").exit_code == 12  # another command on the same session
    assert run("create", "--idempotency-key", "k").exit_code == 12
    assert total_events(url) == events
    as_json = run("start", other, "--idempotency-key", "k", "--json")
    assert as_json.exit_code == 12
    error = json.loads(as_json.stderr)
    assert (error["code"], error["exit_name"], error["idempotency_key"]) == (
        "idempotency_key_reused", "idempotency_key_reused", "k")


def test_other_options_make_another_request(url: str, run: Invoke) -> None:
    sid = new_session(url, started=True)
    assert run("fail", sid, "--reason", "a", "--idempotency-key", "k").exit_code == 0
    assert run("fail", sid, "--reason", "b", "--idempotency-key", "k").exit_code == 12


def test_a_key_belongs_to_its_performer(url: str, run: Invoke) -> None:
    one, other = new_session(url), new_session(url)
    assert run("start", one, "--idempotency-key", "k").exit_code == 0
    bob = run("start", other, "--idempotency-key", "k", "--performer", "bob")
    assert bob.exit_code == 0, bob.output
    assert bob.stderr == ""
    with manager_on(url) as manager:
        assert manager.history(other)[-1].performer_id == "bob"


def test_a_write_under_way_with_the_key_exits_13(any_url: str, run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = new_session(any_url)

    def in_flight(self: SessionManager, session_id: Any, **options: Any) -> Any:
        raise IdempotencyKeyInFlight(options["idempotency_key"].key)

    monkeypatch.setattr(SessionManager, "start", in_flight)
    result = run("start", sid, "--idempotency-key", "k")
    assert result.exit_code == ExitCode.IDEMPOTENCY_KEY_IN_FLIGHT == 13
    assert result.stdout == ""
    assert result.stderr == "error: a write with idempotency key 'k' is still in flight; nothing was written\n"


@pytest.mark.parametrize("key", ["", "k" * 256, "clé", "tab\there"], ids=["empty", "too long", "not ascii", "tab"])
def test_a_malformed_key_is_invalid_input(key: str, any_url: str, run: Invoke) -> None:
    sid = new_session(any_url)
    events = total_events(any_url)
    for args in (["start", sid], ["create"]):
        result = run(*args, "--idempotency-key", key)
        assert result.exit_code == ExitCode.INVALID_INPUT == 6, result.output
        assert result.stderr.startswith("error: ")
        assert "idempotency_key" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert total_events(any_url) == events


def test_a_session_prints_one_json_line_however_it_was_built(tmp_path: Path) -> None:
    """What a replayed write prints is the session folded from its history; what the first run printed is the
    session its write returned, which a store may have built with its fields in another order."""
    from sessionflow.domain.replay import replay
    from sessionflow.entrypoints.cli.text import session_json

    with SessionManager.open(f"sqlite:///{tmp_path / 'order.db'}") as manager:
        sid = manager.create(performer_id="alice", file_paths=["a.py"]).id
        manager.start(sid, performer_id="alice")
        folded = replay(manager.history(sid))
        read = manager.get(sid)
    shuffled = folded.model_copy()
    progress = folded.progress.model_copy()
    object.__setattr__(progress, "__dict__", dict(reversed(list(folded.progress.__dict__.items()))))
    object.__setattr__(shuffled, "__dict__", dict(reversed(list({**folded.__dict__, "progress": progress}.items()))))
    assert read == folded == shuffled
    assert session_json(read) == session_json(folded) == session_json(shuffled) == folded.model_dump_json()
    assert list(json.loads(session_json(shuffled))) == list(type(folded).model_fields)


def test_the_errors_map_to_their_exit_codes() -> None:
    from sessionflow.entrypoints.cli import exit_code_for

    assert exit_code_for(IdempotencyKeyReused("k")) == ExitCode.IDEMPOTENCY_KEY_REUSED
    assert exit_code_for(IdempotencyKeyInFlight("k")) == ExitCode.IDEMPOTENCY_KEY_IN_FLIGHT


# ---------------------------------------------------------------------- apply


def lines(*items: dict[str, Any]) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


def answers(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("batch", [[], ["--batch-size", "10"]], ids=["one by one", "batched"])
def test_apply_lines_run_again_with_their_keys_write_nothing_twice(batch: list[str], url: str, run: Invoke) -> None:
    sid = new_session(url, files=("a.py",))
    first_input = lines({"op": "create", "user": "u1", "idempotency_key": "c1"},
                        {"op": "create", "user": "u2", "idempotency_key": "c2"},
                        {"op": "start", "id": sid, "idempotency_key": "s1"},
                        {"op": "record-file", "id": sid, "path": "a.py", "idempotency_key": "r1"},
                        {"op": "note", "id": sid, "file": "a.py", "status": "stored", "idempotency_key": "n1"},
                        {"op": "update", "id": sid, "metadata": {"k": 1}, "idempotency_key": "u1"},
                        {"op": "touch", "id": sid, "idempotency_key": "t1"},
                        {"op": "send", "id": sid, "event": "complete", "idempotency_key": "e1"})
    events = total_events(url)
    first = run("apply", *batch, stdin=first_input)
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    assert total_events(url) == events + 8
    again = run("apply", *batch, stdin=first_input)
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    assert again.stderr == "".join(replay_note(key, number) for number, key in enumerate(
        ["c1", "c2", "s1", "r1", "n1", "u1", "t1", "e1"], start=1))
    assert total_events(url) == events + 8
    assert answers(again)[-1]["status"] == "completed"


def test_apply_keyed_lines_share_batches_and_are_answered_run_again(url: str, run: Invoke,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    create_many = SessionManager.create_many

    def spy(self: SessionManager, items: Any, **options: Any) -> Any:
        items = list(items)
        batches.append(len(items))
        return create_many(self, items, **options)

    monkeypatch.setattr(SessionManager, "create_many", spy)
    text = lines({"op": "create", "idempotency_key": "a"}, {"op": "create"}, {"op": "create", "idempotency_key": "k"},
                 {"op": "create"}, {"op": "create", "idempotency_key": "z"})
    first = run("apply", "--batch-size", "10", stdin=text)
    assert first.exit_code == 0, first.output
    assert len(answers(first)) == 5
    assert batches == [5]  # keyed and unkeyed lines in one batch
    assert total_events(url) == 5
    again = run("apply", "--batch-size", "10", stdin=text)
    assert again.exit_code == 0, again.output
    assert [a["id"] for a in answers(again)][::2] == [a["id"] for a in answers(first)][::2]  # the keyed lines
    assert again.stderr == "".join(replay_note(key, number) for number, key in ((1, "a"), (3, "k"), (5, "z")))
    assert total_events(url) == 7  # only the two lines without a key were written again


def test_apply_a_key_reused_for_another_line_is_that_lines_error(url: str, run: Invoke) -> None:
    one, other = new_session(url), new_session(url)
    result = run("apply", stdin=lines({"op": "start", "id": one, "idempotency_key": "k"},
                                      {"op": "start", "id": other, "idempotency_key": "k"},
                                      {"op": "touch", "id": one}))
    assert result.exit_code == ExitCode.IDEMPOTENCY_KEY_REUSED
    started, refused, touched = answers(result)
    assert started["status"] == "in_progress"
    assert (refused["exit_code"], refused["exit_name"], refused["line"]) == (12, "idempotency_key_reused", 2)
    assert touched["version"] == 3
    with manager_on(url) as manager:
        assert manager.get(other).status == "pending"


def test_apply_a_malformed_key(any_url: str, run: Invoke) -> None:
    sid = new_session(any_url)
    result = run("apply", stdin=lines({"op": "start", "id": sid, "idempotency_key": 7},
                                      {"op": "start", "id": sid, "idempotency_key": ""},
                                      {"op": "create", "idempotency_key": "x" * 256}))
    wrong_type, empty, too_long = answers(result)
    assert result.exit_code == ExitCode.USAGE
    assert wrong_type["exit_name"] == "usage"
    assert "'idempotency_key' must be a string" in wrong_type["message"]
    assert (empty["exit_name"], too_long["exit_name"]) == ("invalid_input", "invalid_input")
    assert total_events(any_url) == 1


def test_apply_lists_the_key_among_what_every_op_takes(any_url: str, run: Invoke) -> None:
    result = run("apply", stdin=lines({"op": "touch", "id": str(uuid.uuid4()), "colour": "red"}))
    assert "idempotency_key" in answers(result)[0]["message"]
