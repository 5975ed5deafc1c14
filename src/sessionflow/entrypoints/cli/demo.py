"""The ``demo`` command: sessions driven down every path of the lifecycle, as a program would drive them.

Owns :class:`Demo` and the command's typer function. The demo calls the session, history and worker commands
(:class:`DemoCommands`) and prints each as the shell line that would run it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated
from uuid import UUID, uuid4

import typer

from sessionflow.entrypoints.cli.errors import CliError, error_document
from sessionflow.entrypoints.cli.history import HistoryCommands
from sessionflow.entrypoints.cli.options import DbOption, JsonOption
from sessionflow.entrypoints.cli.parsing import mask_url, parse_duration
from sessionflow.entrypoints.cli.render import escape
from sessionflow.entrypoints.cli.running import handled, open_commands
from sessionflow.entrypoints.cli.sessions import SessionCommands
from sessionflow.entrypoints.cli.worker import WorkerCommands

__all__ = ["Demo", "DemoCommands", "demo"]


class DemoCommands(SessionCommands, HistoryCommands, WorkerCommands):
    """The commands the demo drives: the session commands, ``history`` and ``worker``."""


class Demo:
    """``sessionflow demo``: drives sessions down every path of the lifecycle with the commands' methods,
    lets two of them time out through the worker, and shows their histories."""

    USER = "demo-user"

    def __init__(self, cli: DemoCommands, *, short_ttl: timedelta = timedelta(seconds=1)) -> None:
        self.cli = cli
        self.short_ttl = short_ttl
        self.workspace = f"demo-{uuid4().hex[:8]}"

    def say(self, text: str) -> None:
        """A line of explanation (not in JSON mode)."""
        if not self.cli.out.json:
            self.cli.out.print(text)

    def command(self, line: str) -> None:
        """The shell line of the command about to run (not in JSON mode)."""
        if not self.cli.out.json:
            self.cli.out.print(f"\n[dim]$[/] [bold]sessionflow {escape(line)}[/]")

    def refused(self, call: Callable[[], object]) -> None:
        """Run a command that the library refuses, showing the one-line error and exit code."""
        from sessionflow import SessionflowError

        try:
            call()
        except SessionflowError as error:
            if self.cli.out.json:
                self.cli.out.line(error_document(error))
            else:
                data = error_document(error)
                self.cli.out.print(f"[red]error:[/] {escape(data['message'])}  [dim](exit {data['exit_code']})[/]")
        else:  # pragma: no cover - the demo only calls this for refusals
            raise CliError("the demo expected a refusal")

    def run(self) -> dict[str, UUID]:
        """Play the demo; returns its sessions' ids by the path each took."""
        cli, ws, user = self.cli, self.workspace, self.USER
        cli.performer = user
        self.say(f"[bold]sessionflow demo[/] — sessions stored in {escape(mask_url(cli.url))} "
                 f"(workspace {ws}, performer {user})")

        self.say("\n[bold underline]1. Completed[/] — files recorded (one failed), a note, a touch")
        self.command(f"create --user {user} --workspace {ws} --module auth --file auth/login.py "
                     "--file auth/tokens.py --metadata '{\"ticket\": \"DEMO-1\"}'")
        done = cli.create(user=user, workspace=ws, module="auth", files=["auth/login.py", "auth/tokens.py"],
                          metadata={"ticket": "DEMO-1"})
        self.command(f"start {done.id}")
        cli.start(done.id)
        self.command(f"record-file {done.id} auth/login.py")
        cli.record_file(done.id, "auth/login.py")
        self.command(f"complete {done.id}      # too early: one file has no outcome yet")
        self.refused(lambda: cli.complete(done.id))
        self.command(f"record-file {done.id} auth/tokens.py --error 'parse error at line 12'")
        cli.record_file(done.id, "auth/tokens.py", error="parse error at line 12")
        self.command(f"note {done.id} --file auth/login.py --memory-id mem-1 --status stored")
        cli.note(done.id, file_path="auth/login.py", memory_id="mem-1", status="stored")
        self.command(f"touch {done.id}")
        cli.touch(done.id)
        self.command(f"complete {done.id}")
        cli.complete(done.id)

        self.say("\n[bold underline]2. Failed[/] — with a reason")
        self.command(f"create --user {user} --workspace {ws} --module billing --file billing/invoice.py")
        failing = cli.create(user=user, workspace=ws, module="billing", files=["billing/invoice.py"])
        self.command(f"start {failing.id}")
        cli.start(failing.id)
        self.command(f"fail {failing.id} --reason 'upstream service unavailable'")
        cli.fail(failing.id, reason="upstream service unavailable")
        self.command(f"start {failing.id}      # a failed session is final")
        self.refused(lambda: cli.start(failing.id))

        self.say("\n[bold underline]3. Deleted[/] — gone from show and list, its history kept")
        self.command(f"create --user {user} --workspace {ws} --module scratch")
        doomed = cli.create(user=user, workspace=ws, module="scratch")
        self.command(f"delete {doomed.id}")
        cli.delete(doomed.id)
        self.command(f"show {doomed.id}")
        self.refused(lambda: cli.show(doomed.id))

        ttl = self.short_ttl.total_seconds()
        self.say(f"\n[bold underline]4. Expired[/] — two sessions with a {ttl:g}-second TTL, expired by the worker")
        self.command(f"create --user {user} --workspace {ws} --module search --ttl {ttl:g}s")
        running = cli.create(user=user, workspace=ws, module="search", ttl=self.short_ttl)
        self.command(f"start {running.id}")
        cli.start(running.id)
        self.command(f"create --user {user} --workspace {ws} --module reports --ttl {ttl:g}s")
        idle = cli.create(user=user, workspace=ws, module="reports", ttl=self.short_ttl)
        wait = ttl + 1.5
        self.command(f"worker      # runs until Ctrl-C or SIGTERM; here it is stopped after {wait:g} s")
        cli.worker(duration=wait)

        ids = {"completed": done.id, "failed": failing.id, "deleted": doomed.id, "expired while in progress":
               running.id, "expired while pending": idle.id}
        self.say("\n[bold underline]5. Histories[/] — every change is an event, numbered by version")
        for name, session_id in ids.items():
            self.command(f"history {session_id}      # {name}")
            cli.history(session_id)
        self.say("\n[bold underline]6. This run's sessions[/]")
        self.command(f"list --workspace {ws}")
        cli.list(workspace=ws)
        self.say("\n[dim]Try: sessionflow show <id>, sessionflow list --status expired, "
                 "sessionflow diagram --counts, sessionflow --help[/]")
        self.say(f"[dim]See them in a browser: sessionflow --db {escape(mask_url(cli.url))} serve, then open "
                 "http://127.0.0.1:8000/ui (the console)[/]")
        return ids


@handled
def demo(
    ctx: typer.Context,
    ttl: Annotated[str, typer.Option("--ttl", metavar="DURATION", help="TTL of the sessions left to expire.")] = "1s",
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Drive sessions down every path (completed, failed, deleted, expired by the worker) and show histories."""
    with open_commands(ctx, DemoCommands, db=db, json_output=json_output) as cli:
        Demo(cli, short_ttl=parse_duration(ttl, "--ttl")).run()
