"""Lifecycles from YAML/JSON documents, scenarios, and their command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sessionflow import LifecycleDefinitionError, SessionManager, replay
from sessionflow.entrypoints.cli import app
from sessionflow.loader import definition_from_document, load_definition, parse_duration
from sessionflow.scenarios import ScenarioError, run_scenario

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
REVIEW = HERE / "review.lifecycle.yaml"


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "mini", "version": 1,
        "states": {"a": {"initial": True}, "b": {}, "c": {"final": True}},
        "events": {"go": [{"from": "a", "to": "b"}], "stop": [{"from": ["a", "b"], "to": "c"}]},
        "timeouts": {"b": {"after": "90s", "event": "stop"}},
    }
    document.update(changes)
    return document


def test_a_yaml_lifecycle_runs_like_a_python_one(tmp_path: Path) -> None:
    review = load_definition(REVIEW)
    assert (review.name, review.version) == ("review", 1)
    assert review.states == ("draft", "in_review", "changes_requested", "approved", "rejected", "abandoned")
    assert set(review.timeouts) == {"draft", "in_review", "changes_requested"}
    with SessionManager.open(f"sqlite:///{tmp_path / 'r.db'}", lifecycle=review) as manager:
        doc = manager.create(metadata={"title": "t", "author": "ana"}, performer_id="ana")
        manager.send(doc.id, "submit", performer_id="ana")
        approved = manager.send(doc.id, "approve", reviewer="bo", performer_id="bo")
        assert approved.status == "approved"
        assert [str(e.event) for e in manager.history(doc.id)] == ["created", "submitted", "approved"]
        assert replay(manager.history(doc.id)) == manager.get(doc.id)
        assert manager.verify() == []


def test_json_documents_and_durations(tmp_path: Path) -> None:
    path = tmp_path / "mini.json"
    path.write_text(json.dumps(_document()))
    mini = load_definition(path)
    assert mini.timeouts["b"].after == parse_duration("90s", "x")
    assert parse_duration("1h30m", "x").total_seconds() == 5400
    assert parse_duration(45, "x").total_seconds() == 45
    assert parse_duration("2d", "x").days == 2


@pytest.mark.parametrize(("changes", "message"), [
    ({"states": {}}, "needs states"),
    ({"states": {"a": {"initial": True, "colour": "red"}}}, "unknown keys"),
    ({"events": {"go": [{"from": "a", "to": "nowhere"}]}}, "unknown state 'nowhere'"),
    ({"events": {"go": [{"from": "a", "to": "b", "cond": ["no_such_guard"]}]}}, "no guard or validator"),
    ({"events": {"go": [{"to": "b"}]}}, "needs 'from' and 'to'"),
    ({"timeouts": {"b": {"after": "soon", "event": "stop"}}}, "not a duration"),
    ({"timeouts": {"b": {"after": "-5s", "event": "stop"}}}, "not a duration"),
    ({"timeouts": {"c": {"after": "1m", "event": "stop"}}}, "final state"),
    ({"version": "two"}, "version must be a positive integer"),
    ({"imports": ["no.such.module"]}, "cannot import"),
    ({"surprise": 1}, "unknown keys"),
])
def test_bad_documents_are_refused_clearly(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(LifecycleDefinitionError, match=message):
        definition_from_document(_document(**changes))


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LifecycleDefinitionError, match="cannot read"):
        load_definition(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("states: [unclosed")
    with pytest.raises(LifecycleDefinitionError, match="not valid"):
        load_definition(bad)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_shipped_scenarios_pass_on_both_stores(store: str) -> None:
    for path in [ROOT / "scenarios" / "session-lifecycle.scenario.yaml", HERE / "review.scenario.yaml"]:
        report = run_scenario(path, store=store)
        assert report.ok, report.failures
        assert sum(s.expectation for s in report.steps) >= 10


def test_a_failing_expectation_is_reported_with_its_step(tmp_path: Path) -> None:
    path = tmp_path / "bad.scenario.yaml"
    path.write_text("steps:\n  - create s1\n  - advance 2h\n  - expect s1 pending\n  - expect s1 expired\n")
    report = run_scenario(path)
    assert not report.ok
    (failure,) = report.failures
    assert (failure.index, failure.step) == (3, "expect s1 pending")
    assert "is expired, not pending" in failure.message
    assert len(report.steps) == 3  # stops at the first failure


def test_scenario_mistakes_are_scenario_errors(tmp_path: Path) -> None:
    path = tmp_path / "typo.scenario.yaml"
    path.write_text("steps:\n  - create s1\n  - jump s1\n")
    report = run_scenario(path)
    assert "unknown step 'jump'" in report.failures[0].message
    path.write_text("nothing: here\n")
    with pytest.raises(ScenarioError, match="list of steps"):
        run_scenario(path)


def test_the_cli_runs_scenarios_and_custom_lifecycles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["scenario", "run", str(HERE / "review.scenario.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "13/13 expectations met" in ok.output
    bad = tmp_path / "bad.scenario.yaml"
    bad.write_text("steps:\n  - create s1\n  - expect s1 done\n")
    failed = runner.invoke(app, ["scenario", "run", "--json", str(bad)])
    assert failed.exit_code == 1
    assert json.loads(failed.output.splitlines()[0])["ok"] is False

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    base = ["--lifecycle", str(REVIEW), "--db", db, "--performer", "ana"]
    created = runner.invoke(app, [*base, "create", "--in", "review", "--metadata", '{"title": "x", "author": "ana"}',
                                  "--json"])
    assert created.exit_code == 0, created.output
    sid = json.loads(created.output)["id"]
    assert runner.invoke(app, [*base, "send", sid, "submit"]).exit_code == 0
    refused = runner.invoke(app, [*base, "send", sid, "approve", "--arg", "reviewer=ana"])
    assert refused.exit_code == 4
    approved = runner.invoke(app, [*base, "send", sid, "approve", "--arg", "reviewer=bo", "--json"])
    assert json.loads(approved.output)["status"] == "approved"
    diagram = runner.invoke(app, ["diagram", "--of", str(REVIEW)])
    assert "changes_requested" in diagram.output
    assert runner.invoke(app, [*base, "send", sid, "approve", "--arg", "reviewer=bo"]).exit_code == 4  # final
    unknown = runner.invoke(app, ["--db", db, "create", "--in", "no-such-lifecycle"])
    assert unknown.exit_code == 6
    assert "no lifecycle 'no-such-lifecycle'" in unknown.output


def test_the_pytest_plugin_collects_scenario_files(tmp_path: Path) -> None:
    (tmp_path / "good.scenario.yaml").write_text(
        "steps:\n  - create s1\n  - send start to s1\n  - expect s1 in_progress\n")
    (tmp_path / "bad.scenario.yaml").write_text("steps:\n  - create s1\n  - expect s1 completed\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    assert "step 2: expect s1 completed" in result.stdout
