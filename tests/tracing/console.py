"""Reading what OpenTelemetry's console exporter wrote: each span as the JSON object the SDK prints, among the
command's own output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["TRACE_ID", "PARENT_SPAN_ID", "TRACEPARENT", "ancestors", "console_spans", "otel_env", "serve"]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


def console_spans(text: str) -> list[dict[str, Any]]:
    """The spans in ``text``: every JSON object in it that has a span's ``context``; anything else is skipped."""
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    index = 0
    while True:
        start = text.find("{", index)
        if start < 0:
            return spans
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(value, dict) and isinstance(value.get("context"), dict) and "name" in value:
            spans.append(value)
        index = end


def ancestors(span: dict[str, Any], spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spans above ``span`` among ``spans``, nearest first."""
    by_id = {s["context"]["span_id"]: s for s in spans}
    found = []
    parent = span.get("parent_id")
    while parent in by_id:
        found.append(by_id[parent])
        parent = by_id[parent].get("parent_id")
    return found


def otel_env(**variables: str) -> dict[str, str]:
    """The test process's environment without sessionflow's, OpenTelemetry's or a trace's variables, plus
    ``variables``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SESSIONFLOW_", "OTEL_", "FASTAPI_OTEL")) and key not in (
               "TRACEPARENT", "TRACESTATE", "BAGGAGE")}
    env["SESSIONFLOW_PERFORMER"] = "alice"
    env.update(variables)
    return env


def serve(url: str, port: int, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``sessionflow serve`` on ``url`` and ``port`` (no waker, no console, warnings only), its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "sessionflow", "--db", url, "serve", "--port", str(port), "--log-level", "warning",
         "--no-timeouts", "--no-console"], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
