"""Where a process spends its time under a benchmark's load: py-spy samples of the thread holding the GIL,
folded into named parts.

``py-spy record --gil --format raw`` (a sampling profiler in a process of its own: the profiled process runs
unchanged) writes one line per distinct stack with its sample count. :func:`sample` takes them for a while;
:func:`breakdown` gives each stack to the first part (in the order they are listed, the most specific first)
whose rule matches one of its frames — so a JSON encoder called by the response code counts for the
response, and the server's own frames below a request's handler do not take the handler's time. Only the
thread holding the GIL is sampled: the figures are the Python work (interpreter time), not the waits for the
database or the network, during which another thread runs.

Needs ``py-spy`` (the ``dev`` extra) and the right to trace the process (root, or ``ptrace_scope`` 0); without
either, :func:`available` says why and the benchmarks leave the profile out.
"""

from __future__ import annotations

import linecache
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HTTP_PARTS", "WRITE_PARTS", "Part", "Profile", "available", "breakdown", "sample", "table"]

#: Samples per second.
RATE = 250


@dataclass(frozen=True)
class Part:
    """A named part of the work: a stack belongs to it when one of ``markers`` is in one of its frames — and,
    with ``calls``, when that frame's source line holds one of them (the line a frame is at tells a driver call
    from the Python around it: a profiler that reads Python stacks sees the C call as its caller's line)."""

    name: str
    markers: tuple[str, ...]
    calls: tuple[str, ...] = ()

    def matches(self, frame: str) -> bool:
        if not any(m in frame for m in self.markers):
            return False
        return not self.calls or any(call in _source_line(frame) for call in self.calls)


def _source_line(frame: str) -> str:
    """The source line a py-spy frame (``function (path:line)``, full file names) is at; "" when unknown."""
    location = frame.rpartition(" (")[2].rstrip(")")
    path, _, line = location.rpartition(":")
    return linecache.getline(path, int(line)) if line.isdigit() else ""


#: A request of the HTTP service, from the socket to the answer (the most specific first).
HTTP_PARTS = (
    Part("the response (serialisation and sending)", ("_session_response", "starlette/responses.py",
                                                      "serialize_response", "jsonable_encoder", "model_dump")),
    Part("the store (SQL, driver calls)", ("sessionflow/adapters/sqlalchemy/", "sessionflow/adapters/redis/",
                                           "psycopg/", "psycopg_pool/", "sqlalchemy/", "benchmarks/http_ceilings.py")),
    Part("the manager (validation, decision, events)", ("sessionflow/application/", "sessionflow/domain/")),
    Part("metrics and tracing wrappers", ("sessionflow/adapters/metrics.py", "opentelemetry/",
                                          "sessionflow/application/tracing.py")),
    Part("FastAPI: dependencies, body parsing and validation", ("fastapi/dependencies/", "Request.body",
                                                                "Request.json", "email/")),
    Part("the threadpool hop (sync handler)", ("anyio/to_thread.py", "starlette/concurrency.py", "queue.py",
                                               "anyio/_backends/", "threading.py")),
    Part("sessionflow's routes and auth", tuple(f"sessionflow/entrypoints/http/{m}" for m in (
        "routers/", "auth", "principals", "access", "idempotency"))),
    Part("routing and middlewares (Starlette, FastAPI, sessionflow's body limit)", ("starlette/", "fastapi/",
                                                                                     "sessionflow/entrypoints/http/")),
    Part("HTTP server and event loop (uvicorn, h11, asyncio)", ("uvicorn/", "h11/", "asyncio/", "selectors.py")),
)

#: A write of the library (the lifecycle benchmarks' create, start, complete), by innermost frame.
WRITE_PARTS = (
    Part("the driver call (sqlite3 / psycopg, and the database's own work)", ("sessionflow/adapters/",
                                                                              "benchmarks/raw_sql.py"),
         calls=("execute(", "executemany(", "executescript(", "fetchone(", "fetchall(", "commit(")),
    Part("the driver call (sqlite3 / psycopg, and the database's own work)", ("psycopg/", "sqlite3/")),
    Part("JSON encoding", ("compact_json", "json/encoder", "json/__init__", "domain/_compat.py", "payload_text")),
    Part("row building and the store's frame", ("sessionflow/adapters/", "benchmarks/raw_sql.py")),
    Part("validation (arguments, metadata)", ("sessionflow/application/validation", "sessionflow/domain/values")),
    Part("the decision (the compiled lifecycle)", ("sessionflow/domain/decision", "sessionflow/domain/lifecycle",
                                                   "sessionflow/domain/definitions", "statemachine/")),
    Part("event and state building", ("sessionflow/domain/", "application/pipeline", "application/commands",
                                      "/uuid.py", "/datetime.py")),
    Part("the manager's frame (delivery, keys, wrappers)", ("sessionflow/",)),
)


def available() -> str | None:
    """``None`` when py-spy can sample here, else why not."""
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        return "py-spy is not installed (the dev extra)"
    if sys.platform != "linux":
        return "py-spy sampling is set up for Linux only here"
    if os.geteuid() != 0:
        scope = Path("/proc/sys/kernel/yama/ptrace_scope")
        if scope.exists() and scope.read_text().strip() != "0":
            return "tracing another process needs root or kernel.yama.ptrace_scope = 0"
    return None


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else str(shutil.which("py-spy"))


@dataclass(frozen=True)
class Profile:
    """Samples of one process: ``stacks`` (frames, outermost first, and a count) over ``seconds``."""

    stacks: tuple[tuple[tuple[str, ...], int], ...]
    seconds: float
    rate: int = RATE

    @property
    def samples(self) -> int:
        return sum(count for _, count in self.stacks)

    def within(self, marker: str) -> Profile:
        """The stacks that run through a frame holding ``marker`` (e.g. the workload's function: one thread)."""
        return Profile(tuple((frames, count) for frames, count in self.stacks
                             if any(marker in frame for frame in frames)), self.seconds, self.rate)


def sample(pid: int, seconds: float, *, subprocesses: bool = False, gil: bool = True) -> Profile:
    """Sample ``pid`` (and its children with ``subprocesses``) for ``seconds``: the thread holding the GIL, or
    without ``gil`` every thread, waiting ones too (a thread inside a driver call that let the GIL go is
    sampled at its caller's line)."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "stacks.txt"
        command = [_py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                   "--rate", str(RATE), "--nonblocking", "--full-filenames", "--format", "raw", "--output", str(out)]
        if subprocesses:
            command.append("--subprocesses")
        command.append("--gil" if gil else "--idle")
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr[-500:]}")
        stacks = []
        for line in out.read_text(encoding="utf-8").splitlines():
            frames, _, count = line.rpartition(" ")
            if frames and count.isdigit():
                stacks.append((tuple(frames.split(";")), int(count)))
    return Profile(tuple(stacks), max(1, round(seconds)))


def breakdown(profile: Profile, parts: Sequence[Part], *, innermost: bool = False) -> Counter[str]:
    """Samples per part (``"other"``: no rule matched). A stack belongs to the first of ``parts`` that one of
    its frames matches (the parts are listed from the most specific: a request's stack holds the server's
    frames too); with ``innermost``, to the part of its innermost frame that matches a rule."""
    found: Counter[str] = Counter()
    for frames, count in profile.stacks:
        if innermost:
            part = next((p.name for frame in reversed(frames) for p in parts if p.matches(frame)), "other")
        else:
            part = next((p.name for p in parts if any(p.matches(frame) for frame in frames)), "other")
        found[part] += count
    return found


def table(columns: Sequence[tuple[str, Counter[str], float]], parts: Sequence[Part]) -> str:
    """A markdown table: a row per part, per column the sampled time per operation (µs) and its share.
    ``columns``: (heading, samples per part, operations in the sampled time)."""
    names = [*dict.fromkeys(p.name for p in parts), "other"]
    head = "| part | " + " | ".join(heading for heading, _, _ in columns) + " |"
    rows = [head, "|---|" + "---|" * len(columns)]
    for name in [*names, "total"]:
        cells = []
        for _, counts, operations in columns:
            samples = sum(counts.values()) if name == "total" else counts.get(name, 0)
            total = sum(counts.values()) or 1
            micros = samples / RATE / max(operations, 1) * 1e6
            cells.append(f"{micros:,.0f} µs ({100 * samples / total:.0f}%)")
        label = f"**{name}**" if name == "total" else name
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
