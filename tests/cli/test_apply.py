"""`sessionflow apply`: writes read as JSON lines, each answered by one JSON line — the session as `--json` prints
it, or the typed error —, errors passed over unless `--stop-on-error`, optionally in batches, and streaming:
an answer can be read before the next line is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sessionflow import SessionManager
from sessionflow.entrypoints.cli import ExitCode, app
from sessionflow.entrypoints.cli.apply import OPS


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'apply.db'}"


def _env() -> dict[str, str]:
    return {"SESSIONFLOW_PERFORMER": "alice"}


def apply(db: str, lines: list[Any] | str, *args: str) -> Result:
    """Run ``apply`` on ``lines`` (objects, written as JSON lines, or the raw text) given on stdin."""
    text = lines if isinstance(lines, str) else "".join(json.dumps(line) + "\n" for line in lines)
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        os.environ.pop(name, None)
    return CliRunner().invoke(app, ["--db", db, "apply", *args], input=text, env=_env())


def answers(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def session(db: str, sid: str) -> Any:
    with SessionManager.open(db) as manager:
        return manager.get(sid)


def test_every_write_of_the_command_line(db: str) -> None:
    result = apply(db, [{"op": "create", "user": "u1", "files": ["a.py", "b.py"], "metadata": {"k": 1},
                         "ttl": "15m", "module": "auth", "workspace": "ws"}])
    assert result.exit_code == 0, result.output
    created = answers(result)[0]
    sid = created["id"]
    assert (created["status"], created["version"], created["ttl_seconds"]) == ("pending", 1, 900)
    lines = [
        {"op": "start", "id": sid},
        {"op": "record-file", "id": sid, "path": "a.py"},
        {"op": "record-file", "id": sid, "path": "b.py", "error": "boom"},
        {"op": "note", "id": sid, "file": "a.py", "status": "stored", "memory_id": "m1"},
        {"op": "touch", "id": sid, "performer": "bob"},
        {"op": "update", "id": sid, "current_file": "b.py", "metadata": {"k": 2}},
        {"op": "complete", "id": sid, "expect_version": 7},
    ]
    result = apply(db, lines)
    assert result.exit_code == 0, result.output
    done = answers(result)
    assert [d["version"] for d in done] == list(range(2, 9))
    assert done[-1]["status"] == "completed"
    assert done[-1]["metadata"] == {"k": 2}
    with SessionManager.open(db) as manager:
        history = manager.history(sid)
        assert [e.performer_id for e in history].count("bob") == 1
        assert done[-1] == json.loads(manager.get(sid).model_dump_json())
    other = answers(apply(db, [{"op": "create"}]))[0]["id"]
    third = answers(apply(db, [{"op": "create"}]))[0]["id"]
    result = apply(db, [{"op": "fail", "id": other, "reason": "upstream down"},
                        {"op": "send", "id": third, "event": "start"},
                        {"op": "delete", "id": third}])
    assert result.exit_code == 0, result.output
    failed, started, deleted = answers(result)
    assert (failed["status"], failed["failure_reason"]) == ("failed", "upstream down")
    assert started["status"] == "in_progress"
    assert deleted["deleted_at"] is not None
    assert set(OPS) == {"create", "start", "complete", "fail", "touch", "record-file", "note", "update", "delete",
                        "send"}


def test_the_answers_are_what_json_commands_print(db: str) -> None:
    sid = answers(apply(db, [{"op": "create", "user": "u1", "metadata": {"x": "é"}}]))[0]["id"]
    shown = CliRunner().invoke(app, ["--db", db, "show", sid, "--json"], env=_env())
    again = apply(db, [{"op": "touch", "id": sid}])
    assert shown.stdout.strip() != ""
    assert json.loads(shown.stdout)["metadata"] == {"x": "é"}
    assert json.loads(again.stdout)["version"] == 2
    started = CliRunner().invoke(app, ["--db", db, "start", sid, "--json"], env=_env()).stdout
    assert answers(apply(db, [{"op": "complete", "id": sid}]))[0]["version"] == json.loads(started)["version"] + 1


def test_errors_are_typed_lines_and_the_stream_goes_on(db: str) -> None:
    sid = answers(apply(db, [{"op": "create", "files": ["a.py"]}]))[0]["id"]
    missing = str(uuid.uuid4())
    lines = "\n".join([
        json.dumps({"op": "start", "id": missing}),
        "{not json",
        json.dumps({"op": "explode", "id": sid}),
        json.dumps({"op": "start", "id": sid, "expect_version": 5}),
        json.dumps({"op": "start", "id": sid, "colour": "red"}),
        "",
        json.dumps({"op": "start", "id": sid}),
        json.dumps({"op": "complete", "id": sid}),
        json.dumps([1, 2]),
        json.dumps({"op": "touch", "id": sid}),
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"op": ["start"], "id": sid}),
    ]) + "\n"
    result = apply(db, lines)
    assert result.exit_code == ExitCode.NOT_FOUND  # the first error's
    out = answers(result)
    assert len(out) == 11  # the blank line is not a command
    errors = {i: d for i, d in enumerate(out) if "error" in d}
    assert [(d["exit_code"], d["exit_name"]) for d in errors.values()] == [
        (3, "not_found"), (2, "usage"), (2, "usage"), (5, "conflict"), (2, "usage"), (4, "invalid_transition"),
        (2, "usage"), (2, "usage"), (2, "usage")]
    assert [d["line"] for d in errors.values()] == [1, 2, 3, 4, 5, 8, 9, 11, 12]
    assert errors[2]["code"] == "usage"
    assert "explode" in errors[2]["message"]
    assert "colour" in errors[4]["message"]
    assert out[5]["status"] == "in_progress"
    assert out[8]["version"] == 3
    assert {"error", "code", "message", "exit_code", "exit_name"} <= set(errors[0])


def test_stop_on_error_stops_at_the_first_failing_line(db: str) -> None:
    sid = answers(apply(db, [{"op": "create"}]))[0]["id"]
    result = apply(db, [{"op": "touch", "id": sid}, {"op": "complete", "id": sid}, {"op": "touch", "id": sid}],
                   "--stop-on-error")
    assert result.exit_code == ExitCode.INVALID_TRANSITION
    out = answers(result)
    assert len(out) == 2
    assert out[1]["exit_name"] == "invalid_transition"
    assert session(db, sid).version == 2  # the third line was not applied


def test_performer_comes_from_the_line_then_the_options(db: str) -> None:
    result = CliRunner().invoke(app, ["--db", db, "apply", "--performer", "carol"], env=_env(),
                                input='{"op": "create"}\n{"op": "create", "performer": "dave"}\n')
    first, second = answers(result)
    with SessionManager.open(db) as manager:
        assert manager.history(first["id"])[0].performer_id == "carol"
        assert manager.history(second["id"])[0].performer_id == "dave"
    assert json.loads(apply(db, [{"op": "touch", "id": first["id"]}]).stdout)["version"] == 2


def test_batches_give_the_answers_of_single_lines(db: str, tmp_path: Path) -> None:
    created = answers(apply(db, [{"op": "create", "user": f"u{i}"} for i in range(6)], "--batch-size", "4"))
    assert [c["user_id"] for c in created] == [f"u{i}" for i in range(6)]
    ids = [c["id"] for c in created]
    lines = [{"op": "start", "id": sid} for sid in ids] + [{"op": "complete", "id": sid} for sid in ids[:3]]
    lines.insert(2, {"op": "start", "id": ids[0]})  # refused: the batch it falls in is applied line by line
    lines.append({"op": "touch", "id": ids[4]})  # not batched: the batch before it goes first
    result = apply(db, lines, "--batch", "3")
    assert result.exit_code == ExitCode.INVALID_TRANSITION
    out = answers(result)
    assert len(out) == len(lines)
    assert out[2]["exit_name"] == "invalid_transition"
    assert [o["status"] for o in out[:2] + out[3:7]] == ["in_progress"] * 6
    assert [o["status"] for o in out[7:10]] == ["completed"] * 3
    assert (out[10]["id"], out[10]["version"]) == (ids[4], 3)
    assert session(db, ids[0]).status == "completed"


def test_a_file_argument_and_a_missing_file(db: str, tmp_path: Path) -> None:
    source = tmp_path / "lines.jsonl"
    source.write_text('{"op": "create", "user": "from-file"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["--db", db, "apply", str(source)], env=_env())
    assert result.exit_code == 0, result.output
    assert answers(result)[0]["user_id"] == "from-file"
    missing = CliRunner().invoke(app, ["--db", db, "apply", str(tmp_path / "nope.jsonl")], env=_env())
    assert missing.exit_code == ExitCode.USAGE
    assert missing.stderr.startswith("error: cannot read ")
    assert len(missing.stderr.splitlines()) == 1


def test_a_bad_ttl_is_a_usage_error_of_its_line(db: str) -> None:
    out = answers(apply(db, [{"op": "create", "ttl": "99999999999999999999d"}, {"op": "create", "ttl": 90},
                             {"op": "create", "ttl": "1" * 400}]))
    assert out[0]["exit_name"] == "usage"
    assert "ttl" in out[0]["message"]
    assert out[1]["ttl_seconds"] == 90
    assert out[2]["exit_name"] == "usage"


def _spawn(db: str, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "alice"
    return subprocess.Popen([sys.executable, "-m", "sessionflow", "--db", db, "apply", *args], cwd=cwd, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("batch", [[], ["--batch-size", "50"]], ids=["single", "batches"])
def test_each_answer_can_be_read_before_the_next_line_is_written(db: str, tmp_path: Path, batch: list[str]) -> None:
    """A program drives one process through two pipes, waiting for each answer (a new id) before going on."""
    process = _spawn(db, tmp_path, *batch)
    assert process.stdin is not None
    assert process.stdout is not None

    def ask(line: dict[str, Any]) -> dict[str, Any]:
        process.stdin.write(json.dumps(line).encode() + b"\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]
        answer: dict[str, Any] = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        return answer

    try:
        for i in range(5):
            sid = ask({"op": "create", "user": f"u{i}"})["id"]
            assert ask({"op": "start", "id": sid})["status"] == "in_progress"
            assert ask({"op": "complete", "id": sid})["status"] == "completed"
        assert ask({"op": "nope"})["exit_name"] == "usage"
    finally:
        process.stdin.close()
        code = process.wait(timeout=60)
        process.stdout.close()
        assert process.stderr is not None
        process.stderr.close()
    assert code == ExitCode.USAGE


def test_many_lines_from_a_pipe(db: str, tmp_path: Path) -> None:
    """A stream of a few thousand lines written at once: every line answered, in order."""
    SessionManager.open(db).close()
    with SessionManager.open(db) as manager:
        ids = [str(manager.create(performer_id="p").id) for _ in range(500)]
    lines = b"".join(json.dumps({"op": op, "id": sid}).encode() + b"\n" for sid in ids for op in ("start", "complete"))
    done = subprocess.run([sys.executable, "-m", "sessionflow", "--db", db, "apply"], input=lines, cwd=tmp_path,
                          capture_output=True, timeout=300, check=False,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")},
                               "SESSIONFLOW_PERFORMER": "p"})
    assert done.returncode == 0, done.stderr[-2000:]
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(o["id"], o["status"]) for o in out] == [(sid, status) for sid in ids
                                                     for status in ("in_progress", "completed")]
