"""The command line continues the trace of ``TRACEPARENT`` and configures the SDK from ``OTEL_*`` variables:
a one-shot command's operation spans are children of the span a traced shell script names; a malformed
``TRACEPARENT`` is ignored; without any of these variables nothing of OpenTelemetry is imported; without the SDK
one warning says what to install. Run as real processes, read from the console exporter's output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sessionflow import SessionManager
from sessionflow.adapters.otel_env import INSTALL_HINT, continued_context, sdk_requested
from tests.tracing.console import PARENT_SPAN_ID, TRACE_ID, TRACEPARENT, console_spans, otel_env


def _sessionflow(*args: str, env: dict[str, str], cwd: Path, code: str = "") -> subprocess.CompletedProcess[str]:
    prefix = [sys.executable, "-c", f"import sys\n{code}\nfrom sessionflow.__main__ import main\nmain(sys.argv[1:])"]
    return subprocess.run([*prefix, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def pending(tmp_path: Path) -> tuple[str, str]:
    """An SQLite file holding one pending session: its URL and the session's id."""
    url = f"sqlite:///{tmp_path / 'traced.db'}"
    with SessionManager.open(url) as manager:
        return url, str(manager.create(user_id="alice", performer_id="alice").id)


def test_a_command_continues_the_trace_of_traceparent(pending: tuple[str, str], tmp_path: Path) -> None:
    url, sid = pending
    env = otel_env(TRACEPARENT=TRACEPARENT, TRACESTATE="vendor=1", OTEL_TRACES_EXPORTER="console",
                   OTEL_SERVICE_NAME="nightly-script")
    done = _sessionflow("--db", url, "start", sid, "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    output, _ = json.JSONDecoder().raw_decode(done.stdout)  # the command's own output comes first
    assert output["status"] == "in_progress"
    spans = {span["name"]: span for span in console_spans(done.stdout)}
    start = spans["sessionflow.start"]
    assert start["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert start["parent_id"] == f"0x{PARENT_SPAN_ID}"
    assert "key=vendor, value=1" in str(start["context"]["trace_state"])
    assert start["attributes"]["sessionflow.session.id"] == sid
    assert start["resource"]["attributes"]["service.name"] == "nightly-script"
    append = spans["sessionflow.store.append"]
    assert append["parent_id"] == start["context"]["span_id"]


def test_a_malformed_traceparent_is_ignored(pending: tuple[str, str], tmp_path: Path) -> None:
    url, sid = pending
    env = otel_env(TRACEPARENT="00-not-a-trace-01", OTEL_TRACES_EXPORTER="console")
    done = _sessionflow("--db", url, "start", sid, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    start = next(span for span in console_spans(done.stdout) if span["name"] == "sessionflow.start")
    assert start["parent_id"] is None  # a trace of its own
    assert start["context"]["trace_id"] != f"0x{TRACE_ID}"


def test_without_an_sdk_traceparent_alone_imports_no_opentelemetry(pending: tuple[str, str],
                                                                    tmp_path: Path) -> None:
    """No exporter asked for: no span could be recorded, so the trace is not even read."""
    url, sid = pending
    code = ("import atexit\n"
            "atexit.register(lambda: print(sorted(m for m in sys.modules if m.startswith('opentelemetry'))))")
    for env in (otel_env(), otel_env(TRACEPARENT=TRACEPARENT), otel_env(OTEL_TRACES_EXPORTER="none")):
        done = _sessionflow("--db", url, "show", sid, env=env, cwd=tmp_path, code=code)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_sdk_missing_is_one_warning_and_the_command_runs(pending: tuple[str, str], tmp_path: Path) -> None:
    url, sid = pending
    hide_sdk = "sys.modules['opentelemetry.sdk'] = None  # as if opentelemetry-sdk were not installed"
    done = _sessionflow("--db", url, "start", sid, "--json", env=otel_env(OTEL_TRACES_EXPORTER="otlp"),
                        cwd=tmp_path, code=hide_sdk)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "in_progress"
    warnings = [line for line in done.stderr.splitlines() if "OpenTelemetry" in line]
    assert len(warnings) == 1, done.stderr
    assert INSTALL_HINT in warnings[0]
    assert "WARNING" in warnings[0]


def test_an_exporter_that_is_not_installed_is_one_warning(pending: tuple[str, str], tmp_path: Path) -> None:
    url, sid = pending
    done = _sessionflow("--db", url, "start", sid, "--json",
                        env=otel_env(OTEL_TRACES_EXPORTER="no-such-exporter", TRACEPARENT=TRACEPARENT), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "in_progress"
    warnings = [line for line in done.stderr.splitlines() if "OpenTelemetry is not configured" in line]
    assert len(warnings) == 1, done.stderr
    assert "no-such-exporter" in warnings[0]


def test_sdk_disabled_wins_over_an_exporter(pending: tuple[str, str], tmp_path: Path) -> None:
    url, sid = pending
    done = _sessionflow("--db", url, "start", sid, env=otel_env(
        OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true", TRACEPARENT=TRACEPARENT), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert console_spans(done.stdout) == []


def test_a_long_running_command_does_not_continue_the_scripts_trace(pending: tuple[str, str],
                                                                     tmp_path: Path) -> None:
    """``events --follow`` (like worker and serve) may run for hours: its spans are not put under the script's."""
    url, _ = pending
    env = otel_env(TRACEPARENT=TRACEPARENT, OTEL_TRACES_EXPORTER="console")
    one_shot = _sessionflow("--db", url, "events", "--json", env=env, cwd=tmp_path)
    following = _sessionflow("--db", url, "events", "--follow", "--for", "500ms", "--json", env=env, cwd=tmp_path)
    assert one_shot.returncode == 0, one_shot.stderr
    assert following.returncode == 0, following.stderr
    [read] = [s for s in console_spans(one_shot.stdout) if s["name"] == "sessionflow.events"]
    assert read["parent_id"] == f"0x{PARENT_SPAN_ID}"
    assert all(s["parent_id"] != f"0x{PARENT_SPAN_ID}" for s in console_spans(following.stdout))


@pytest.mark.parametrize(("environ", "asked"), [
    ({}, False),
    ({"OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_TRACES_EXPORTER": " None , "}, False),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_METRICS_EXPORTER": "otlp"}, True),
    ({"OTEL_LOGS_EXPORTER": "none,otlp"}, True),
    ({"OTEL_CONFIG_FILE": "/etc/otel.yaml"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}, False),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, True),
    ({"OTEL_SERVICE_NAME": "x"}, False),
])
def test_what_asks_for_the_sdk(environ: dict[str, str], asked: bool) -> None:
    assert sdk_requested(environ) is asked


def test_no_parent_is_read_while_no_span_can_be_recorded() -> None:
    assert continued_context({}) is None
    assert continued_context({"TRACESTATE": "a=1"}) is None
