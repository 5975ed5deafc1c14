"""sessionflow's log records carry ``session_id``, ``record_id``, ``trace_id`` and ``span_id`` (``None`` where
unknown) as attributes of the standard ``logging`` records, on every one of its loggers; a formatter can show
them; a process without OpenTelemetry imports none for them."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sessionflow import SessionManager
from sessionflow.adapters.log_fields import FIELDS, LOGGERS, LogFields
from tests.tracing.conftest import Spans

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "sessionflow"


def _failing_subscriber(event: object) -> None:
    raise RuntimeError("the subscriber's own bug")


def test_a_record_names_the_session_and_the_event(caplog: pytest.LogCaptureFixture) -> None:
    manager = SessionManager.in_memory(tracing=False)
    manager.subscribe(_failing_subscriber)
    with caplog.at_level(logging.ERROR, logger="sessionflow"):
        session = manager.create(user_id="alice", performer_id="alice")
    [record] = [r for r in caplog.records if r.name == "sessionflow"]
    [event] = manager.history(session.id)
    assert record.session_id == str(session.id)  # type: ignore[attr-defined]
    assert record.record_id == str(event.record_id)  # type: ignore[attr-defined]
    assert (record.trace_id, record.span_id) == (None, None)  # type: ignore[attr-defined]


def test_inside_a_span_a_record_carries_its_trace_and_span_and_the_spans_session(
        spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    store_logger = logging.getLogger("sessionflow.store")
    manager = SessionManager.in_memory(tracing=spans.tracing)
    session = manager.create(user_id="alice", performer_id="alice")
    with caplog.at_level(logging.INFO, logger="sessionflow.store"), \
            spans.tracer.start_as_current_span("request") as request:
        store_logger.info("outside the manager's spans")
        with spans.tracing.span("sessionflow.touch", {"sessionflow.session.id": str(session.id)}):
            store_logger.warning("database connection lost (test); retrying on a new one")
    outside, inside = caplog.records[-2:]
    context = request.get_span_context()
    assert outside.trace_id == format(context.trace_id, "032x")  # type: ignore[attr-defined]
    assert outside.span_id == format(context.span_id, "016x")  # type: ignore[attr-defined]
    assert outside.session_id is None  # type: ignore[attr-defined]
    [touch] = spans.named("sessionflow.touch")
    assert inside.trace_id == format(context.trace_id, "032x")  # type: ignore[attr-defined]
    assert inside.span_id == format(touch.context.span_id, "016x")  # type: ignore[attr-defined]
    assert inside.session_id == str(session.id)  # type: ignore[attr-defined]


def test_the_documented_formatter_shows_the_fields(spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    formatter = logging.Formatter(
        "%(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s session=%(session_id)s] %(message)s",
        defaults={"trace_id": "-", "span_id": "-", "session_id": "-", "record_id": "-"})
    with caplog.at_level(logging.INFO, logger="sessionflow.http"), spans.tracer.start_as_current_span("r") as span:
        logging.getLogger("sessionflow.http").info("tokens file reloaded")
        logging.getLogger("elsewhere").warning("a record of another library")
    ours, theirs = (formatter.format(r) for r in caplog.records[-2:])
    context = span.get_span_context()
    assert ours == (f"INFO sessionflow.http [trace={context.trace_id:032x} span={context.span_id:016x} "
                    "session=None] tokens file reloaded")
    assert theirs == "WARNING elsewhere [trace=- span=- session=-] a record of another library"


def test_every_logger_of_the_package_has_the_filter() -> None:
    named = set()
    for path in SRC.rglob("*.py"):
        named |= set(re.findall(r"logging\.getLogger\(\"(sessionflow(?:\.\w+)*)\"\)", path.read_text(encoding="utf-8")))
    assert named <= set(LOGGERS), sorted(named - set(LOGGERS))
    import sessionflow.bootstrap  # noqa: F401  (installs them)

    for name in LOGGERS:
        assert any(isinstance(f, LogFields) for f in logging.getLogger(name).filters), name
        assert sum(isinstance(f, LogFields) for f in logging.getLogger(name).filters) == 1, name


def test_every_record_gets_every_field() -> None:
    record = logging.LogRecord("sessionflow", logging.INFO, __file__, 1, "m", None, None)
    assert LogFields().filter(record)
    assert {name: getattr(record, name) for name in FIELDS} == dict.fromkeys(FIELDS)


def test_a_process_without_opentelemetry_imports_none_for_its_logs(tmp_path: Path) -> None:
    code = f"""
import logging, sys
from sessionflow import SessionManager
logging.basicConfig(format="%(session_id)s %(record_id)s %(trace_id)s %(message)s")
def fail(event): raise RuntimeError("bug")
with SessionManager.open("sqlite:///{tmp_path / 'x.db'}") as m:
    m.subscribe(fail)
    m.create(user_id="u1", performer_id="u1")
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
    assert re.match(r"[0-9a-f-]{36} [0-9a-f-]{36} None subscriber", done.stderr), done.stderr
