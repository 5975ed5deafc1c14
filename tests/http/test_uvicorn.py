"""The service in a real ``uvicorn`` process on a loopback port, built by ``app_from_env`` as ``serve`` does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 65536


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    env = {**os.environ,
           "SESSIONFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}",
           "SESSIONFLOW_HTTP_TOKENS": json.dumps({"tok-alice": "alice", "tok-bob": "bob", "tok-ops": {
               "service": "ops", "scopes": ["sessions:read", "sessions:write", "sessions:admin"]}}),
           "SESSIONFLOW_HTTP__MAX_BODY_BYTES": str(LIMIT),
           "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "sessionflow.entrypoints.http:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"uvicorn exited early ({process.returncode}):\n{output}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("uvicorn did not answer within 30 s")
            time.sleep(0.05)
        yield base, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_real_http_calls_against_uvicorn(server: tuple[str, subprocess.Popen[str]]) -> None:
    base, process = server
    alice = {"Authorization": "Bearer tok-alice"}
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/readyz").json() == {"status": "ready"}
        assert http.get("/sessions").status_code == 401

        created = http.post("/sessions", json={"user_id": "alice", "file_paths": ["a.csv"]}, headers=alice)
        assert created.status_code == 201
        sid = created.json()["id"]
        assert http.post(f"/sessions/{sid}/start", headers=alice).json()["status"] == "in_progress"
        assert http.post(f"/sessions/{sid}/files", json={"path": "a.csv"}, headers=alice).status_code == 200
        stale = http.post(f"/sessions/{sid}/complete", headers={**alice, "If-Match": '"2"'})
        assert stale.status_code == 412
        done = http.post(f"/sessions/{sid}/complete", headers={**alice, "If-Match": '"3"'})
        assert done.json()["status"] == "completed"
        started = http.post("/session_manager/sessions.start", json={"user_id": "alice"}, headers=alice)
        assert started.status_code == 200
        assert [e["event"] for e in http.get(f"/sessions/{sid}/history", headers=alice).json()["events"]] == [
            "created", "started", "file_recorded", "completed"]

        # The timeout waker runs inside the server: a 1-second session expires with nobody reading it.
        short = http.post("/sessions", json={"user_id": "alice", "ttl_seconds": 1}, headers=alice).json()["id"]
        deadline = time.monotonic() + 15
        while 'sessionflow_transitions_total{event="expired"' not in http.get("/metrics").text:
            assert time.monotonic() < deadline, "the waker did not expire the session"
            time.sleep(0.1)
        metrics = http.get("/metrics").text
        assert 'sessionflow_sessions{status="completed"} 1.0' in metrics
        assert "sessionflow_expiry_lateness_seconds_count 1.0" in metrics
        expired = http.get(f"/sessions/{short}/history", headers=alice).json()["events"][-1]
        assert (expired["event"], expired["performer_id"]) == ("expired", "system")
        bob, ops = {"Authorization": "Bearer tok-bob"}, {"Authorization": "Bearer tok-ops"}
        assert http.get(f"/sessions/{sid}", headers=bob).status_code == 404
        assert http.get("/sessions", headers=bob).json()["items"] == []
        assert http.get("/sessions", params={"user_id": "alice"}, headers=bob).status_code == 403
        assert len(http.get("/sessions", headers=ops).json()["items"]) == 3
        assert http.get("/openapi.json").json()["info"]["title"] == "sessionflow"

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert "Application shutdown complete" in output, output
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output


def test_a_body_over_the_limit_is_413_from_the_real_server(server: tuple[str, subprocess.Popen[str]]) -> None:
    base, _ = server
    headers = {"Authorization": "Bearer tok-alice", "content-type": "application/json"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(LIMIT // 4096 + 4):
            yield b" " * 4096

    for content in (b" " * (LIMIT + 1), chunks()):
        with httpx.Client(base_url=base, timeout=10) as http:
            refused = http.post("/sessions", content=content, headers=headers)
            assert refused.status_code == 413
            assert refused.json()["code"] == "payload_too_large"
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/sessions", headers=headers).json()["items"] == []
