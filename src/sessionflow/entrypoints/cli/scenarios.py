"""The ``scenario run`` command: scripted scenarios played on a frozen clock, each step reported.

Owns the command's typer function; the scenarios themselves are played by :mod:`sessionflow.scenarios`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sessionflow.entrypoints.cli.errors import ExitCode
from sessionflow.entrypoints.cli.options import JsonOption, globals_of
from sessionflow.entrypoints.cli.running import handled, register_lifecycles

__all__ = ["scenario_run"]


@handled
def scenario_run(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Scenario files (YAML or JSON).")],
    store: Annotated[str | None, typer.Option("--store", help="memory or sqlite (default: the file's).",
                                              show_default=False)] = None,
    json_output: JsonOption = False,
) -> None:
    """Play scenarios and report each step; exit 1 if an expectation fails."""
    from sessionflow.scenarios import run_scenario

    register_lifecycles(globals_of(ctx).lifecycles)
    as_json = json_output or globals_of(ctx).json
    failed = False
    for file in files:
        report = run_scenario(file, store=store)
        failed = failed or not report.ok
        if as_json:
            print(json.dumps({"scenario": report.name, "file": str(file), "ok": report.ok,
                              "steps": [{"index": s.index, "step": s.step, "ok": s.ok, "expectation": s.expectation,
                                         "message": s.message} for s in report.steps]}))
            continue
        for step in report.steps:
            mark = "ok  " if step.ok else "FAIL"
            print(f"{mark} {step.index:3d}. {step.step}" + (f"  — {step.message}" if not step.ok else ""))
        print(report.summary())
    if failed:
        raise typer.Exit(int(ExitCode.FAILURE))
