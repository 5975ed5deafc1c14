"""``sessionflow serve`` and ``sessionflow worker`` configure the OpenTelemetry SDK from ``OTEL_*`` variables and
flush their spans when SIGTERM stops them; the service continues the trace of a request's ``traceparent`` through
FastAPI's own server span (one, not two), with sessionflow's operation spans below it. Real processes, read from
the console exporter's output."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sessionflow import SessionManager
from tests.support.postgres import free_port
from tests.support.serving import wait_until_serving
from tests.tracing.console import (
    PARENT_SPAN_ID,
    TRACE_ID,
    TRACEPARENT,
    ancestors,
    console_spans,
    otel_env,
    serve,
)

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]
pytest.importorskip("uvicorn")

#: Spans are batched for longer than the tests run: what the output holds was exported by the shutdown.
BATCHED = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "600000"}


@pytest.fixture
def stored(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    with SessionManager.open(url) as manager:
        return url, str(manager.create(user_id="alice", performer_id="alice").id)


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out, err


def test_serve_continues_the_requests_trace_under_fastapis_server_span(stored: tuple[str, str],
                                                                        tmp_path: Path) -> None:
    url, sid = stored
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(url, port, tmp_path, otel_env(**BATCHED, OTEL_SERVICE_NAME="sessions-api"))
    try:
        wait_until_serving(base, server)
        answer = httpx.get(f"{base}/sessions/{sid}", headers={"traceparent": TRACEPARENT}, timeout=10)
        assert answer.status_code == 200, answer.text
        out, _ = _stop(server)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    spans = [s for s in console_spans(out) if s["context"]["trace_id"] == f"0x{TRACE_ID}"]
    servers = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert len(servers) == 1, [s["name"] for s in spans]  # FastAPI's, and no second one
    [request] = servers
    assert request["parent_id"] == f"0x{PARENT_SPAN_ID}"
    assert request["attributes"]["http.route"] == "/sessions/{session_id}"
    [get] = [s for s in spans if s["name"] == "sessionflow.get"]
    assert request in ancestors(get, spans)
    assert get["attributes"]["sessionflow.session.id"] == sid
    assert get["resource"]["attributes"]["service.name"] == "sessions-api"


def test_worker_flushes_its_spans_when_sigterm_stops_it(stored: tuple[str, str], tmp_path: Path) -> None:
    url, _ = stored
    worker = subprocess.Popen([sys.executable, "-m", "sessionflow", "--db", url, "worker", "--json"],
                              cwd=tmp_path, env=otel_env(**BATCHED, TRACEPARENT=TRACEPARENT), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        assert worker.stderr is not None
        while "worker: expiring" not in worker.stderr.readline():  # its start line: the catch-up sweep is under way
            assert worker.poll() is None
            assert time.monotonic() < deadline
        time.sleep(1)
        out, _ = _stop(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    sweeps = [s for s in console_spans(out) if s["name"] in ("sessionflow.sweep", "sessionflow.expire_sessions")]
    assert sweeps, out[-2000:]  # the catch-up sweep of its start, exported by the shutdown
    assert all(s["parent_id"] != f"0x{PARENT_SPAN_ID}" for s in sweeps)  # a worker does not join the script's trace
