"""``sessionflow schema lifecycle|scenario``: the JSON Schema of the files, made from the models that read them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sessionflow.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _schema(kind: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["schema", kind])
    assert result.exit_code == 0, result.output
    schema: dict[str, Any] = json.loads(result.output)
    return schema


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every schema of an object with declared properties, anywhere in ``node``."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


def test_the_lifecycle_schema() -> None:
    schema = _schema("lifecycle")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "sessionflow lifecycle"
    assert set(schema["properties"]) == {"name", "version", "description", "imports", "states", "events", "timeouts",
                                         "event_names", "migrations"}
    assert set(schema["required"]) == {"name", "states"}
    assert all(obj["additionalProperties"] is False for obj in _objects(schema))  # unknown keys are errors
    transition = schema["$defs"]["TransitionSpec"]
    assert {"from", "to"} <= set(transition["properties"])
    assert set(transition["required"]) == {"from", "to"}
    after = schema["$defs"]["TimeoutSpec"]["properties"]["after"]
    assert "1h30m" in json.dumps(after)
    assert {"const": "ttl"} in after["anyOf"]


def test_the_scenario_schema() -> None:
    schema = _schema("scenario")
    assert schema["title"] == "sessionflow scenario"
    assert schema["required"] == ["steps"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["store"]["enum"] == ["memory", "sqlite"]
    assert schema["properties"]["ttl"]["default"] == "1h"
    assert schema["properties"]["steps"]["items"] == {"type": "string"}
    assert "``" not in json.dumps(schema)  # descriptions are plain text for editors


@pytest.mark.parametrize(("kind", "path"), [
    ("lifecycle", ROOT / "tests" / "lifecycles" / "review.lifecycle.yaml"),
    ("scenario", ROOT / "scenarios" / "session-lifecycle.scenario.yaml"),
    ("scenario", ROOT / "tests" / "lifecycles" / "review.scenario.yaml"),
])
def test_the_shipped_files_use_only_keys_the_schema_declares(kind: str, path: Path) -> None:
    schema = _schema(kind)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(document) <= set(schema["properties"])
    assert set(schema["required"]) <= set(document)


def test_an_unknown_kind_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["schema", "nonsense"])
    assert result.exit_code == 2
    assert CliRunner().invoke(app, ["schema"]).exit_code == 2


def test_the_command_line_does_not_load_the_models_until_asked() -> None:
    code = ("import sys, sessionflow.entrypoints.cli; "
            "print(sorted(m for m in ('sessionflow.loader', 'sessionflow.scenarios', 'yaml') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_schema_command_runs_as_a_program(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sessionflow", "schema", "lifecycle"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["title"] == "sessionflow lifecycle"
