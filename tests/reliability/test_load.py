"""A short load run on PostgreSQL and SQLite: no error, no lost event, contiguous versions, clean verify."""

from __future__ import annotations

from sessionflow import SessionManager
from tests.reliability.load import run_load


def test_short_load_run(sql_url: str) -> None:
    with SessionManager.open(sql_url, pool_size=8) as manager:
        report = run_load(manager, threads=8, operations=1500, seconds=30.0)
    print(report.summary())
    assert report.operations == 1500
    assert report.errors == []
    assert report.problems == []
    assert report.by_kind["create"] > 0
    assert report.events > report.sessions
