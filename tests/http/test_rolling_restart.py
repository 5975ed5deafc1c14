"""A rolling restart of two ``serve`` processes on one database, under a small load from clients that alternate
between them: each is stopped with SIGTERM (exit 0) and started again in turn, and no request is answered 5xx.

A request that cannot reach a stopped process (connection refused, or closed before it was sent) is counted
apart and sent to the other one, as a load balancer would."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.http.test_graceful_stop import Served

pytest.importorskip("uvicorn")

CLIENTS = 3


class Load:
    """Clients writing sessions (create, start, read) through two ports in turn until stopped."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.statuses: Counter[int] = Counter()
        self.unreachable = 0
        self.operations = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _send(self, clients: list[httpx.Client], turn: int, method: str, path: str,
              body: dict[str, str]) -> httpx.Response:
        for attempt in range(200):
            client = clients[(turn + attempt) % len(clients)]
            try:
                response = client.request(method, path, json=body if method == "POST" else None)
            except httpx.TransportError:
                with self._lock:
                    self.unreachable += 1
                time.sleep(0.02)
                continue
            with self._lock:
                self.statuses[response.status_code] += 1
            return response
        raise AssertionError(f"{method} {path}: no server reachable")

    def _client(self, number: int) -> None:
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for port in self.ports]
        turn = number
        try:
            while not self._stop.is_set():
                user = f"rolling-{number}-{turn}"
                created = self._send(clients, turn, "POST", "/sessions", {"performer_id": user, "user_id": user})
                turn += 1
                if created.status_code != 201:
                    self.failures.append(f"create: {created.status_code} {created.text}")
                    continue
                sid = created.json()["id"]
                started = self._send(clients, turn, "POST", f"/sessions/{sid}/start", {"performer_id": user})
                turn += 1
                read = self._send(clients, turn, "GET", f"/sessions/{sid}", {})
                turn += 1
                if started.status_code != 200 or read.status_code != 200 or read.json()["status"] != "in_progress":
                    self.failures.append(f"start/read: {started.status_code} {read.status_code} {read.text}")
                with self._lock:
                    self.operations += 1
        except BaseException as error:  # reported by the test
            self.failures.append(repr(error))
        finally:
            for client in clients:
                client.close()


def _more_operations(load: Load, than: int, *, at_least: int = 5, timeout: float = 60.0) -> int:
    """Wait until the load has done ``at_least`` more operations than ``than``; how many it has done."""
    deadline = time.monotonic() + timeout
    while load.operations < than + at_least and not load.failures:
        assert time.monotonic() < deadline, f"the load stalled at {load.operations} operations"
        time.sleep(0.1)
    return load.operations


def _restart(server: Served, url: str, cwd: Path) -> Served:
    server.terminate()
    code, err = server.wait(60)
    assert code == 0, err
    assert "Traceback" not in err
    return Served(url, cwd, "--drain", "1s", "--grace-period", "20s", port=server.port)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_rolling_restart_of_two_serve_processes_answers_no_5xx(backend: str, request: pytest.FixtureRequest,
                                                                 tmp_path: Path) -> None:
    url = (f"sqlite:///{tmp_path / 'rolling.db'}" if backend == "sqlite"
           else str(request.getfixturevalue("postgres_url")))
    first = Served(url, tmp_path, "--drain", "1s", "--grace-period", "20s")
    second = Served(url, tmp_path, "--drain", "1s", "--grace-period", "20s")
    servers = [first, second]
    try:
        with Load([first.port, second.port]) as load:
            done = [_more_operations(load, 0)]
            for index in range(len(servers)):
                servers[index] = _restart(servers[index], url, tmp_path)
                done.append(_more_operations(load, done[-1]))
        assert load.failures == []
        assert done[0] > 0
        assert done[-1] > done[0]
        assert not [status for status in load.statuses if status >= 500], load.statuses
    finally:
        for server in servers:
            server.kill()
