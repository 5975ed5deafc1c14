"""The picture of one trace in docs/tracing.md is what three real processes make: a caller's span here (service
``orders``), its ``POST /sessions/{id}/start`` served by ``sessionflow serve`` (``sessions-api``) and the event it
committed, handled by ``sessionflow events --consumer mailer`` in a third process (``mailer``). The spans of the
two commands come from OpenTelemetry's console exporter, the caller's from the SDK's in-memory exporter; the
test draws them (:mod:`tests.tracing.waterfall`) and compares the drawing, timings aside, with the document's.

Run this module (``python -m tests.tracing.test_trace_picture``) to print a fresh picture for the document.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionflow import SessionManager
from tests.support.postgres import free_port
from tests.support.serving import wait_until_serving
from tests.tracing.console import console_spans, otel_env, serve
from tests.tracing.waterfall import render, shape

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "tracing.md"
#: The picture's block in the document: the fenced block after this line.
CAPTION = "<!-- the picture of one trace: tests/tracing/test_trace_picture.py -->"
_BATCHED = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "600000"}


def _sessionflow(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "sessionflow", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def one_trace(workdir: Path) -> list[dict[str, Any]]:
    """Run the three processes; every span of the caller's trace, as the console exporter writes spans."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import format_span_id, format_trace_id

    url = f"sqlite:///{workdir / 'orders.db'}"
    with SessionManager.open(url) as manager:
        sid = str(manager.create(user_id="alice", performer_id="alice").id)
    _sessionflow("--db", url, "events", "--consumer", "mailer", env=otel_env(), cwd=workdir)  # past the create
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "orders"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(url, port, workdir, otel_env(**_BATCHED, OTEL_SERVICE_NAME="sessions-api"))
    try:
        wait_until_serving(base, server)
        with provider.get_tracer("orders").start_as_current_span("handle order 7731") as caller:
            context = caller.get_span_context()
            traceparent = f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-01"
            answer = httpx.post(f"{base}/sessions/{sid}/start", headers={"traceparent": traceparent},
                                json={"performer_id": "alice"}, timeout=30)
            assert answer.status_code == 200, answer.text
        server.send_signal(signal.SIGTERM)
        served, err = server.communicate(timeout=60)
        assert server.returncode == 0, err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    handled = _sessionflow("--db", url, "events", "--consumer", "mailer", "--json", cwd=workdir,
                           env=otel_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="mailer"))
    trace_id = f"0x{format_trace_id(context.trace_id)}"
    mine = [json.loads(span.to_json()) for span in exporter.get_finished_spans()]
    provider.shutdown()
    return [span for span in mine + console_spans(served) + console_spans(handled.stdout)
            if span["context"]["trace_id"] == trace_id]


def documented() -> str:
    """The picture docs/tracing.md shows."""
    text = DOCUMENT.read_text(encoding="utf-8")
    found = re.search(re.escape(CAPTION) + r"\n```text\n(.*?)\n```", text, re.DOTALL)
    assert found, f"docs/tracing.md has no picture after {CAPTION!r}"
    return found.group(1)


def test_one_trace_runs_through_three_processes_and_the_document_shows_it(tmp_path: Path) -> None:
    spans = one_trace(tmp_path)
    by_service: dict[str, list[str]] = {}
    for span in spans:
        by_service.setdefault(span["resource"]["attributes"]["service.name"], []).append(span["name"])
    assert by_service["orders"] == ["handle order 7731"]
    assert {"sessionflow.start", "sessionflow.store.append"} <= set(by_service["sessions-api"])
    assert by_service["mailer"] == ["sessionflow.feed.process"]  # the start's event, and not the create's
    picture = render(spans)
    lines = shape(picture)
    depth = {line.split()[1]: len(line[14:]) - len(line[14:].lstrip()) for line in lines[2:]}
    # caller > FastAPI's server span > ... > sessionflow.start > the store's append; the handler under the start
    assert depth["handle"] == 0
    assert depth["sessionflow.store.append"] == depth["sessionflow.start"] + 2
    assert depth["sessionflow.feed.process"] == depth["sessionflow.start"] + 2
    assert lines[-1].startswith("mailer")  # the handler last: it ran after the request
    assert shape(documented()) == lines, f"docs/tracing.md's picture is not today's; paste:\n{picture}"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        print(render(one_trace(Path(directory))))
