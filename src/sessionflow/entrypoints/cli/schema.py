"""The ``schema`` command: the JSON Schema of lifecycle files or of scenario files, for editors.

Owns the command's typer function and :class:`SchemaKind`. The schemas are made from the pydantic models the
files are read with (:class:`sessionflow.loader.LifecycleDocument`, :class:`sessionflow.scenarios.ScenarioDocument`),
so an editor that knows them flags what loading would refuse: an unknown key, a value of the wrong type.
Those modules are imported when the command runs, not when the command line starts.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from sessionflow.entrypoints.cli.running import handled

__all__ = ["SchemaKind", "schema"]


class SchemaKind(StrEnum):
    """The files ``sessionflow schema`` describes."""

    LIFECYCLE = "lifecycle"
    SCENARIO = "scenario"


def schema_of(kind: SchemaKind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``kind`` files."""
    if kind is SchemaKind.LIFECYCLE:
        from sessionflow.loader import lifecycle_schema

        return lifecycle_schema()
    from sessionflow.scenarios import scenario_schema

    return scenario_schema()


@handled
def schema(
    ctx: typer.Context,
    kind: Annotated[SchemaKind, typer.Argument(help="lifecycle or scenario.", show_default=False)],
) -> None:
    """Print the JSON Schema of lifecycle or scenario files (for editors: save it and point your YAML
    extension at it)."""
    typer.echo(json.dumps(schema_of(kind), indent=2, ensure_ascii=False))
