"""The command line: what one command costs from the shell, and `sessionflow apply`'s throughput.

* One command, one process: `sessionflow --help`, `create`, `start`, `complete` and `show` (their default,
  human-readable output, stdout a pipe) on an SQLite file whose schema is already up to date, beside
  `python -c pass` (the interpreter alone) and `python -c "import sqlalchemy, pydantic"` (the floor: a command
  goes through the manager and its store, so it cannot start before SQLAlchemy and pydantic are loaded). Each
  figure is the median of the runs, one run of each contender per round, their order rotating; the commands
  run as the console script, with the bytecode cache that an installed package has.
* `sessionflow apply`: one process reading JSON lines from a pipe — per session a `create`, then (once its
  answer gave the id) a `start` and a `complete`, 100 sessions at a time — and answering each line before it
  reads the next; timed from the first line after a warm-up line to the last answer. Beside it, raw `sqlite3`
  doing the same SQL work in one process (`benchmarks/raw_sql.py`), both at SQLite `NORMAL` on files whose
  schema sessionflow's migrations created. The same stream with `--batch-size 100` is shown as information.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from benchmarks.environment import load_average
from benchmarks.framework import Benchmark, Contender, Context, Measurement, Section, Target, format_duration
from benchmarks.raw_sql import RawSqliteLifecycle
from benchmarks.report import NONE
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]

_FLOOR = "python -c \"import sqlalchemy, pydantic\""
_PASS = "python -c pass"
_ISSUE = "CLI issue"
#: Sessions per exchange of the apply driver: their creates, then their starts and completes.
_CHUNK = 100


def _environment(workdir: Path) -> dict[str, str]:
    """The environment of the commands: no sessionflow settings, the bytecode cache on, a fixed performer."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("SESSIONFLOW_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["SESSIONFLOW_PERFORMER"] = "bench"
    env["HOME"] = str(workdir)
    return env


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("sessionflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sessionflow"]


class _Runner:
    """Runs one command line per call, checking its exit status."""

    def __init__(self, workdir: Path) -> None:
        self.env = _environment(workdir)
        self.cwd = str(workdir)

    def __call__(self, argv: list[str]) -> str:
        done = subprocess.run(argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[:500]}")
        return done.stdout


def _commands(ctx: Context, url: str, manager: SessionManager, run: _Runner) -> list[Contender]:
    cli = [*_console_script(), "--db", url]
    python = sys.executable
    pending: list[str] = []
    started: list[str] = []
    shown = str(manager.create(performer_id="bench", user_id="u1", module_name="bench").id)

    def repeat(argv: Callable[[], list[str]]) -> Callable[[int], None]:
        def body(n: int) -> None:
            for _ in range(n):
                run(argv())
        return body

    def prepare_pending(n: int) -> None:
        pending[:] = [str(manager.create(performer_id="bench").id) for _ in range(n)]

    def prepare_started(n: int) -> None:
        started[:] = [str(manager.start(manager.create(performer_id="bench").id, performer_id="bench").id)
                      for _ in range(n)]

    return [
        Contender(_PASS, "run", repeat(lambda: [python, "-c", "pass"])),
        Contender(_FLOOR, "run", repeat(lambda: [python, "-c", "import sqlalchemy, pydantic"])),
        Contender("sessionflow --help", "run", repeat(lambda: [*_console_script(), "--help"])),
        Contender("sessionflow create", "run", repeat(lambda: [*cli, "create", "--user", "u1"])),
        Contender("sessionflow start", "run", repeat(lambda: [*cli, "start", pending.pop()]), prepare=prepare_pending),
        Contender("sessionflow complete", "run", repeat(lambda: [*cli, "complete", started.pop()]),
                  prepare=prepare_started),
        Contender("sessionflow show", "run", repeat(lambda: [*cli, "show", shown])),
    ]


class _ApplyStream:
    """One ``sessionflow apply`` process fed through pipes; :meth:`run` times ``sessions`` sessions."""

    def __init__(self, url: str, run: _Runner, options: list[str]) -> None:
        self.process = subprocess.Popen([*_console_script(), "--db", url, "apply", *options], env=run.env,
                                        cwd=run.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self._stdin: IO[bytes] = self.process.stdin  # type: ignore[assignment]
        self._stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        self._exchange([b'{"op": "create", "user": "warm-up"}\n'])  # started, and its store open

    def _exchange(self, lines: list[bytes]) -> list[bytes]:
        """Write ``lines`` (each a JSON object and its newline), then read their answers."""
        self._stdin.write(b"".join(lines))
        self._stdin.flush()
        answers = [self._stdout.readline() for _ in lines]
        for line, answer in zip(lines, answers, strict=True):
            if not answer.startswith(b'{"id":'):
                raise AssertionError(f"apply refused {line!r}: {answer!r}")
        return answers

    def run(self, sessions: int) -> tuple[float, list[float]]:
        """Seconds for ``sessions`` sessions (3 lines each), and the rate of each exchange (transitions/s)."""
        rates: list[float] = []
        start = time.perf_counter()
        for first in range(0, sessions, _CHUNK):
            t0 = time.perf_counter()
            count = min(_CHUNK, sessions - first)
            created = self._exchange([b'{"op": "create", "user": "user-%03d", "workspace": "ws", "module": "bench"}\n'
                                      % ((first + i) % 100) for i in range(count)])
            ids = [answer[7:43] for answer in created]  # {"id":"<36 characters>",...
            done = self._exchange([b'{"op": "%s", "id": "%s"}\n' % (op, sid) for sid in ids
                                   for op in (b"start", b"complete")])
            if not all(b'"status":"completed"' in answer for answer in done[1::2]):
                raise AssertionError("apply did not complete every session")
            rates.append(3 * count / (time.perf_counter() - t0))
        return time.perf_counter() - start, rates

    def close(self) -> None:
        self._stdin.close()
        code = self.process.wait(timeout=60)
        if code != 0:
            raise AssertionError(f"apply exited {code}: {self.process.stderr.read().decode()[:500]}")  # type: ignore[union-attr]


def _apply(ctx: Context, section: Section, run: _Runner) -> None:
    sessions = ctx.scale(3334, 100)
    rounds = ctx.scale(3, 1)
    labels = {"plain": "sessionflow apply (a line answered before the next is read)",
              "batch": "sessionflow apply --batch-size 100 (information)",
              "raw": "raw sqlite3, same SQL in one process"}
    samples: dict[str, list[float]] = {key: [] for key in labels}
    steadiness: list[list[str]] = []
    for round_no in range(rounds):
        order = ["plain", "batch", "raw"] if round_no % 2 == 0 else ["raw", "batch", "plain"]
        for key in order:
            path = ctx.workdir / f"apply-{key}-{round_no}.db"
            SessionManager.open(f"sqlite:///{path}").close()  # the schema, from sessionflow's migrations
            if key == "raw":
                raw = RawSqliteLifecycle(str(path), "NORMAL")
                try:
                    t0 = time.perf_counter()
                    raw.run(sessions)
                    samples[key].append((time.perf_counter() - t0) / (3 * sessions))
                finally:
                    raw.close()
                continue
            stream = _ApplyStream(f"sqlite:///{path}", run, ["--batch-size", "100"] if key == "batch" else [])
            try:
                elapsed, rates = stream.run(sessions)
            finally:
                stream.close()
            samples[key].append(elapsed / (3 * sessions))
            half = len(rates) // 2 or 1
            steadiness.append([labels[key].split(" (")[0], str(round_no + 1), f"{3 * sessions:,}",
                               f"{3 * sessions / elapsed:,.0f}/s", f"{statistics.median(rates[:half]):,.0f}/s",
                               f"{statistics.median(rates[half:] or rates):,.0f}/s", f"{min(rates):,.0f}/s",
                               f"{max(rates):,.0f}/s"])
            with SessionManager.open(f"sqlite:///{path}", migrate=False) as check:
                if check.count("completed") != sessions:
                    raise AssertionError(f"{key}: {check.count('completed')} of {sessions} sessions completed")
        ctx.log(f"    round {round_no + 1}: " + ", ".join(
            f"{key} {1 / samples[key][-1]:,.0f} transitions/s" for key in labels))
    measured = {key: section.add(Measurement(labels[key], "transition", tuple(samples[key]),
                                             ops_per_round=3 * sessions), "throughput") for key in labels}
    section.compare(measured["plain"], measured["raw"], "throughput")
    section.compare(measured["batch"], measured["raw"], "throughput")
    section.goal(measured["plain"], "<=", 1 / 2000, source=f"{_ISSUE}: ≥ 2,000 transitions/s",
                 note="an absolute target: 2,000 transitions/s (500 µs/transition)")
    header = ["stream", "round", "lines", "overall", "1st half (median)", "2nd half (median)", "slowest 300 lines",
              "fastest 300 lines"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows += ["| " + " | ".join(row) + " |" for row in steadiness]
    section.blocks.append("Steadiness of `apply` over the stream (each exchange: 100 sessions, 300 lines):\n\n"
                          + "\n".join(rows))


def _verdicts(section: Section) -> str:
    """The section's comparisons and goals as one table (also in the report's summary)."""
    rows = ["| Measurement | Median | Against | Ratio | Target | |", "|---|---|---|---|---|---|"]
    for c in section.comparisons:
        kind = section.kinds.get(c.subject.label, c.kind)
        rows.append(f"| {c.subject.label} | {c.subject.describe(kind)} | {c.reference.label}: "
                    f"{c.reference.describe(kind)} | {c.ratio_text} | {c.target or NONE} | "
                    f"{NONE if c.met is None else 'met' if c.met else '**missed**'} |")
    for g in section.goals:
        kind = section.kinds.get(g.measurement.label, "latency")
        rows.append(f"| {g.measurement.label} | {g.measurement.describe(kind)} | {g.note} | {NONE} | {g} | "
                    f"{'met' if g.met else '**missed**'} |")
    return "Each command against the floor, and the absolute targets:\n\n" + "\n".join(rows)


def run(ctx: Context) -> Section:
    section = Section(name="cli", title="The command line", description=__doc__ or "")
    load_before = load_average()
    run_command = _Runner(ctx.workdir)
    path = ctx.workdir / "cli.db"
    url = f"sqlite:///{path}"
    run_command([*_console_script(), "--db", url, "db", "upgrade"])  # migrated before any command is timed
    rounds = ctx.scale(21, 3)
    with SessionManager.open(url) as manager:
        contenders = _commands(ctx, url, manager, run_command)
        ctx.log(f"  one command per process: {len(contenders)} contenders x {rounds} runs")
        results = ctx.measure(contenders, 1, rounds)
    floor = results[_FLOOR]
    for label in (_PASS, _FLOOR):
        section.add(results[label])
    help_run = section.add(results["sessionflow --help"])
    section.compare(help_run, results[_PASS], "latency")
    section.goal(help_run, "<=", 0.150, source=_ISSUE, note="an absolute target: --help within 150 ms")
    for command in ("create", "start", "complete", "show"):
        measurement = section.add(results[f"sessionflow {command}"])
        section.compare(measurement, floor, "latency", Target("<=", 1.3, _ISSUE))
    ctx.log("  apply: 10,000 lines from a pipe" if not ctx.quick else "  apply: 300 lines from a pipe")
    _apply(ctx, section, run_command)
    section.blocks.insert(0, _verdicts(section))
    load_after = load_average()
    section.notes.append(f"Load average (1 min) at the start and the end of this section: {load_before:.2f} / "
                         f"{load_after:.2f} on {os.cpu_count() or 0} cores.")
    section.notes.append(
        f"The floor, `{_FLOOR}`, imports SQLAlchemy whole but only pydantic's package root (pydantic loads its "
        f"models' machinery on first use); a command builds pydantic models and loads python-statemachine too. "
        f"`python -c pass` took {format_duration(results[_PASS].median)} per run.")
    return section


BENCHMARK = Benchmark(name="cli", title="The command line", run=run, order=95,
                      summary="one command per process beside the import floor; apply's transitions/s")
