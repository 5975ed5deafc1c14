"""The HTTP service against its ceilings, under a real load generator (Debian's ``wrk``).

Three servers run side by side on loopback, each under uvicorn with the same number of worker processes,
the two writing ones on one fresh database (the schema created by sessionflow's migrations) — a PostgreSQL
database, then again on an SQLite file:

* (a) a bare FastAPI route returning a constant (``benchmarks/http_ceilings.py``: ``constant_app``);
* (b) bare FastAPI routes doing by hand the SQL the service does for create, start and complete — the
  one-statement-per-step pattern of ``benchmarks/raw_sql.py``, one psycopg connection per server thread
  (``raw_sql_app``); on SQLite, one ``BEGIN IMMEDIATE`` transaction per step on one ``sqlite3`` connection
  per thread (``raw_sqlite_app``) — on the service's paths, with its request bodies;
* (c) sessionflow's service as ``sessionflow serve --workers N`` runs it, without authentication on loopback.

``wrk`` (``benchmarks/wrk/http.lua``, one connection per wrk thread) drives each connection through
create → start → complete, reading the session's id from the ``201`` answer, so (b) and (c) cost three HTTP
requests per session; (a) is the same number of connections asking for the constant. Rounds are interleaved
(the servers wait idle while another is measured). Any answer other than the expected status, or any socket
error, fails the run. Access logs are off (``--log-level warning``) for every server. Afterwards a sample of
the completed sessions is read back through sessionflow (status, version and the fold of the history).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import sampling
from benchmarks.checks import reads_back
from benchmarks.environment import conninfo
from benchmarks.framework import TIMES, Benchmark, Context, Measurement, Section, Skipped, Target, format_duration
from benchmarks.http_ceilings import URL_ENV

__all__ = ["BENCHMARK"]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parent / "wrk" / "http.lua"
#: The worker count of the headline figures (the machine the figures in docs/ come from has 2 cores).
HEADLINE_WORKERS = 2
_READY_SECONDS = 60.0


@dataclass(frozen=True)
class Server:
    key: str  # "constant", "raw", "sessionflow"
    label: str
    mode: str  # the wrk script's mode: "get" or "lifecycle"
    command: tuple[str, ...]
    env: dict[str, str]
    port: int


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    sessions: int
    p50: float
    p99: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def sessions_per_second(self) -> float:
        return self.sessions / self.seconds


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _base_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _servers(url: str, workers: int, database: str) -> list[Server]:
    uvicorn = (sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1", "--workers", str(workers),
               "--log-level", "warning", "--no-access-log")
    suffix = f"{workers} worker" + ("s" if workers > 1 else "")
    constant_port, raw_port, ours_port = _free_port(), _free_port(), _free_port()
    sqlite = url.startswith("sqlite")
    raw = ("bare FastAPI + raw sqlite3", "raw_sqlite_app") if sqlite else ("bare FastAPI + raw psycopg",
                                                                            "raw_sql_app")
    return [
        Server("sessionflow", f"{database}: sessionflow serve, {suffix}", "lifecycle",
               (sys.executable, "-m", "sessionflow", "--db", url, "serve", "--workers", str(workers), "--port",
                str(ours_port), "--log-level", "warning"), _base_env(), ours_port),
        Server("raw", f"{database}: {raw[0]}, {suffix}", "lifecycle",
               (*uvicorn, "--port", str(raw_port), f"benchmarks.http_ceilings:{raw[1]}"),
               {**_base_env(), URL_ENV: url}, raw_port),
        Server("constant", f"{database} run: bare FastAPI constant route, {suffix}", "get",
               (*uvicorn, "--port", str(constant_port), "benchmarks.http_ceilings:constant_app"), _base_env(),
               constant_port),
    ]


@contextlib.contextmanager
def _database(ctx: Context, database: str) -> Iterator[str]:
    """A fresh database for the servers: a PostgreSQL database, or an SQLite file with sessionflow's schema
    (the raw routes write to it from their first request)."""
    if database == "PostgreSQL":
        with ctx.postgres.fresh_database("sfbench_http") as url:
            yield url
        return
    url = f"sqlite:///{ctx.workdir / 'http.db'}"
    from sessionflow import SessionManager

    SessionManager.open(url).close()
    yield url


def _wait_ready(server: Server, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + _READY_SECONDS
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{server.port}/openapi.json", timeout=2)
            return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{server.label} exited with {process.returncode} before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.label} did not answer within {_READY_SECONDS:.0f} s")
        time.sleep(0.1)


@contextlib.contextmanager
def _running(servers: Sequence[Server], workdir: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The servers started together (the raw routes need the schema sessionflow creates only once requests
    come, after every server answered), then stopped."""
    processes: list[tuple[Server, subprocess.Popen[bytes]]] = []
    try:
        for server in servers:
            log = (workdir / f"{server.key}-{server.port}.log").open("wb")
            process = subprocess.Popen(server.command, cwd=ROOT, env=server.env, stdout=log,
                                       stderr=subprocess.STDOUT)
            log.close()
            processes.append((server, process))
        for server, process in processes:
            _wait_ready(server, process)
        yield {server.key: process for server, process in processes}
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wrk(wrk: str, server: Server, *, connections: int, seconds: int) -> WrkRun:
    args = [wrk, "-t", str(connections), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
            "-s", str(SCRIPT), f"http://127.0.0.1:{server.port}", "--", server.mode]
    if server.mode == "get":
        args.append("/constant")
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {server.label} ({done.returncode}): {done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
    errors = {k: v for k, v in result["errors"].items() if v} | ({"failed steps": result["failed"]}
                                                                 if result["failed"] else {})
    if errors:
        raise AssertionError(f"{server.label}: unexpected answers or socket errors under load: {errors}")
    if result["requests"] <= 0 or (server.mode == "lifecycle" and result["sessions"] <= 0):
        raise AssertionError(f"{server.label}: nothing measured: {result}")
    return WrkRun(requests=int(result["requests"]), seconds=result["duration_us"] / 1e6,
                  sessions=int(result["sessions"]), p50=result["p50_us"] / 1e6, p99=result["p99_us"] / 1e6)


def _profile(ctx: Context, wrk: str, servers: Sequence[Server], processes: dict[str, subprocess.Popen[bytes]], *,
             connections: int, seconds: int) -> str | None:
    """Where a request's interpreter time goes at one worker, sessionflow's service beside the bare routes doing
    the same SQL: each server under the same wrk load once more, sampled by py-spy meanwhile
    (``benchmarks/sampling.py``)."""
    why = sampling.available()
    if why is not None:
        ctx.log(f"    no profile: {why}")
        return None
    columns = []
    for server in servers:
        if server.mode != "lifecycle":
            continue
        found: dict[str, WrkRun] = {}
        load = threading.Thread(target=lambda s=server, into=found: into.setdefault(
            "run", _wrk(wrk, s, connections=connections, seconds=seconds + 2)))
        load.start()
        time.sleep(1)
        profile = sampling.sample(processes[server.key].pid, seconds, subprocesses=True)
        load.join()
        requests = found["run"].requests_per_second * profile.seconds
        columns.append((f"{server.label} ({found['run'].requests_per_second:,.0f} requests/s)",
                        sampling.breakdown(profile, sampling.HTTP_PARTS), requests))
        ctx.log(f"    profiled {server.label}: {profile.samples:,} samples")
    return ("Where a request's interpreter time goes at one worker (py-spy, the thread holding the GIL, sampled "
            f"{sampling.RATE}/s for {seconds} s under the same wrk load; per request: a third of a session; "
            "waits on the database and the network are not in it):\n\n"
            + sampling.table(columns, sampling.HTTP_PARTS))


def _completed_sample(url: str, size: int) -> list[Any]:
    if url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            return [row[0] for row in db.execute(
                "SELECT id FROM sessions WHERE status = 'completed' ORDER BY random() LIMIT ?", (size,))]
    import psycopg

    with psycopg.connect(**conninfo(url), autocommit=True) as conn:
        rows = conn.execute("SELECT id FROM sessions WHERE status = 'completed' ORDER BY random() LIMIT %s",
                            (size,)).fetchall()
    return [row[0] for row in rows]


def _rate(per_second: float) -> str:
    return f"{per_second:,.0f}/s"


def run(ctx: Context) -> Section:
    section = Section(name="http", title="HTTP service against its ceilings", description=__doc__ or "")
    wrk = shutil.which("wrk")
    if wrk is None:
        raise Skipped("wrk is not installed (make wrk, or apt-get install wrk)")
    # A quick run (the test suite's smoke test) starts one process per server: seconds, not a dozen.
    worker_counts = ctx.scale((HEADLINE_WORKERS, 1), (1,))
    rounds = ctx.scale(3, 1)
    seconds = ctx.scale(8, 1)
    connections = ctx.scale(16, 4)
    rows: list[str] = []
    counted = 0
    profiles: list[str] = []
    for database in ("PostgreSQL", "SQLite"):
        with _database(ctx, database) as url:
            for workers in worker_counts:
                round_count = rounds if workers == worker_counts[0] else max(1, rounds - 1)
                servers = _servers(url, workers, database)
                runs: dict[str, list[WrkRun]] = {server.key: [] for server in servers}
                ctx.log(f"  {database}: {workers} uvicorn worker(s) per server, {connections} connections, "
                        f"{round_count} x {seconds} s per server")
                with _running(servers, ctx.workdir) as processes:
                    if not ctx.quick:  # warm-up: the pools fill, the code paths are hot
                        for server in servers:
                            counted += _wrk(wrk, server, connections=connections, seconds=2).sessions
                    for round_no in range(round_count):
                        shift = round_no % len(servers)
                        for server in servers[shift:] + servers[:shift]:
                            result = _wrk(wrk, server, connections=connections, seconds=seconds)
                            runs[server.key].append(result)
                            counted += result.sessions
                            ctx.log(f"    {server.label}: {_rate(result.requests_per_second)} requests"
                                    + (f", {_rate(result.sessions_per_second)} sessions" if result.sessions
                                       else "")
                                    + f", p50 {format_duration(result.p50)}, p99 {format_duration(result.p99)}")
                    if workers == 1:
                        profiled = _profile(ctx, wrk, servers, processes, connections=connections,
                                            seconds=seconds)
                        if profiled is not None:
                            profiles.append(f"{database}: {profiled}")
                measured = _record(section, servers, runs, workers, connections)
                for server in servers:
                    rs = runs[server.key]
                    sessions = (statistics.median(r.sessions_per_second for r in rs) if server.mode == "lifecycle"
                                else 0)
                    rows.append(f"| {server.label} | {_rate(statistics.median(r.requests_per_second for r in rs))} | "
                                + (f"{_rate(sessions)} | " if sessions else "n/a | ")
                                + f"{format_duration(statistics.median(r.p50 for r in rs))} | "
                                + f"{format_duration(statistics.median(r.p99 for r in rs))} |")
                ours, raw, constant = measured
                section.compare(ours["session"], raw["session"], "throughput",
                                Target(">=", 0.85, "issue 33: at 1 and at 2 workers"),
                                note=f"sessions/s, {workers} uvicorn worker(s) each")
                section.compare(ours["request"], constant["request"], "throughput",
                                note=f"requests/s, {workers} uvicorn worker(s) each; information")
            problems = reads_back(url, _completed_sample(url, ctx.scale(50, 5)))
            if problems:
                raise AssertionError(f"sessions written over HTTP do not read back ({database}): "
                                     + "; ".join(problems))
    section.blocks.append(
        "Median over the rounds of each server (p50/p99: wrk's latency percentiles of one request):\n\n"
        "| Server | requests/s | sessions/s | p50 | p99 |\n|---|---|---|---|---|\n" + "\n".join(rows))
    section.blocks.extend(profiles)
    section.notes.append(
        (f"Headline: {HEADLINE_WORKERS} uvicorn workers per server (`sessionflow serve --workers "
         f"{HEADLINE_WORKERS}`; `uvicorn --workers {HEADLINE_WORKERS}` for the bare apps); 1 worker is measured "
         "too, as information" if not ctx.quick else "Quick run: 1 uvicorn worker per server")
        + f". wrk: {connections} connections, one per wrk thread, {seconds} s per round; it runs on the same "
        f"{os.cpu_count()} cores as the servers and the database. PostgreSQL server: {ctx.postgres.origin}; "
        "SQLite: a file on the same disk, WAL, synchronous NORMAL (both sides).")
    section.notes.append(f"The service's sessions/s over the raw routes' is the ratio with the target (≥ 0.85{TIMES}, "
                         "at 1 and at 2 workers, each database); its requests/s over the constant route's is shown "
                         "as information.")
    section.notes.append(f"{counted:,} sessions went through create → start → complete over HTTP in this run; a "
                         "sample read back through sessionflow equal to the fold of their histories.")
    return section


def _record(section: Section, servers: Sequence[Server], runs: dict[str, list[WrkRun]], workers: int,
            connections: int) -> tuple[dict[str, Measurement], ...]:
    """For each server (in the order sessionflow, raw, constant): its requests (and sessions) as measurements."""
    found: list[dict[str, Measurement]] = []
    for server in servers:
        rs = runs[server.key]
        by_unit: dict[str, Measurement] = {
            "request": section.add(Measurement(f"{server.label}: requests", "request",
                                               tuple(1 / r.requests_per_second for r in rs),
                                               ops_per_round=rs[0].requests, threads=connections), "throughput"),
        }
        if server.mode == "lifecycle":
            by_unit["session"] = section.add(Measurement(f"{server.label}: sessions", "session",
                                                         tuple(1 / r.sessions_per_second for r in rs),
                                                         ops_per_round=rs[0].sessions, threads=connections),
                                             "throughput")
        found.append(by_unit)
    return tuple(found)


BENCHMARK = Benchmark(name="http", title="HTTP service against its ceilings", run=run, order=80,
                      needs_postgres=True,
                      summary="sessionflow serve (create+start+complete over HTTP, wrk) vs bare FastAPI with raw "
                              "psycopg / sqlite3 and a constant route, same uvicorn workers; profiles at one worker")
