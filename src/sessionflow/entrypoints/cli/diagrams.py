"""The ``diagram`` command: a lifecycle drawn from its state machine, optionally with the sessions per state.

Owns :class:`DiagramCommands`, :class:`DiagramFormat` and the command's typer function.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sessionflow.entrypoints.cli.context import CommandContext
from sessionflow.entrypoints.cli.errors import CliError, ExitCode
from sessionflow.entrypoints.cli.options import DbOption, JsonOption
from sessionflow.entrypoints.cli.render import escape
from sessionflow.entrypoints.cli.running import handled, open_commands, register_lifecycles

__all__ = ["DiagramCommands", "DiagramFormat", "diagram"]


class DiagramCommands(CommandContext):
    """Drawing a lifecycle, with the number of sessions in each of its states if asked."""

    def counts(self) -> dict[str, int]:
        """Sessions per state (deleted ones excluded), after expiring the overdue ones as reads do."""
        from sessionflow import SessionStatus

        manager = self.manager
        manager.expire_sessions()
        return {status.value: manager.count(status) for status in SessionStatus}

    def diagram(self, fmt: str = "mermaid", *, output: Path | None = None, counts: bool = False,
                lifecycle: str | None = None) -> bytes:
        """Render a lifecycle (a registered one's name, or a YAML/JSON file; default: the session lifecycle)
        in ``fmt`` to ``output`` or stdout; returns the rendered bytes."""
        from sessionflow import diagram

        graph = None
        if lifecycle is not None:
            if Path(lifecycle).suffix.lower() in {".yaml", ".yml", ".json"}:
                (definition,) = register_lifecycles([lifecycle])
            else:
                from sessionflow.domain.definitions import default_registry

                definition = default_registry().get(lifecycle)
            graph = diagram.lifecycle_graph(definition.machine)
        numbers = self.counts() if counts else None
        try:
            data = diagram.render(fmt, graph, counts=numbers)
        except diagram.DiagramUnavailable as error:
            raise CliError(str(error), code="unavailable", exit_code=ExitCode.USAGE) from None
        if output is not None:
            output.write_bytes(data)
            if self.out.json:
                self.out.document({"format": fmt, "path": str(output), "bytes": len(data), "counts": numbers})
            else:
                self.out.info(f"wrote {escape(str(output))} ({fmt}, {len(data)} bytes)")
        elif self.out.json:
            if fmt == "png":
                raise CliError("--format png with --json needs --output FILE", code="usage", exit_code=ExitCode.USAGE)
            self.out.document({"format": fmt, "source": data.decode("utf-8"), "counts": numbers})
        elif fmt == "png":
            if sys.stdout.isatty():
                raise CliError("refusing to write a PNG to a terminal: give --output FILE or redirect",
                               code="usage", exit_code=ExitCode.USAGE)
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()
        return data


class DiagramFormat(StrEnum):
    """The formats ``diagram --format`` can draw."""

    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"
    PNG = "png"


@handled
def diagram(
    ctx: typer.Context,
    fmt: Annotated[DiagramFormat, typer.Option(
        "--format", help="mermaid and dot need nothing; svg and png need Graphviz's dot.")] = DiagramFormat.MERMAID,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="Write to FILE instead of stdout.", show_default=False)] = None,
    counts: Annotated[bool, typer.Option("--counts", help="Annotate each state with its sessions in --db.")] = False,
    of: Annotated[str | None, typer.Option(
        "--of", metavar="LIFECYCLE", help="A registered lifecycle's name, or a YAML/JSON lifecycle file.",
        show_default=False)] = None,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Draw a lifecycle (default: the session lifecycle) from its state machine's definition."""
    with open_commands(ctx, DiagramCommands, db=db, json_output=json_output) as cli:
        cli.diagram(fmt.value, output=output, counts=counts, lifecycle=of)
