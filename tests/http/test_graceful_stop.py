"""``sessionflow serve`` stopped by SIGTERM, as a real process: ``/readyz`` answers 503 first, a request in flight
gets its answer, an event stream ends cleanly, and the process exits 0 within its grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.locks import WriteLock
from tests.support.postgres import free_port
from tests.support.serving import wait_until_serving

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]
pytest.importorskip("uvicorn")


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "tester"
    return env


class Served:
    """One ``serve`` process on a loopback port."""

    def __init__(self, url: str, cwd: Path, *options: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sessionflow", "--db", url, "serve", "--port", str(self.port),
             "--log-level", "warning", *options],
            cwd=cwd, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until_serving(self.base, self.process)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> tuple[int, str]:
        _, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'served.db'}"


@pytest.fixture
def served(request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path) -> Iterator[Served]:
    options: tuple[str, ...] = getattr(request, "param", ())
    server = Served(sqlite_url, tmp_path, *options)
    try:
        yield server
    finally:
        server.kill()



def _post_in_background(base: str) -> tuple[threading.Thread, list[httpx.Response | BaseException]]:
    answers: list[httpx.Response | BaseException] = []

    def post() -> None:
        try:
            answers.append(httpx.post(f"{base}/sessions", json={"performer_id": "u1", "user_id": "u1"}, timeout=30))
        except BaseException as error:  # the test reports it
            answers.append(error)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, answers


@pytest.mark.parametrize("served", [("--drain", "2s", "--grace-period", "20s")], indirect=True)
def test_sigterm_flips_readiness_first_and_answers_the_request_in_flight(served: Served, tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "served.db")
    try:
        thread, answers = _post_in_background(served.base)
        time.sleep(0.5)  # the create waits for the lock: in flight
        assert not answers
        served.terminate()
        time.sleep(0.3)
        ready = httpx.get(f"{served.base}/readyz", timeout=5)  # during the drain: still served, not ready
        assert served.process.poll() is None
        assert (ready.status_code, ready.json()) == (503, {"status": "stopping"})
        health = httpx.get(f"{served.base}/healthz", timeout=5)
        assert health.status_code == 200
        assert health.headers["connection"] == "close"
    finally:
        lock.release()
    thread.join(30)
    assert len(answers) == 1
    answer = answers[0]
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 201
    code, err = served.wait(30)
    assert code == 0, err
    assert "Traceback" not in err
    with pytest.raises(httpx.ConnectError):  # stopped: nothing listens any more
        httpx.get(f"{served.base}/healthz", timeout=2)


@pytest.mark.parametrize("served", [("--grace-period", "20s",)], indirect=True)
def test_sigterm_ends_an_event_stream_cleanly(served: Served) -> None:
    lines: list[str] = []
    with httpx.stream("GET", f"{served.base}/events/stream", timeout=30) as response:
        assert response.status_code == 200
        stream = response.iter_lines()
        lines.append(next(stream))
        started = time.monotonic()
        served.terminate()
        lines.extend(stream)  # ends (no error) once the server closes the stream
    assert lines[0] == ": sessionflow event feed"
    assert ": stopping" in lines
    code, err = served.wait(30)
    assert code == 0, err
    assert time.monotonic() - started < 10  # not the grace period: the stream ended by itself
    assert "Traceback" not in err


@pytest.mark.parametrize("served", [("--grace-period", "2s",)], indirect=True)
def test_a_request_longer_than_the_grace_period_does_not_hold_the_stop(served: Served, tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "served.db")
    try:
        thread, answers = _post_in_background(served.base)
        time.sleep(0.5)
        started = time.monotonic()
        served.terminate()
        code, err = served.wait(20)
        elapsed = time.monotonic() - started
    finally:
        lock.release()
    thread.join(30)
    assert code == 0, err
    assert elapsed < 2 + 3, f"stopped after {elapsed:.1f} s with a 2 s grace period"
    assert answers
    assert not (isinstance(answers[0], httpx.Response) and answers[0].status_code < 500)


def test_the_drain_must_be_shorter_than_the_grace_period(sqlite_url: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sessionflow", "--db", sqlite_url, "serve", "--port", "0",
                             "--grace-period", "5s", "--drain", "5s"],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "drain_seconds" in result.stderr
    assert "grace_period_seconds" in result.stderr


@pytest.mark.parametrize("served", [("--workers", "2", "--drain", "2s", "--grace-period", "20s")], indirect=True)
def test_each_worker_process_of_serve_stops_the_same_way(served: Served) -> None:
    served.terminate()  # the serving process passes it on to its worker processes
    time.sleep(0.5)
    answers = {httpx.get(f"{served.base}/readyz", timeout=5).json()["status"] for _ in range(6)}
    assert served.process.poll() is None
    assert answers == {"stopping"}
    code, err = served.wait(30)
    assert code == 0, err
    assert "Traceback" not in err
