"""``sessionflow serve --workers N``: several uvicorn processes serving one PostgreSQL database.

With the "one active session per user" policy on, many sessions of one user started at once from many
client threads, through both worker processes: exactly one start wins, every other one is a 409
``ActiveSessionExists`` — the policy is checked inside the database transaction, not in a process's memory.
The access log lines carry the pid of the worker that answered and the client's address: each client keeps
one connection, and the test opens connections until each worker holds as many (the kernel hands a new
connection to whichever worker accepts first), so both workers take part in the race. A store private to one
process (an in-memory database) is refused with exit 2.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.backends import reset_postgres
from tests.support.serving import wait_until_serving

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

WORKERS = 2
SESSIONS = 24
CLIENTS = 12
#: ``INFO:     [1234] 127.0.0.1:5678 - "POST /sessions/…/start HTTP/1.1" 409 Conflict``
ACCESS = re.compile(r'\[(?P<pid>\d+)\] \S+ - "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "tester"
    env.update(extra)
    return env


def _pid_of(port: int, access_lines: list[str], seconds: float = 5) -> str:
    """The pid of the worker that answered the request of the client at local ``port`` (its access log line)."""
    deadline = time.monotonic() + seconds
    needle = f"127.0.0.1:{port} - "
    while time.monotonic() < deadline:
        for line in list(access_lines):
            if needle in line and (match := ACCESS.search(line)) is not None:
                return match["pid"]
        time.sleep(0.01)
    raise AssertionError(f"no access log line for the client at port {port}: {access_lines[-5:]}")


def _connections_spread_over_workers(base: str, access_lines: list[str]) -> list[httpx.Client]:
    """``CLIENTS`` clients, one kept-alive connection each, ``CLIENTS / WORKERS`` of them held by each worker."""
    per_worker = CLIENTS // WORKERS
    held: dict[str, list[httpx.Client]] = collections.defaultdict(list)
    for _ in range(50 * CLIENTS):
        client = httpx.Client(base_url=base, timeout=30, limits=httpx.Limits(max_connections=1))
        answer = client.get("/healthz")
        assert answer.status_code == 200
        port = answer.extensions["network_stream"].get_extra_info("client_addr")[1]
        pid = _pid_of(port, access_lines)
        if len(held[pid]) < per_worker:
            held[pid].append(client)
        else:
            client.close()
        if len(held) == WORKERS and all(len(group) == per_worker for group in held.values()):
            return [client for group in held.values() for client in group]
    for group in held.values():
        for client in group:
            client.close()
    raise AssertionError(f"could not reach {WORKERS} workers: {({pid: len(g) for pid, g in held.items()})}")


def test_two_workers_on_postgres_start_exactly_one_session_per_user(postgres_url: str, tmp_path: Path) -> None:
    reset_postgres(postgres_url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "sessionflow", "--db", postgres_url, "serve", "--workers", str(WORKERS),
         "--port", str(port), "--log-level", "info"],
        cwd=tmp_path, env=_env(SESSIONFLOW_POLICIES__SINGLE_ACTIVE_PER_USER="true"), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    access_lines: list[str] = []
    reader = threading.Thread(target=lambda: access_lines.extend(server.stdout or ()), daemon=True)
    reader.start()
    clients: list[httpx.Client] = []
    try:
        wait_until_serving(base, server)
        with httpx.Client(base_url=base, timeout=30) as http:
            ids = []
            for _ in range(SESSIONS):
                created = http.post("/sessions", json={"user_id": "u1", "performer_id": "u1"})
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])
        clients = _connections_spread_over_workers(base, access_lines)
        barrier = threading.Barrier(CLIENTS)

        def start(client_no: int) -> list[httpx.Response]:
            http = clients[client_no]
            barrier.wait(timeout=10)  # every client leaves together
            return [http.post(f"/sessions/{sid}/start", json={"performer_id": "u1"})
                    for sid in ids[client_no::CLIENTS]]

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = [answer for batch in pool.map(start, range(CLIENTS)) for answer in batch]
        statuses = collections.Counter(a.status_code for a in answers)
        assert statuses == {200: 1, 409: SESSIONS - 1}, statuses
        refused = [a.json() for a in answers if a.status_code == 409]
        assert {body["error"] for body in refused} == {"ActiveSessionExists"}
        listed = clients[0].get("/sessions", params={"user_id": "u1", "status": "in_progress"}).json()["items"]
        winner = next(a.json()["id"] for a in answers if a.status_code == 200)
        assert [s["id"] for s in listed] == [winner]
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    finally:
        for client in clients:
            client.close()
        if server.poll() is None:
            server.kill()
            server.wait(10)
    reader.join(timeout=10)
    assert server.returncode == 0, err
    assert "Traceback" not in err
    assert f"{WORKERS} worker processes" in err
    starts = [m for m in (ACCESS.search(line) for line in access_lines)
              if m is not None and m["path"].endswith("/start")]
    assert len(starts) == SESSIONS, access_lines
    answered_by = collections.Counter(m["pid"] for m in starts)
    assert len(answered_by) == WORKERS, f"the starts were answered by {dict(answered_by)}"
    assert str(server.pid) not in answered_by  # the parent only supervises
    workers_started = set(re.findall(r"\[(\d+)\] Application startup complete", err))
    assert set(answered_by) == workers_started


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_several_workers_on_an_in_memory_database_are_refused(url: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sessionflow", "--db", url, "serve", "--workers", "2",
                           "--port", str(_free_port())], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--workers 2 needs a store the worker processes can share" in done.stderr
    assert "Traceback" not in done.stderr
