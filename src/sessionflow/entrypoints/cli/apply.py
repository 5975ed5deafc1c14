"""``sessionflow apply [FILE|-]``: writes read as JSON lines, each answered by one JSON line, in one process.

Each input line is one command, ``{"op": "start", "id": "...", "performer": "..."}``: ``op`` is a write of the
command line (:data:`OPS`: ``create``, ``start``, ``complete``, ``fail``, ``touch``, ``record-file``, ``note``,
``update``, ``delete``, ``send``), the other keys are its options spelled as in :data:`FIELDS` (``id``, the
options without their dashes, ``-`` written ``_``), plus ``performer`` (default: ``--performer``),
``expect_version`` and ``idempotency_key`` (``--idempotency-key``) for every write. The answer is the session as
``--json`` prints it (a ``create``'s carries the new id), or the error as ``--json`` reports it, with
``exit_code`` and ``exit_name``; an unknown op, an unknown key, a value of the wrong JSON type or a line that is
not a JSON object is a ``usage`` error. Blank lines are skipped.

Streaming: a line is answered before the next one is read, and every answer is written out (flushed) before
``apply`` waits for more input, so a program at the other end of two pipes can read each answer — a new session's
id — before it writes the next line; while further lines are already at hand, their answers go out together. With
``--batch-size N`` consecutive creates (``create_many``) and consecutive lifecycle events (``start``,
``complete``, ``fail``, ``send``: ``send_many``) of one performer share a transaction, up to ``N`` at a time; a
batch is also cut when no further line can be read without waiting, so streaming still works. A batch refused
for one of its items (``BatchRejected``) is applied again line by line, so every line gets the answer it would
get alone. A line's ``idempotency_key`` is its item's key in a batch, or its own write's key alone; answered from
its stored key, its answer is the first run's and ``replayed: line N: …`` goes to stderr. Owns
:class:`ApplyCommands` and the command's typer function.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

from sessionflow.entrypoints.cli.context import CommandContext
from sessionflow.entrypoints.cli.errors import CliError, ExitCode, error_document, one_line
from sessionflow.entrypoints.cli.options import DbOption, JsonOption, PerformerOption
from sessionflow.entrypoints.cli.render import dumps, session_json
from sessionflow.entrypoints.cli.running import handled, open_commands
from sessionflow.entrypoints.cli.streams import LineReader

if TYPE_CHECKING:
    from sessionflow import Session, SessionManager
    from sessionflow.application.idempotency import IdempotencyKey

__all__ = ["FIELDS", "OPS", "ApplyCommands", "ApplyResult", "apply"]

_COMMON = ("op", "performer", "expect_version", "idempotency_key")
#: The keys each op takes besides ``op``, ``performer``, ``expect_version`` and ``idempotency_key``.
FIELDS: dict[str, tuple[str, ...]] = {
    "create": ("user", "workspace", "module", "files", "metadata", "ttl", "lifecycle", "start"),
    "start": ("id",),
    "complete": ("id",),
    "fail": ("id", "reason"),
    "touch": ("id",),
    "record-file": ("id", "path", "error"),
    "note": ("id", "file", "status", "memory_id"),
    "update": ("id", "current_file", "metadata", "status", "reason"),
    "delete": ("id",),
    "send": ("id", "event", "args"),
}
#: The ops ``apply`` runs: every write of the command line.
OPS = tuple(FIELDS)
#: At most this many answers wait for input to run out before they are written.
_MAX_WAITING = 256
#: The lifecycle events that ``--batch-size`` sends through ``send_many``.
_EVENTS = {"start": "start", "complete": "complete", "fail": "fail"}


def _usage(message: str) -> CliError:
    return CliError(message, code="usage", exit_code=ExitCode.USAGE)


@dataclass(frozen=True)
class Line:
    """One input line read as a command: its op, its performer and its other keys (checked)."""

    number: int
    op: str
    performer: str
    fields: Mapping[str, Any]

    @property
    def key(self) -> str | None:
        """The line's ``idempotency_key`` (``None`` without one)."""
        return self.fields.get("idempotency_key")

    @property
    def batch_kind(self) -> str | None:
        """``create`` or ``send`` when the line may share a batch with its neighbours of the same kind (``None``:
        applied alone)."""
        if self.op == "create":
            return "create"
        return "send" if self.op in _EVENTS or self.op == "send" else None


def _string(fields: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = fields.get(key)
    if value is None:
        if required:
            raise _usage(f"{key!r} is required")
        return None
    if not isinstance(value, str):
        raise _usage(f"{key!r} must be a string, not {type(value).__name__}")
    return value


def _object(fields: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, dict):
        raise _usage(f"{key!r} must be a JSON object, not {type(value).__name__}")
    return value


def parse_line(raw: bytes, number: int, default_performer: str) -> Line:
    """The command of one input line; a :class:`CliError` (usage, exit 2) says what is wrong with it."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than the parser goes
        raise _usage(f"line {number} is not JSON: {one_line(str(error))[:200]}") from None
    if not isinstance(data, dict):
        raise _usage(f"line {number}: expected a JSON object with an \"op\", got {type(data).__name__}")
    op = data.get("op")
    if not isinstance(op, str) or op not in FIELDS:
        known = ", ".join(OPS)
        raise _usage(f"line {number}: unknown op {str(op)[:40]!r} (one of: {known})")
    unknown = sorted(str(key) for key in data if key not in _COMMON and key not in FIELDS[op])
    if unknown:
        raise _usage(f"line {number}: {op} takes no {unknown[0][:40]!r} (it takes: "
                     f"{', '.join(FIELDS[op] + _COMMON[1:])})")
    performer = _string(data, "performer") or default_performer
    expected = data.get("expect_version")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
        raise _usage(f"line {number}: 'expect_version' must be an integer")
    key = data.get("idempotency_key")
    if key is not None and not isinstance(key, str):
        raise _usage(f"line {number}: 'idempotency_key' must be a string, not {type(key).__name__}")
    if op != "create":
        _string(data, "id", required=True)
    return Line(number, op, performer, data)


def _ttl(value: Any) -> Any:
    if value is None:
        return None
    from sessionflow.domain.durations import parse_duration
    from sessionflow.errors import InvalidInput

    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _usage(f"'ttl' must be a duration (\"15m\") or a number of seconds, not {type(value).__name__}")
    try:
        return parse_duration(value, "ttl")
    except InvalidInput as error:
        raise _usage(f"invalid ttl: {error.problem}") from None


def _create_arguments(fields: Mapping[str, Any]) -> dict[str, Any]:
    files = fields.get("files")
    if files is not None and not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
        raise _usage("'files' must be a list of strings")
    start = fields.get("start", False)
    if not isinstance(start, bool):
        raise _usage("'start' must be true or false")
    return {"user_id": _string(fields, "user"), "workspace_id": _string(fields, "workspace"),
            "module_name": _string(fields, "module"), "file_paths": files, "metadata": _object(fields, "metadata"),
            "ttl": _ttl(fields.get("ttl")), "lifecycle": _string(fields, "lifecycle"), "start": start}


def _send_item(line: Line) -> tuple[Any, ...]:
    """The ``send_many`` item of a lifecycle event line: ``(id, event, args, expected_version)``."""
    fields = line.fields
    if line.op == "send":
        event, args = _string(fields, "event", required=True), _object(fields, "args")
    elif line.op == "fail":
        event, args = "fail", {"reason": _string(fields, "reason") or ""}
    else:
        event, args = _EVENTS[line.op], None
    return fields["id"], event, args, fields.get("expect_version")


def run_line(manager: SessionManager, line: Line, key: IdempotencyKey | None = None) -> Session:
    """Apply one command to ``manager`` (under the idempotency ``key``, when given: the line's); returns the
    session as the write left it."""
    f, expected = line.fields, line.fields.get("expect_version")
    op = line.op
    common: dict[str, Any] = {"performer_id": line.performer, "idempotency_key": key}
    if op == "create":
        return manager.create(**common, **_create_arguments(f))
    sid = f["id"]
    common["expected_version"] = expected
    if op == "start":
        return manager.start(sid, **common)
    if op == "complete":
        return manager.complete(sid, **common)
    if op == "fail":
        return manager.fail(sid, reason=_string(f, "reason") or "", **common)
    if op == "touch":
        return manager.touch(sid, **common)
    if op == "delete":
        return manager.delete(sid, **common)
    if op == "record-file":
        return manager.record_file(sid, _string(f, "path", required=True) or "", _string(f, "error"), **common)
    if op == "note":
        return manager.add_note(sid, file_path=_string(f, "file", required=True) or "",
                                status=_string(f, "status", required=True) or "", memory_id=_string(f, "memory_id"),
                                **common)
    if op == "update":
        from sessionflow.application.manager import UNSET

        changes: dict[str, Any] = {name: f[name] for name in ("current_file", "metadata") if name in f}
        return manager.update(sid, current_file=changes.get("current_file", UNSET),
                              metadata=changes.get("metadata", UNSET), status=_string(f, "status"),
                              reason=_string(f, "reason"), **common)
    item = _send_item(line)
    return manager.send_with(item[0], item[1], item[2], **common)


@dataclass
class ApplyResult:
    """What ``apply`` did: how many lines were answered, how many with an error, and the first error's code."""

    applied: int = 0
    failed: int = 0
    first_error: ExitCode | None = None
    stopped: bool = False

    @property
    def exit_code(self) -> ExitCode:
        """0 when every line was applied, else the exit code of the first error."""
        return self.first_error if self.first_error is not None else ExitCode.OK


@dataclass
class _Run:
    """One run of ``apply``: the answers, written in order, and the result kept.

    Answers wait in :attr:`waiting` while further input is at hand (the program at the other end is not waiting
    for them: it has written on) and go out, flushed, before ``apply`` would wait for input (:meth:`send`): a
    program that waits for an answer before writing its next line always gets it, with one write per burst.
    """

    write: Callable[[str], None]
    stop_on_error: bool
    #: Notes on stderr that the line ``number`` was answered from its stored idempotency key.
    replayed: Callable[[str, int], None]
    result: ApplyResult = field(default_factory=ApplyResult)
    waiting: list[str] = field(default_factory=list)

    def ok(self, session: Session) -> None:
        self.result.applied += 1
        self.waiting.append(session_json(session))

    def error(self, error: BaseException, number: int | None = None) -> None:
        document = error_document(error)
        if number is not None:
            document["line"] = number
        self.result.failed += 1
        if self.result.first_error is None:
            self.result.first_error = ExitCode(document["exit_code"])
        self.waiting.append(dumps(document))
        if self.stop_on_error:
            self.result.stopped = True

    def send(self) -> None:
        """Write (and flush) the answers waiting."""
        if self.waiting:
            text = "\n".join(self.waiting)
            self.waiting.clear()
            self.write(text)


class ApplyCommands(CommandContext):
    """Applying a stream of writes, one answer per line."""

    def apply(self, stream: BinaryIO, *, stop_on_error: bool = False, batch_size: int | None = None) -> ApplyResult:
        """Apply every command of ``stream`` (JSON lines) in order, writing one answer per line; returns what was
        done. ``batch_size``: consecutive creates or lifecycle events share transactions of up to that many."""
        manager = self.manager  # opened (and its schema brought up to date) before the first line
        run = _Run(self.out.text, stop_on_error, lambda key, number: self.out.replayed(key, line=number))
        reader = LineReader(stream)
        pending: list[Line] = []
        batching = batch_size is not None and batch_size > 1
        try:
            for number, line in self._lines(reader):
                if isinstance(line, CliError) or not batching or line.batch_kind is None:
                    self._flush(manager, pending, run)  # answers keep the order of the lines
                    if run.result.stopped:
                        break
                    if isinstance(line, CliError):
                        run.error(line, number)
                    else:
                        self._single(manager, line, run)
                else:
                    if pending and (pending[0].batch_kind != line.batch_kind
                                    or pending[0].performer != line.performer):
                        self._flush(manager, pending, run)
                        if run.result.stopped:
                            break
                    pending.append(line)
                    if len(pending) >= (batch_size or 1) or not reader.ready():
                        self._flush(manager, pending, run)
                if run.result.stopped:
                    break
                if len(run.waiting) >= _MAX_WAITING or not reader.ready():
                    run.send()  # about to wait for input: every answer so far goes out first
            else:
                self._flush(manager, pending, run)
        finally:
            run.send()
        return run.result

    def _lines(self, reader: LineReader) -> Iterator[tuple[int, Line | CliError]]:
        """Each non-blank line with its number: its command, or the usage error that says what is wrong."""
        number = 0
        while (raw := reader.readline()) is not None:
            number += 1
            if not raw.strip():
                continue
            try:
                yield number, parse_line(raw, number, self.performer)
            except CliError as error:
                yield number, error

    def _single(self, manager: SessionManager, line: Line, run: _Run) -> None:
        key = self.idempotency_key(line.key)
        try:
            session = run_line(manager, line, key)
        except Exception as error:
            run.error(error, line.number)
        else:
            run.ok(session)
            if key is not None and key.replayed:
                run.replayed(key.key, line.number)

    def _flush(self, manager: SessionManager, pending: list[Line], run: _Run) -> None:
        """Apply the lines of ``pending`` as one batch (then empty it); line by line when one is refused."""
        if not pending:
            return
        batch = list(pending)
        pending.clear()
        if len(batch) == 1:
            self._single(manager, batch[0], run)
            return
        from sessionflow.errors import BatchRejected

        keys = [self.idempotency_key(line.key) for line in batch]
        try:
            sessions = self._batch(manager, batch, keys)
        except (BatchRejected, CliError):  # nothing was written: each line gets the answer it gets alone
            for line in batch:
                if run.result.stopped:
                    return
                self._single(manager, line, run)
            return
        except Exception as error:  # the store failed: no line was applied (or, OutcomeUnknown, maybe all)
            for line in batch:
                if run.result.stopped:
                    return
                run.error(error, line.number)
            return
        for line, key, session in zip(batch, keys, sessions, strict=True):
            run.ok(session)
            if key is not None and key.replayed:
                run.replayed(key.key, line.number)

    @staticmethod
    def _batch(manager: SessionManager, batch: Sequence[Line], keys: Sequence[IdempotencyKey | None]) -> list[Session]:
        """The lines of ``batch`` in one transaction, each under its key (``keys``, in line order)."""
        performer = batch[0].performer
        if batch[0].batch_kind == "create":
            return manager.create_many([{**_create_arguments(line.fields), "idempotency_key": key}
                                        for line, key in zip(batch, keys, strict=True)], performer_id=performer)
        return manager.send_many([(*_send_item(line), key) for line, key in zip(batch, keys, strict=True)],
                                 performer_id=performer)


@handled
def apply(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="[FILE|-]", help="JSON lines to apply (default -: stdin).",
                                          show_default=False)] = "-",
    stop_on_error: Annotated[bool, typer.Option(
        "--stop-on-error", help="Stop at the first line that fails (its exit code is the command's).")] = False,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", "--batch", metavar="N", min=1, max=10_000, show_default=False,
        help="Consecutive creates, or lifecycle events, of one performer share a transaction, N at most.")] = None,
    db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False,
) -> None:
    """Apply writes read as JSON lines ({"op": "start", "id": ...}), one JSON answer per line.

    Ops: create, start, complete, fail, touch, record-file, note, update, delete, send; any line may carry an
    "idempotency_key" (such a line is applied alone, never batched). Each line is answered before the next is
    read. Exit status: 0 when every line was applied, else the first error's exit code.
    """
    with contextlib.ExitStack() as files:
        stream: BinaryIO = sys.stdin.buffer
        if source != "-":
            try:
                stream = files.enter_context(Path(source).open("rb", buffering=0))
            except OSError as error:
                raise CliError(f"cannot read {source!r}: {error.strerror or error}", code="usage",
                               exit_code=ExitCode.USAGE) from None
        cli = files.enter_context(open_commands(ctx, ApplyCommands, db=db, performer=performer,
                                                json_output=json_output))
        result = cli.apply(stream, stop_on_error=stop_on_error, batch_size=batch_size)
    if result.exit_code != ExitCode.OK:
        raise typer.Exit(int(result.exit_code))
