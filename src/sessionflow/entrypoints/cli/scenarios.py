"""The ``scenario run`` command: scripted scenarios played on a frozen clock, each step reported.

Owns the command's typer function; the scenarios themselves are played by :mod:`sessionflow.scenarios`. A step
that fails exits 1; a scenario file that cannot be used (``ScenarioDocumentError``, an ``InvalidInput``) or a
lifecycle file that cannot (``LifecycleDefinitionError``) is one line naming the file, the key and the line, and
exits 6.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sessionflow.entrypoints.cli.errors import ExitCode
from sessionflow.entrypoints.cli.options import JsonOption, globals_of
from sessionflow.entrypoints.cli.running import handled, register_lifecycles

__all__ = ["ScenarioStore", "scenario_run"]


class ScenarioStore(StrEnum):
    """The stores ``scenario run --store`` can play on."""

    MEMORY = "memory"
    SQLITE = "sqlite"


@handled
def scenario_run(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Scenario files (YAML or JSON).")],
    store: Annotated[ScenarioStore | None, typer.Option("--store", help="memory or sqlite (default: the file's).",
                                                        show_default=False)] = None,
    json_output: JsonOption = False,
) -> None:
    """Play scenarios and report each step; exit 1 if an expectation fails, 6 if a file cannot be used."""
    from sessionflow.scenarios import run_scenario

    register_lifecycles(globals_of(ctx).lifecycles)
    as_json = json_output or globals_of(ctx).json
    failed = False
    for file in files:
        report = run_scenario(file, store=None if store is None else store.value)
        failed = failed or not report.ok
        if as_json:
            print(json.dumps({"scenario": report.name, "file": str(file), "ok": report.ok,
                              "steps": [{"index": s.index, "step": s.step, "ok": s.ok, "expectation": s.expectation,
                                         "message": s.message, "line": s.line} for s in report.steps]}))
            continue
        for step in report.steps:
            mark = "ok  " if step.ok else "FAIL"
            where = f"{file}:{step.line}: " if step.line else ""
            print(f"{mark} {step.index:3d}. {step.step}" + (f"  — {where}{step.message}" if not step.ok else ""))
        print(report.summary())
    if failed:
        raise typer.Exit(int(ExitCode.FAILURE))
