"""Lifecycle and scenario files that are wrong, or hostile: each is a typed error naming the file, the key and
the line — never a silently ignored key, a raw ``ValueError``, a pytest page of internals, or a process that
grows until it runs out of memory."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sessionflow import LifecycleDefinitionError
from sessionflow.entrypoints.cli import app
from sessionflow.errors import InvalidInput
from sessionflow.loader import MAX_DOCUMENT_BYTES, definition_from_document, load_definition, parse_duration
from sessionflow.scenarios import ExpectationFailed, ScenarioError, run_scenario

HERE = Path(__file__).parent
ROOT = HERE.parents[1]

MINI = """\
name: mini
version: 2
states:
  a: {initial: true}
  b: {}
  c: {final: true}
events:
  go: [{from: a, to: b}]
  stop: [{from: [a, b], to: c}]
timeouts:
  b: {after: 90s, event: stop}
"""

#: A billion-laughs document: a few hundred bytes that expand to 10**9 strings.
BOMB = "\n".join([
    'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)),
])


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _lifecycle(tmp_path: Path, replace: dict[str, str] | None = None, extra: str = "",
               name: str = "mini.yaml") -> Path:
    text = MINI
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    return _write(tmp_path, name, text + extra)


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


# ------------------------------------------------------------------------------------------ expectations


def test_a_failed_expectation_raises_with_what_was_expected_and_what_was_found(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.scenario.yaml", "steps:\n  - create s1\n  - expect s1 completed\n")
    report = run_scenario(path)
    (failure,) = report.failures
    assert failure.expectation
    assert "s1 is pending, not completed" in failure.message
    assert failure.line == 3
    assert report.summary().startswith("bad.scenario.yaml: 0/1 expectations met")
    error = ExpectationFailed("s1 is pending, not completed", expected="completed", actual="pending")
    assert isinstance(error, ScenarioError)
    assert (error.expected, error.actual) == ("completed", "pending")


def test_the_scenario_runner_has_no_assert_statements() -> None:
    """``python -O`` removes ``assert``: an expectation checked by one would pass whatever happened."""
    tree = ast.parse((ROOT / "src" / "sessionflow" / "scenarios.py").read_text(encoding="utf-8"))
    assert [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)] == []


def test_a_failing_scenario_fails_under_python_optimize(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.scenario.yaml", "steps:\n  - create s1\n  - expect s1 completed\n"
                                                 "  - expect s1 version 7\n")
    env = {**os.environ, "PYTHONOPTIMIZE": "1"}
    result = subprocess.run([sys.executable, "-m", "sessionflow", "scenario", "run", str(path)], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0/1 expectations met, 1 failed steps" in result.stdout
    assert "s1 is pending, not completed" in result.stdout


@pytest.mark.parametrize(("step", "message"), [
    ("expect s1 version 7", "s1 is at version 1, not 7"),
    ("expect s1 events created,started", "s1's events are ['created']"),
    ("expect s1 deadline in 2h", "s1's deadline is"),
    ("expect s1 no deadline", "s1 has a deadline"),
    ("expect s1 pending by someone", "s1's last change was by 'scenario', not 'someone'"),
    ("expect s1 gone", "s1 still exists"),
    ("expect s1 refuses start", "s1 accepted start"),
])
def test_every_kind_of_expectation_fails_as_a_step(tmp_path: Path, step: str, message: str) -> None:
    path = _write(tmp_path, "e.scenario.yaml", f"steps:\n  - create s1\n  - {step}\n")
    (failure,) = run_scenario(path).failures
    assert failure.expectation
    assert message in failure.message


@pytest.mark.parametrize(("step", "message"), [
    ("expect s1 version abc", "a version is a positive integer"),
    ("expect s1 version " + "9" * 5000, "a version is a positive integer"),
    ("touch", "touch NAME"),
    ("create", "create NAME"),
    ("create s2 ttl", "create NAME"),
    ("expect s1 refuses", "expect NAME refuses EVENT"),
    ("expect s1 deadline in", "expect NAME deadline in DURATION"),
    ('send start to s1 with reason="unclosed', "cannot split"),
    ("advance 5 parsecs", "not a duration"),
    ("advance", "advance DURATION"),
    ("set s1 nothing", "expected KEY=VALUE"),
])
def test_malformed_steps_are_failed_steps_not_crashes(tmp_path: Path, step: str, message: str) -> None:
    path = _write(tmp_path, "m.scenario.yaml", f"steps:\n  - create s1\n  - {json.dumps(step)}\n")
    (failure,) = run_scenario(path).failures
    assert (failure.index, failure.line) == (2, 3)
    assert message in failure.message, failure.message


def test_a_clock_pushed_past_year_9999_is_a_failed_step(tmp_path: Path) -> None:
    steps = "".join("  - advance 36500d\n" for _ in range(90))
    (failure,) = run_scenario(_write(tmp_path, "far.scenario.yaml", "steps:\n" + steps)).failures
    assert "cannot run" in failure.message


# ------------------------------------------------------------------------------------------ scenario headers


def test_misspelt_scenario_keys_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, "typo.scenario.yaml", "steps:\n  - create s1\nstor: sqlite\nttll: 5m\n")
    with pytest.raises(ScenarioError) as raised:
        run_scenario(path)
    message = raised.value.message
    assert "typo.scenario.yaml:3: stor: unknown keys: 'stor' (did you mean 'store'?)" in message
    assert "typo.scenario.yaml:4: ttll: unknown keys: 'ttll' (did you mean 'ttl'?)" in message
    assert isinstance(raised.value, InvalidInput)  # the command line's exit code 6
    result = _cli("scenario", "run", str(path))
    assert result.exit_code == 6
    assert "did you mean 'store'?" in _one_line(result.output)


@pytest.mark.parametrize(("text", "where", "message"), [
    ("store: disk\nsteps: []\n", ":1: store:", "'memory' or 'sqlite'"),
    ("ttl: 5 parsecs\nsteps: []\n", ":1: ttl:", "not a duration"),
    ("ttl: .inf\nsteps: []\n", ":1: ttl:", "finite"),
    ("ttl: -1\nsteps: []\n", ":1: ttl:", "positive"),
    ("start: 2030-01-01 09:00\nsteps: []\n", ":1: start:", "time zone"),
    ("start: next tuesday\nsteps: []\n", ":1: start:", "ISO 8601"),
    ("steps:\n  - create s1\n  - {create: s2}\n", ":3: steps[1]:", "string"),
    ("steps: create s1\n", ":1: steps:", "list"),
    ("lifecycle: 5\nsteps: []\n", ":1: lifecycle:", "string"),
    ("nothing: here\n", "", "list of steps"),
    ("- just\n- a list\n", "", "a scenario is a mapping"),
    ("", "", "a scenario is a mapping"),
])
def test_malformed_scenario_documents_name_file_key_and_line(tmp_path: Path, text: str, where: str,
                                                             message: str) -> None:
    path = _write(tmp_path, "doc.scenario.yaml", text)
    with pytest.raises(ScenarioError) as raised:
        run_scenario(path)
    assert f"doc.scenario.yaml{where}" in raised.value.message
    assert message in raised.value.message


def test_a_scenario_pointing_at_a_broken_lifecycle_names_both_files(tmp_path: Path) -> None:
    _lifecycle(tmp_path, {"after: 90s": "after: soon"})
    path = _write(tmp_path, "s.scenario.yaml", "lifecycle: mini.yaml\nsteps:\n  - create s1\n")
    with pytest.raises(ScenarioError) as raised:
        run_scenario(path)
    assert "s.scenario.yaml:1: lifecycle: " in raised.value.message
    assert "mini.yaml:11: timeouts.b.after: 'soon' is not a duration" in raised.value.message


def test_an_unknown_lifecycle_name_is_a_document_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.scenario.yaml", "lifecycle: nowhere\nsteps: []\n")
    result = _cli("scenario", "run", str(path))
    assert result.exit_code == 6
    assert "s.scenario.yaml:1: lifecycle:" in _one_line(result.output)


def test_a_malformed_scenario_is_one_line_under_pytest(tmp_path: Path) -> None:
    _write(tmp_path, "typo.scenario.yaml", "steps:\n  - create s1\nstor: sqlite\n")
    _write(tmp_path, "fails.scenario.yaml", "steps:\n  - create s1\n  - expect s1 completed\n")
    _write(tmp_path, "broken.scenario.yaml", "steps: [unclosed\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert "3 failed" in out, out + result.stderr
    assert "typo.scenario.yaml:3: stor: unknown keys: 'stor' (did you mean 'store'?)" in out
    assert "step 2: expect s1 completed" in out
    assert "fails.scenario.yaml:3: s1 is pending, not completed" in out
    assert "broken.scenario.yaml:" in out
    for internals in ("Traceback", "scenarios.py", "loader.py", "sessionflow/loader/", "site-packages"):
        assert internals not in out, out
    assert len(out.splitlines()) < 30, out


# ------------------------------------------------------------------------------------------ lifecycle files


def test_an_error_names_the_file_the_key_path_and_the_line(tmp_path: Path) -> None:
    path = _lifecycle(tmp_path, {"after: 90s": "after: 5 parsecs"})
    with pytest.raises(LifecycleDefinitionError) as raised:
        load_definition(path)
    error = raised.value
    assert f"{path}:11: timeouts.b.after: '5 parsecs' is not a duration" in error.message
    (problem,) = error.problems  # type: ignore[attr-defined]
    assert (problem.path, problem.line) == ("timeouts.b.after", 11)
    document = error.to_dict()
    assert document["file"] == str(path)
    assert document["problems"] == [{"path": "timeouts.b.after", "line": 11, "problem": problem.problem}]


@pytest.mark.parametrize(("replace", "extra", "where", "message"), [
    ({}, "migrations: {one: {a: b}}\n", ":12: migrations.one:", "a version is a positive integer"),
    ({}, "migrations: {abc: {a: b}}\n", ":12: migrations.abc:", "a version is a positive integer"),
    ({}, "migrations: {1: {a: nowhere}}\n", ":12: migrations.1.a:", "unknown state 'nowhere'"),
    ({}, "migrations: {3: {a: b}}\n", ":12: migrations.3:", "older versions"),
    ({"after: 90s": "after: .inf"}, "", ":11: timeouts.b.after:", "finite"),
    ({"after: 90s": "after: .nan"}, "", ":11: timeouts.b.after:", "finite"),
    ({"after: 90s": "after: '99999999999999999999d'"}, "", ":11: timeouts.b.after:", "longer than"),
    ({"after: 90s": "after: 1" + "0" * 5000}, "", ":11: timeouts.b.after:", "not valid YAML"),
    ({"after: 90s": "after: " + " " * 200 + "x"}, "", ":11: timeouts.b.after:", "not a duration"),
    ({"after: 90s": "after: 0s"}, "", ":11: timeouts.b.after:", "positive"),
    ({"after: 90s": "after: [1]"}, "", ":11: timeouts.b.after:", "got list"),
    ({"after: 90s": "after: true"}, "", ":11: timeouts.b.after:", "not a duration"),
    ({"after: 90s": "afterr: 90s"}, "", ":11: timeouts.b.afterr:", "did you mean 'after'?"),
    ({"event: stop": "event: nope"}, "", ":11: timeouts.b.event:", "no transition from 'b'"),
    ({"event: stop}": "event: stop, restart: 'no'}"}, "", ":11: timeouts.b.restart:", "boolean"),
    ({"version: 2": "version: two"}, "", ":2: version:", "version must be a positive integer"),
    ({"version: 2": "version: true"}, "", ":2: version:", "version must be a positive integer"),
    ({"version: 2": "version: 99999999999"}, "", ":2: version:", "version must be a positive integer"),
    ({"name: mini": "name: [a, b]"}, "", ":1: name:", "string"),
    ({"name: mini": "name: 'no spaces allowed'"}, "", ":1: name:", "letters, digits"),
    ({"  b: {}": "  b: {final: yes please}"}, "", ":5: states.b.final:", "boolean"),
    ({"  b: {}": "  b-b: {}"}, "", ":5: states.b-b:", "letters, digits and underscores"),
    ({"  b: {}": "  send: {}"}, "", ":5: states.send:", "reserved"),
    ({"go: [{from: a, to: b}]": "go: [{from: a, to: nowhere}]"}, "", ":8: events.go[0].to:",
     "unknown state 'nowhere'"),
    ({"go: [{from: a, to: b}]": "go: [{to: b}]"}, "", ":8: events.go[0]:", "needs 'from' and 'to'"),
    ({"go: [{from: a, to: b}]": "go: [{from: a, to: b, cond: [no_such_guard]}]"}, "", ":8: events.go[0].cond:",
     "no guard or validator named 'no_such_guard'"),
    ({"go: [{from: a, to: b}]": "go: []"}, "", ":8: events.go:", "at least one transition"),
    ({"go: [{from: a, to: b}]": "a: [{from: a, to: b}]"}, "", ":8: events.a:", "is a state"),
    ({"timeouts:\n  b:": "timeouts:\n  c:"}, "", ":11: timeouts.c:", "final state 'c' cannot time out"),
    ({"timeouts:\n  b:": "timeouts:\n  z:"}, "", ":11: timeouts.z:", "unknown state 'z'"),
    ({}, "event_names: {gone: went}\n", ":12: event_names.gone:", "no event 'gone'"),
    ({}, "imports: [no.such.module]\n", ":12: imports:", "cannot import"),
    ({}, "stats: {}\n", ":12: stats:", "did you mean 'states'?"),
    ({}, "states: {}\n", ":12: states:", "duplicate key 'states'"),
    ({}, "other: !!python/object:os.system {}\n", ":12: other:", "tag"),
    ({}, "name2: !!binary aGVsbG8=\n", ":12: name2:", "unknown keys"),
    ({}, "---\nname: second\n", "", "one YAML document"),
])
def test_malformed_lifecycle_files_are_typed_errors(tmp_path: Path, replace: dict[str, str], extra: str, where: str,
                                                    message: str) -> None:
    path = _lifecycle(tmp_path, replace, extra)
    with pytest.raises(LifecycleDefinitionError) as raised:
        load_definition(path)
    assert f"{path}{where}" in raised.value.message
    assert message in raised.value.message, raised.value.message
    result = _cli("--lifecycle", str(path), "diagram", "--of", str(path))
    assert result.exit_code == 6, result.output
    assert _one_line(result.output).startswith(f"error: {path}")


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    path = _lifecycle(tmp_path, {"version: 2": "version: 0", "after: 90s": "after: soon"}, "colour: red\n")
    with pytest.raises(LifecycleDefinitionError) as raised:
        load_definition(path)
    assert [(p.path, p.line) for p in raised.value.problems] == [  # type: ignore[attr-defined]
        ("version", 2), ("timeouts.b.after", 11), ("colour", 12)]


def test_json_files_name_the_file_and_the_key(tmp_path: Path) -> None:
    document = {"name": "mini", "version": 1, "states": {"a": {"initial": True}, "b": {"final": True}},
                "events": {"go": [{"from": "a", "to": "b"}]}, "timeouts": {"a": {"after": float("nan"),
                                                                                 "event": "go"}}}
    path = _write(tmp_path, "mini.json", json.dumps(document))
    with pytest.raises(LifecycleDefinitionError, match=r"mini\.json: timeouts\.a\.after: nan is not a duration"):
        load_definition(path)
    path.write_text('{"name": "mini", "name": "again"}')
    with pytest.raises(LifecycleDefinitionError, match="duplicate key 'name'"):
        load_definition(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LifecycleDefinitionError, match=r"mini\.json: .*nested too deeply"):
        load_definition(path)
    path.write_text('{"version": ' + "1" * 5000 + "}")
    with pytest.raises(LifecycleDefinitionError, match=r"mini\.json: not valid JSON"):
        load_definition(path)


def test_non_utf8_bytes_are_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin.yaml", MINI.replace("name: mini", "name: caf\xe9").encode("latin-1"))
    with pytest.raises(LifecycleDefinitionError, match=rf"{re.escape(str(path))}: not UTF-8 .*byte 10"):
        load_definition(path)
    assert _cli("--lifecycle", str(path), "diagram", "--of", str(path)).exit_code == 6
    scenario = _write(tmp_path, "latin.scenario.yaml", b"name: caf\xe9\nsteps: []\n")
    with pytest.raises(ScenarioError, match=r"latin\.scenario\.yaml: not UTF-8"):
        run_scenario(scenario)


def test_files_over_the_size_limit_are_refused_unread(tmp_path: Path) -> None:
    assert MAX_DOCUMENT_BYTES == 1024 * 1024
    path = _write(tmp_path, "big.yaml", MINI + "description: " + "x" * MAX_DOCUMENT_BYTES + "\n")
    with pytest.raises(LifecycleDefinitionError, match=r"big\.yaml: larger than 1 MiB"):
        load_definition(path)
    scenario = _write(tmp_path, "big.scenario.yaml", "steps:\n" + "  - create s1\n" * 100_000)
    with pytest.raises(ScenarioError, match=r"big\.scenario\.yaml: larger than 1 MiB"):
        run_scenario(scenario)


@pytest.mark.parametrize("where", ["lifecycle name", "scenario step", "anchor only"])
def test_yaml_aliases_and_anchors_are_refused(tmp_path: Path, where: str) -> None:
    start = time.perf_counter()
    if where == "lifecycle name":
        path = _write(tmp_path, "bomb.yaml", BOMB + "\n" + MINI.replace("name: mini", "name: *l8"))
        with pytest.raises(LifecycleDefinitionError, match=r"bomb\.yaml:1: l0: YAML anchors"):
            load_definition(path)
    elif where == "scenario step":
        path = _write(tmp_path, "bomb.scenario.yaml", "steps:\n  - *l8\n" + BOMB.replace("l", "x"))
        with pytest.raises(ScenarioError, match=r"bomb\.scenario\.yaml:2: steps\[0\]: YAML aliases"):
            run_scenario(path)
    else:
        path = _lifecycle(tmp_path, {"  b: {}": "  b: &b {}"})
        with pytest.raises(LifecycleDefinitionError, match=r":5: states\.b: YAML anchors"):
            load_definition(path)
    assert time.perf_counter() - start < 2


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    for depth in (100, 50_000):
        path = _write(tmp_path, "deep.yaml", MINI + "description: " + "[" * depth + "]" * depth + "\n")
        with pytest.raises(LifecycleDefinitionError, match=r"deep\.yaml:12: description.*nest"):
            load_definition(path)
    path = _write(tmp_path, "deep.yaml", MINI + "description:\n" + "".join(
        "  " * level + f"k{level}:\n" for level in range(1, 80)) + "  " * 80 + "x\n")
    with pytest.raises(LifecycleDefinitionError, match=r"deep\.yaml:\d+: description\.k1\.k2.*nested too deeply"):
        load_definition(path)


def test_documents_in_memory_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(LifecycleDefinitionError, match=r"^timeouts\.b\.after: 'soon' is not a duration"):
        definition_from_document({"name": "m", "states": {"a": {"initial": True}, "b": {}, "c": {"final": True}},
                                  "events": {"go": [{"from": "a", "to": "b"}], "end": [{"from": "b", "to": "c"}]},
                                  "timeouts": {"b": {"after": "soon", "event": "end"}}})
    with pytest.raises(LifecycleDefinitionError, match="a lifecycle document is a mapping"):
        definition_from_document(["not", "a", "mapping"])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ durations in files


def test_files_take_the_one_duration_grammar(tmp_path: Path) -> None:
    path = _lifecycle(tmp_path, {"after: 90s": "after: '500ms'"})
    assert load_definition(path).timeouts["b"].after == timedelta(milliseconds=500)
    for text, expected in (("'90'", 90), ("90", 90), ("1.5", 1.5), ("1h30m", 5400), ("1.5h", 5400), ("2m", 120)):
        path = _lifecycle(tmp_path, {"after: 90s": f"after: {text}"})
        assert load_definition(path).timeouts["b"].after == timedelta(seconds=expected), text
    scenario = _write(tmp_path, "d.scenario.yaml", "ttl: '90'\nsteps:\n  - create s1\n"
                                                   "  - expect s1 deadline in 1m30s\n  - advance 500ms\n"
                                                   "  - expect s1 deadline in 89.5\n  - advance 1m29s500ms\n"
                                                   "  - expect s1 expired\n")
    report = run_scenario(scenario)
    assert report.ok, report.failures


def test_the_loader_duration_is_the_domain_one_and_linear() -> None:
    assert parse_duration("500ms", "x") == timedelta(milliseconds=500)
    start = time.perf_counter()
    with pytest.raises(LifecycleDefinitionError, match="not a duration"):
        parse_duration(" " * 200 + "x", "after")
    with pytest.raises(LifecycleDefinitionError):
        parse_duration(" " * 100_000 + "x", "after")
    assert time.perf_counter() - start < 0.5


# ------------------------------------------------------------------------------------------ valid files still load


def test_the_documented_yaml_example_loads() -> None:
    import tests.lifecycles.review_guards  # noqa: F401  (registers has_title, has_reviewer, is_author)

    text = (ROOT / "docs" / "lifecycles.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(name: review\n.*?)```", text, flags=re.DOTALL)
    assert block is not None
    import yaml

    document = yaml.safe_load(block.group(1).replace("imports: [myapp.review_guards]\n", ""))
    definition = definition_from_document(document)
    assert definition.timeouts["in_review"].after == timedelta(hours=2)
    assert definition.event_names["submit"] == "submitted"


@pytest.mark.parametrize("path", [HERE / "review.lifecycle.yaml", *sorted((ROOT / "scenarios").glob("*.yaml")),
                                  HERE / "review.scenario.yaml"], ids=lambda p: p.name)
def test_the_shipped_files_still_load(path: Path) -> None:
    if path.name.endswith(".scenario.yaml"):
        assert run_scenario(path).ok
    else:
        assert load_definition(path).name == "review"


# ------------------------------------------------------------------------------------------ odd paths and values


def test_what_is_not_a_regular_file_is_refused_without_reading(tmp_path: Path) -> None:
    with pytest.raises(LifecycleDefinitionError, match="cannot read: not a regular file"):
        load_definition(tmp_path)
    assert _cli("scenario", "run", str(tmp_path)).exit_code == 6
    if Path("/dev/zero").exists():
        start = time.perf_counter()
        with pytest.raises(LifecycleDefinitionError, match="not a regular file"):
            load_definition("/dev/zero")
        assert time.perf_counter() - start < 2


def test_scenario_values_the_manager_refuses_are_located(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.scenario.yaml", "ttl: 5000d\nsteps: []\n")
    with pytest.raises(ScenarioError, match=r"t\.scenario\.yaml:1: ttl: must be at most 3650 days"):
        run_scenario(path)
    path = _write(tmp_path, "n.scenario.yaml", 'lifecycle: "a\\0b.yaml"\nsteps: []\n')
    with pytest.raises(ScenarioError, match=r"n\.scenario\.yaml:1: lifecycle: .*cannot read"):
        run_scenario(path)
    path = _write(tmp_path, "y.scenario.yaml", "start: 9999-12-31T23:30:00Z\nsteps:\n  - create s1\n")
    (failure,) = run_scenario(path).failures
    assert "cannot run: OverflowError" in failure.message
    assert _cli("scenario", "run", "--store", "disk", str(path)).exit_code == 2


def test_yaml_booleans_as_names_are_explained(tmp_path: Path) -> None:
    path = _write(tmp_path, "onoff.yaml", 'name: x\nstates:\n  on: {initial: true}\n  off: {final: true}\n'
                                          'events:\n  go: [{from: "on", to: "off"}]\n')
    with pytest.raises(LifecycleDefinitionError) as raised:
        load_definition(path)
    assert [(p.path, p.line) for p in raised.value.problems] == [  # type: ignore[attr-defined]
        ("states.True", 3), ("states.False", 4)]
    assert "quote the name" in raised.value.message
