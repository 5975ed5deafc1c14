"""The long-running commands as real processes: ``worker`` stops cleanly on SIGINT, ``serve`` answers HTTP on a
loopback port and stops cleanly on SIGTERM (exit 0, no traceback)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "tester"
    return env


def _sessionflow(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sessionflow", *args], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_worker_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    worker = _sessionflow("--db", db, "worker", "--json", cwd=tmp_path)
    try:
        assert worker.stderr is not None
        first = worker.stderr.readline()  # written once the waker runs and the signal handlers are in place
        assert first.startswith("worker: expiring sessions of"), first
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert out == ""
    assert "worker stopped: 0 sessions expired" in err
    assert "Traceback" not in err


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), bytes(response.read())


def test_serve_answers_on_loopback_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    db = f"sqlite:///{tmp_path / 's.db'}"
    created = subprocess.run([sys.executable, "-m", "sessionflow", "--db", db, "create", "--user", "u1", "--json"],
                             cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60, check=True)
    session_id = json.loads(created.stdout)["id"]
    port = _free_port()
    server = _sessionflow("--db", db, "serve", "--port", str(port), "--log-level", "warning", cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _get(f"{base}/healthz")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "serve did not answer /healthz"
            time.sleep(0.1)
        status, body = _get(f"{base}/sessions/{session_id}")
        assert status == 200
        assert json.loads(body)["user_id"] == "u1"
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "Traceback" not in err
