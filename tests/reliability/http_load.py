"""A bounded load run over the HTTP service: concurrent clients against a real uvicorn process on loopback.

Run it with ``python -m tests.reliability.http_load [--url DB_URL] [--clients N] [--requests N] [--seconds S]``
(the default database is a throwaway PostgreSQL). It starts ``uvicorn --factory
sessionflow.entrypoints.http:app_from_env`` on a free 127.0.0.1 port, drives it from ``--clients`` threads
mixing creates, transitions, reads and touches with short TTLs (so the waker expires some), prints
throughput and latency percentiles, then checks: no 5xx, no acknowledged write missing from its history,
contiguous versions, a clean ``verify``. Traffic goes to the loopback address only, and the run stops by
itself after ``--requests`` requests or ``--seconds`` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx

from sessionflow import SessionManager
from tests.reliability.checks import check_acknowledged, database

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class HttpLoadReport:
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    sessions: int = 0
    events: int = 0
    problems: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))] if data else 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (f"{self.requests} requests in {self.seconds:.2f} s = {rate:.0f} req/s; latency ms "
                f"p50 {self.percentile(0.5):.1f} p95 {self.percentile(0.95):.1f} p99 {self.percentile(0.99):.1f} "
                f"max {max(self.latencies_ms, default=0):.1f}; statuses {dict(sorted(self.statuses.items()))}; "
                f"5xx {self.server_errors}; transport errors {len(self.transport_errors)}; "
                f"{self.sessions} sessions, {self.events} events; problems {len(self.problems)}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(database_url: str, workdir: Path) -> Iterator[str]:
    """A uvicorn process serving sessionflow on a free loopback port; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "SESSIONFLOW_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT / "src")}
    env.pop("SESSIONFLOW_HTTP_TOKENS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "sessionflow.entrypoints.http:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited early: {process.stdout.read() if process.stdout else ''}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not become ready within 60 s")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def run_http_load(base: str, database_url: str, *, clients: int = 16, requests: int = 2000,
                  seconds: float = 60.0, seed: int = 3) -> HttpLoadReport:
    report = HttpLoadReport()
    lock = threading.Lock()
    ids: list[str] = []
    acked: Counter[str] = Counter()
    budget = iter(range(requests))
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        me = f"client-{n}"
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.monotonic() < deadline:
                with lock:
                    if next(budget, None) is None:
                        return
                    sid = rng.choice(ids) if ids else None
                roll = rng.random()
                began = time.perf_counter()
                try:
                    if sid is None or roll < 0.2:
                        response = http.post("/sessions", json={
                            "performer_id": me, "user_id": f"u{rng.randint(1, 20)}", "file_paths": ["a", "b"],
                            "ttl_seconds": rng.choice([1, 2, 3600])})
                        if response.status_code == 201:
                            with lock:
                                ids.append(response.json()["id"])
                                acked[response.json()["id"]] += 1
                        write = False
                    elif roll < 0.45:
                        response = http.get(f"/sessions/{sid}")
                        write = False
                    elif roll < 0.5:
                        response = http.get("/sessions", params={"user_id": f"u{rng.randint(1, 20)}", "limit": 20})
                        write = False
                    elif roll < 0.6:
                        response = http.post(f"/sessions/{sid}/start", json={"performer_id": me})
                        write = True
                    elif roll < 0.8:
                        response = http.post(f"/sessions/{sid}/notes",
                                             json={"performer_id": me, "file_path": "a", "status": "ok"})
                        write = True
                    elif roll < 0.9:
                        response = http.post(f"/sessions/{sid}/touch", json={"performer_id": me})
                        write = True
                    else:
                        response = http.post(f"/sessions/{sid}/files", json={"performer_id": me, "path": "a"})
                        write = True
                except httpx.TransportError as error:
                    with lock:
                        report.transport_errors.append(f"{type(error).__name__}: {error}")
                    continue
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    report.requests += 1
                    report.statuses[response.status_code] += 1
                    report.latencies_ms.append(elapsed)
                    if write and response.status_code == 200 and sid is not None:
                        acked[sid] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report.seconds = time.perf_counter() - started

    with SessionManager.open(database_url, migrate=False, cache_size=0) as manager:
        report.problems, report.events = check_acknowledged(manager, {UUID(k): v for k, v in acked.items()})
        report.sessions = len(acked)
    return report


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    with database(args.url) as url, tempfile.TemporaryDirectory() as tmp:
        SessionManager.open(url).close()  # migrate before serving
        with serve(url, Path(tmp)) as base:
            report = run_http_load(base, url, clients=args.clients, requests=args.requests, seconds=args.seconds)
    print(report.summary())
    for problem in (report.problems + report.transport_errors)[:20]:
        print("  ", problem)
    return 1 if report.problems or report.transport_errors or report.server_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
