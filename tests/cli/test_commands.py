"""Each ``sessionflow`` command through typer's CliRunner: results, ``--json`` shapes, one-line errors and
their exit codes."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import sqlite3
import sys
import tomllib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sessionflow import Session, SessionManager, SessionStatus
from sessionflow.entrypoints import cli
from sessionflow.entrypoints.cli import EXIT_CODES, Cli, ExitCode, app, exit_code_for, parse_duration
from sessionflow.errors import (
    ActiveSessionExists,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    SessionNotFound,
    SessionUserMismatch,
    StoreError,
)
from sessionflow.testing import ManualClock

ROOT = Path(__file__).resolve().parents[2]
SESSION_FIELDS = set(Session.model_fields)
EVENT_FIELDS = {"record_id", "session_id", "version", "event", "source_state", "target_state", "performer_id",
                "timestamp", "payload", "position", "trace_context"}

Invoke = Callable[..., Result]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def run(db: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Invoke the CLI on this test's database as performer ``alice``, with a clean environment."""
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None, database: bool = True) -> Result:
        argv = ["--db", db, *args] if database else list(args)
        return runner.invoke(app, argv, env={"SESSIONFLOW_PERFORMER": "alice", **(env or {})})

    return invoke


def doc(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def lines(result: Result) -> list[Any]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def create(run: Invoke, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = doc(run("create", "--json", *args))
    return data


def assert_one_line_error(result: Result, code: ExitCode, *, json_mode: bool = False) -> dict[str, Any]:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    if json_mode:
        data: dict[str, Any] = json.loads(result.stderr)
        assert data["exit_code"] == code
        assert {"error", "code", "message"} <= set(data)
        return data
    assert result.stderr.startswith("error: ")
    return {}


# ---------------------------------------------------------------------- writes and reads


def test_create_prints_the_session_as_one_json_document(run: Invoke) -> None:
    data = create(run, "--user", "u1", "--workspace", "ws", "--module", "auth", "-f", "a.py", "--file", "b.py",
                  "--metadata", '{"ticket": "T-1", "n": [1, 2]}', "--ttl", "15m")
    assert set(data) == SESSION_FIELDS
    assert data["status"] == "pending"
    assert data["version"] == 1
    assert (data["user_id"], data["workspace_id"], data["module_name"]) == ("u1", "ws", "auth")
    assert data["file_paths"] == ["a.py", "b.py"]
    assert data["metadata"] == {"ticket": "T-1", "n": [1, 2]}
    assert data["ttl_seconds"] == 900
    assert data["expires_at"].endswith("Z")


def test_create_without_json_prints_one_readable_line(run: Invoke) -> None:
    result = run("create", "--user", "u1")
    assert result.exit_code == 0
    assert result.stdout.startswith("created session ")
    assert "pending (version 1" in result.stdout


def test_a_full_lifecycle_with_every_write_command(run: Invoke) -> None:
    sid = create(run, "--user", "u1", "-f", "a.py", "-f", "b.py")["id"]
    assert doc(run("start", sid, "--json"))["status"] == "in_progress"
    assert doc(run("record-file", sid, "a.py", "--json"))["progress"]["processed_files"] == 1
    recorded = doc(run("record-file", sid, "b.py", "--error", "boom", "--json"))
    assert recorded["file_results"][1] == {"path": "b.py", "error": "boom", "recorded_at": recorded["updated_at"]}
    noted = doc(run("note", sid, "--file", "a.py", "--status", "stored", "--memory-id", "m1", "--json"))
    assert noted["notes"][0]["memory_id"] == "m1"
    touched = doc(run("touch", sid, "--json"))
    assert touched["version"] == 6
    done = doc(run("complete", sid, "--json", "--expect-version", "6"))
    assert (done["status"], done["closed_by"], done["version"]) == ("completed", "alice", 7)
    assert doc(run("show", sid, "--json")) == done

    events = lines(run("history", sid, "--json"))
    assert all(set(e) == EVENT_FIELDS for e in events)
    assert all(e["trace_context"] is None for e in events)  # the CLI process traces nothing here
    assert [e["event"] for e in events] == ["created", "started", "file_recorded", "file_recorded", "note_added",
                                           "touched", "completed"]
    assert [e["version"] for e in events] == list(range(1, 8))
    assert {e["performer_id"] for e in events} == {"alice"}


def test_fail_and_delete(run: Invoke) -> None:
    sid = create(run)["id"]
    failed = doc(run("fail", sid, "--reason", "upstream down", "--json"))
    assert (failed["status"], failed["failure_reason"]) == ("failed", "upstream down")
    other = create(run)["id"]
    deleted = doc(run("delete", other, "--json"))
    assert deleted["deleted_at"] is not None
    assert_one_line_error(run("show", other), ExitCode.NOT_FOUND)
    assert [e["event"] for e in lines(run("history", other, "--json"))] == ["created", "deleted"]


def test_send_takes_its_arguments_as_the_events_own(run: Invoke) -> None:
    """An --arg named like one of the write's own options (the performer, the idempotency key) is an event
    argument, checked as one: never the write's option."""
    sid = create(run)["id"]
    refused = assert_one_line_error(run("send", sid, "start", "--arg", 'performer_id="mallory"', "--json"),
                                    ExitCode.INVALID_INPUT, json_mode=True)
    assert "'performer_id' cannot be an event argument" in refused["message"]
    started = doc(run("send", sid, "start", "--arg", 'idempotency_key="k"', "--json"))
    assert (started["status"], started["version"]) == ("in_progress", 2)
    assert lines(run("history", sid, "--json"))[-1]["performer_id"] == "alice"


def test_performer_comes_from_the_option_then_the_environment(run: Invoke) -> None:
    sid = create(run)["id"]
    assert lines(run("history", sid, "--json"))[0]["performer_id"] == "alice"
    started = doc(run("start", sid, "--json", "--performer", "bob"))
    assert started["version"] == 2
    assert lines(run("history", sid, "--json"))[1]["performer_id"] == "bob"
    result = run("--performer", "carol", "touch", sid, "--json")
    assert result.exit_code == 0
    assert lines(run("history", sid, "--json"))[2]["performer_id"] == "carol"


def test_global_and_command_options_are_equivalent(run: Invoke, db: str) -> None:
    sid = create(run)["id"]
    before = run("show", sid, "--json").stdout
    assert run("--json", "--db", db, "show", sid, database=False).stdout == before
    assert run("--db", db, "show", sid, "--json", database=False).stdout == before


def test_the_database_comes_from_the_environment(run: Invoke, db: str) -> None:
    sid = create(run)["id"]
    result = run("show", sid, "--json", database=False, env={"SESSIONFLOW_DATABASE_URL": db})
    assert doc(result)["id"] == sid


def test_show_prints_a_readable_view(run: Invoke) -> None:
    sid = create(run, "--user", "u1", "-f", "a.py", "--metadata", '{"k": "v"}')["id"]
    run("start", sid)
    run("record-file", sid, "a.py", "--error", "bad input")
    run("note", sid, "-f", "a.py", "--status", "stored")
    out = run("show", sid).stdout
    for text in (sid, "in_progress", "u1", "1/1 accounted", "bad input", "stored", '{"k":"v"}'):
        assert text in out


def test_a_closed_session_shows_no_deadline(run: Invoke) -> None:
    sid = create(run, "--user", "u1")["id"]
    live = run("show", sid).stdout
    deadline = doc(run("show", sid, "--json"))["expires_at"]
    assert deadline in live
    assert ", expires " in run("start", sid).stdout
    done = run("complete", sid)
    assert done.exit_code == 0
    assert "completed (version 3)" in done.stdout  # no deadline left to announce
    assert deadline not in run("show", sid).stdout
    assert deadline not in run("list").stdout
    assert doc(run("show", sid, "--json"))["expires_at"] == deadline  # the record keeps it


def test_list_streams_json_lines_and_filters(run: Invoke) -> None:
    ids = [create(run, "--user", f"u{i % 2}")["id"] for i in range(5)]
    run("start", ids[0])
    everything = lines(run("list", "--json"))
    assert [s["id"] for s in everything] == ids
    assert all(set(s) == SESSION_FIELDS for s in everything)
    assert [s["id"] for s in lines(run("list", "--json", "--status", "in_progress"))] == [ids[0]]
    assert [s["id"] for s in lines(run("list", "--json", "-s", "pending", "-s", "in_progress", "--user", "u1"))] \
        == [ids[1], ids[3]]
    assert [s["id"] for s in lines(run("list", "--json", "--limit", "2", "--offset", "1"))] == ids[1:3]
    assert [s["id"] for s in lines(run("list", "--json", "--limit", "2", "--all"))] == ids
    table = run("list").stdout
    assert "5 sessions" in table
    assert ids[0] in table


def test_history_prints_a_table_with_one_row_per_event(run: Invoke) -> None:
    sid = create(run, "-f", "a.py")["id"]
    run("start", sid)
    out = run("history", sid).stdout
    assert "created" in out
    assert "started" in out
    assert "pending → in_progress" in out


# ---------------------------------------------------------------------- errors and exit codes


def test_exit_codes_of_the_library_errors(run: Invoke, db: str, tmp_path: Path) -> None:
    sid = create(run, "--user", "u1", "-f", "a.py")["id"]
    run("start", sid)
    assert_one_line_error(run("show", "00000000-0000-0000-0000-000000000000"), ExitCode.NOT_FOUND)
    assert_one_line_error(run("complete", sid), ExitCode.INVALID_TRANSITION)
    assert_one_line_error(run("touch", sid, "--expect-version", "1"), ExitCode.CONFLICT)
    assert_one_line_error(run("show", "not-a-uuid"), ExitCode.INVALID_INPUT)
    assert_one_line_error(run("record-file", sid, "zzz.py"), ExitCode.INVALID_INPUT)
    assert_one_line_error(run("create", "--ttl", "0.5s"), ExitCode.INVALID_INPUT)
    unreachable = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}"
    assert_one_line_error(run("show", sid, "--db", unreachable, database=False), ExitCode.STORE)
    assert_one_line_error(run("show", sid, "--db", "nosuchdriver://x", database=False), ExitCode.INVALID_INPUT)


def test_policy_errors_from_settings_in_the_environment(run: Invoke) -> None:
    policies = {"SESSIONFLOW_POLICIES__ENFORCE_OWNER": "true", "SESSIONFLOW_POLICIES__SINGLE_ACTIVE_PER_USER": "true"}
    first = create(run, "--user", "u1")["id"]
    second = create(run, "--user", "u1")["id"]
    assert run("start", first, "--performer", "u1", env=policies).exit_code == 0
    error = assert_one_line_error(run("start", second, "--performer", "u1", "--json", env=policies),
                                  ExitCode.CONFLICT, json_mode=True)
    assert error["code"] == "active_session_exists"
    assert error["active_session_id"] == first
    error = assert_one_line_error(run("touch", first, "--performer", "mallory", "--json", env=policies),
                                  ExitCode.FORBIDDEN, json_mode=True)
    assert error["owner"] == "u1"
    bad = {"SESSIONFLOW_SESSION__TIMEOUT_SECONDS": "5"}
    error = assert_one_line_error(run("list", "--json", env=bad), ExitCode.INVALID_INPUT, json_mode=True)
    assert "SESSIONFLOW_SESSION__TIMEOUT_SECONDS" in error["message"]


def test_json_errors_carry_the_library_context(run: Invoke) -> None:
    sid = create(run, "-f", "a.py")["id"]
    run("start", sid)
    error = assert_one_line_error(run("complete", sid, "--json"), ExitCode.INVALID_TRANSITION, json_mode=True)
    assert error["error"] == "InvalidTransition"
    assert error["code"] == "invalid_transition"
    assert (error["session_id"], error["state"], error["event"]) == (sid, "in_progress", "complete")
    assert "all_files_accounted" in error["reason"]
    error = assert_one_line_error(run("touch", sid, "--json", "--expect-version", "1"), ExitCode.CONFLICT,
                                  json_mode=True)
    assert (error["expected_version"], error["actual_version"]) == (1, 2)


def test_usage_errors_exit_2(run: Invoke) -> None:
    assert run("show").exit_code == ExitCode.USAGE
    assert run("show", "x", "--no-such-option").exit_code == ExitCode.USAGE
    assert run("create", "--ttl", "soon").exit_code == ExitCode.USAGE
    assert run("create", "--metadata", "[1]").exit_code == ExitCode.USAGE
    assert run("create", "--metadata", "{").exit_code == ExitCode.USAGE
    assert run("list", "--status", "sleeping").exit_code == ExitCode.USAGE
    assert run("no-such-command").exit_code == ExitCode.USAGE


def test_unexpected_errors_and_interrupts_are_one_line(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Cli, session_id: str) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(Cli, "show", boom)
    result = run("show", "00000000-0000-0000-0000-000000000000")
    assert_one_line_error(result, ExitCode.FAILURE)
    assert result.stderr == "error: unexpected RuntimeError: boom second line\n"

    def interrupted(self: Cli, session_id: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Cli, "show", interrupted)
    assert_one_line_error(run("show", "00000000-0000-0000-0000-000000000000", "--json"), ExitCode.INTERRUPTED,
                          json_mode=True)


@pytest.mark.parametrize(("error", "code"), [
    (SessionNotFound(uuid.uuid4()), ExitCode.NOT_FOUND),
    (InvalidTransition(None, state="a", event="b", reason="c"), ExitCode.INVALID_TRANSITION),
    (ConcurrencyConflict(uuid.uuid4(), expected_version=1, actual_version=2), ExitCode.CONFLICT),
    (ActiveSessionExists(uuid.uuid4(), user_id="u", active_session_id=None), ExitCode.CONFLICT),
    (SessionUserMismatch(uuid.uuid4(), owner="u", performer_id="p"), ExitCode.FORBIDDEN),
    (InvalidInput("f", "p"), ExitCode.INVALID_INPUT),
    (StoreError("down"), ExitCode.STORE),
    (RuntimeError("x"), ExitCode.FAILURE),
    (KeyboardInterrupt(), ExitCode.INTERRUPTED),
])
def test_exit_code_for_each_error_class(error: BaseException, code: ExitCode) -> None:
    assert exit_code_for(error) == code


def test_corrupt_history_and_database_errors_map_to_their_codes() -> None:
    from sqlalchemy.exc import OperationalError

    from sessionflow.domain.replay import CorruptHistory

    assert exit_code_for(CorruptHistory("gap")) == ExitCode.INCONSISTENT
    assert exit_code_for(OperationalError("SELECT 1", {}, Exception("unable to open"))) == ExitCode.STORE


def test_help_documents_the_exit_codes_and_docs_list_the_same_table() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for code, text in EXIT_CODES.items():
        assert f"{code:>3}  {text}" in result.stdout
        assert f"| {code} " in docs
    for command in ("create", "start", "record-file", "note", "complete", "fail", "touch", "show", "list",
                    "history", "expire", "worker", "serve", "db", "rebuild", "verify", "export", "diagram", "demo"):
        assert f"  {command} " in result.stdout
        assert f"sessionflow {command}" in docs


def test_version(run: Invoke) -> None:
    from sessionflow import __version__

    result = run("--version", database=False)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"sessionflow {__version__}"


def test_the_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["sessionflow"] == "sessionflow.__main__:main"
    installed = importlib.metadata.entry_points(group="console_scripts", name="sessionflow")
    assert [e.value for e in installed] == ["sessionflow.__main__:main"]


# ---------------------------------------------------------------------- timeouts


def test_worker_expires_sessions_as_their_deadlines_pass(run: Invoke) -> None:
    sid = create(run, "--ttl", "1s")["id"]
    result = run("worker", "--for", "2.2s", "--interval", "30s", "--json")
    events = lines(result)
    assert [(e["session_id"], e["event"], e["performer_id"]) for e in events] == [(sid, "expired", "system")]
    assert "worker stopped: 1 session expired" in result.stderr
    assert doc(run("show", sid, "--json"))["status"] == "expired"


def test_expire_sweeps_now_and_expires_one(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    with SessionManager.open(f"sqlite:///{tmp_path / 'x.db'}", clock=clock) as manager:
        command = Cli(performer="alice", manager=manager)
        first = command.create(ttl=timedelta(minutes=1))
        second = command.create(ttl=timedelta(minutes=1))
        later = command.create(ttl=timedelta(hours=1))
        with pytest.raises(InvalidTransition):
            command.expire(first.id)  # not due yet
        clock.advance(timedelta(minutes=1))
        assert command.expire(first.id) == 1
        assert command.expire() == 1
        assert manager.get(second.id).status is SessionStatus.EXPIRED
        assert manager.get(later.id).status is SessionStatus.PENDING


def test_expire_json(run: Invoke) -> None:
    assert doc(run("expire", "--json")) == {"expired": 0}
    assert run("expire").stdout.strip() == "expired 0 overdue sessions"


# ---------------------------------------------------------------------- maintenance


def test_db_upgrade(run: Invoke) -> None:
    first = doc(run("db", "upgrade", "--json"))
    assert first["from"] is None
    assert first["changed"] is True
    assert first["to"]
    second = doc(run("db", "upgrade", "--json"))
    assert second["from"] == second["to"] == first["to"]
    assert second["changed"] is False
    assert "up to date" in run("db", "upgrade").stdout


def test_rebuild_and_verify(run: Invoke, tmp_path: Path) -> None:
    ids = [create(run)["id"] for _ in range(3)]
    assert doc(run("verify", "--json")) == {"ok": True, "differences": []}
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        conn.execute("UPDATE sessions SET user_id = 'tampered' WHERE id = ?", (ids[1].replace("-", ""),))
        changed = conn.total_changes
        if not changed:
            conn.execute("UPDATE sessions SET user_id = 'tampered' WHERE id = ?", (ids[1],))
    result = run("verify", "--json")
    assert result.exit_code == ExitCode.INCONSISTENT
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["differences"] == [{"session_id": ids[1], "field": "user_id", "projection": "tampered",
                                      "events": None}]
    assert "1 difference" in run("verify").stdout
    assert doc(run("rebuild", "--json")) == {"rebuilt": 3}
    assert doc(run("verify", "--json"))["ok"] is True
    assert "agrees" in run("verify").stdout


def test_export_writes_the_audit_files_idempotently(run: Invoke, tmp_path: Path) -> None:
    sid = create(run, "--user", "u1")["id"]
    run("start", sid)
    root = tmp_path / "audit"
    first = doc(run("export", str(root), "--json"))
    assert (first["sessions"], first["events"], first["files_written"]) == (1, 2, 1)
    path = root / "users" / "u1" / "sessions" / f"{sid}.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["event"] for r in records] == [e["event"] for e in lines(run("history", sid, "--json"))]
    second = doc(run("export", str(root), "--json"))
    assert (second["files_written"], second["files_unchanged"]) == (0, 1)


def test_serve_reports_a_missing_http_extra(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = run("serve", "--json")
    error = assert_one_line_error(result, ExitCode.FAILURE, json_mode=True)
    assert error["code"] == "unavailable"
    assert "sessionflow[http]" in error["message"]


# ---------------------------------------------------------------------- output details


def test_parse_duration() -> None:
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("1.5s") == timedelta(seconds=1.5)
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1d") == timedelta(days=1)
    with pytest.raises(Exception, match="not a duration"):
        parse_duration("-1s")


def test_progress_is_silent_off_a_terminal_and_drawn_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    out = cli.Output(json_mode=False)
    assert not out.interactive  # under the test runner, stdout is not a terminal
    with out.progress("work", 3) as advance:
        advance(1)

    class Terminal:
        def __init__(self) -> None:
            self.text: list[str] = []

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            self.text.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    stdout, stderr = Terminal(), Terminal()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)
    drawn = cli.Output(json_mode=True)
    assert drawn.interactive
    with drawn.progress("rebuilding", 2) as advance:
        advance(2)
    assert stdout.text == []  # the bar goes to stderr, never into the JSON on stdout


# ---------------------------------------------------------------------- demo


def test_demo_drives_every_path_through_the_commands(run: Invoke) -> None:
    result = run("demo", "--ttl", "1s")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("$ sessionflow create", "$ sessionflow worker", "(exit 4)", "(exit 3)", "completed", "failed",
                 "deleted", "in_progress → expired", "pending → expired", "4 sessions"):
        assert text in out, text
    assert out.count("timestamp (UTC)") == 5
    assert "worker stopped: 2 sessions expired" in result.stderr
    assert out.rstrip().endswith("serve, then open http://127.0.0.1:8000/ui (the console)")
    assert "See them in a browser: sessionflow --db " in out


def test_demo_json_is_json_lines(run: Invoke) -> None:
    rows = lines(run("demo", "--ttl", "1s", "--json"))
    expired = [r for r in rows if r.get("event") == "expired"]
    assert len(expired) >= 4  # the worker's two events, then the two histories' last events
    errors = [r for r in rows if "exit_code" in r]
    assert [e["exit_code"] for e in errors] == [4, 4, 3]


def test_engine_log_records_are_one_line_on_stderr_and_only_while_a_command_runs(
        run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def noisy(self: Cli, session_id: str) -> None:
        try:
            raise ValueError("first\nsecond")
        except ValueError:
            logging.getLogger("sessionflow.test").exception("subscriber failed")
        logging.getLogger("sessionflow.test").info("only with --verbose")

    logger = logging.getLogger("sessionflow")
    level = logger.level
    monkeypatch.setattr(Cli, "show", noisy)
    result = run("show", "x")
    assert result.exit_code == 0
    assert len(result.stderr.splitlines()) == 1
    assert "ERROR sessionflow.test: subscriber failed [ValueError: first second]" in result.stderr
    assert "Traceback" not in result.stderr
    verbose = run("--verbose", "show", "x")
    assert "only with --verbose" in verbose.stderr
    assert not any(isinstance(h, cli._StderrHandler) for h in logger.handlers)
    assert logger.level == level
