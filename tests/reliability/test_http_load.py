"""A short load run over the HTTP service (real uvicorn, loopback): no 5xx, nothing lost, clean verify."""

from __future__ import annotations

from pathlib import Path

from sessionflow import SessionManager
from tests.reliability.http_load import run_http_load, serve


def test_short_http_load_run(sql_url: str, tmp_path: Path) -> None:
    SessionManager.open(sql_url).close()
    with serve(sql_url, tmp_path) as base:
        report = run_http_load(base, sql_url, clients=8, requests=600, seconds=60.0)
    print(report.summary())
    assert report.requests == 600
    assert report.transport_errors == []
    assert report.server_errors == 0
    assert report.problems == [], "\n".join(report.problems)
    assert report.statuses[201] > 0
    assert report.statuses[200] > 0
