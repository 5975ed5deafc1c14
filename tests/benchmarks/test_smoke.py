"""The benchmark suite in quick mode: every benchmark runs, produces numbers and renders, so none rots.

The figures of a quick run mean nothing (tiny sizes, a busy machine); only their presence is checked.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from benchmarks.framework import Benchmark
from benchmarks.plot import write_plot
from benchmarks.report import render_markdown
from benchmarks.runner import discover, run_benchmarks, select

from benchmarks import sampling
from tests.support.postgres import in_ci

pytestmark = pytest.mark.postgres


#: The quick run in four parts, so that a parallel test run spreads them over its workers; "rest" is every
#: benchmark the other parts do not name.
PARTS: dict[str, tuple[str, ...]] = {
    "lateness": ("expiry-lateness", "pending-memory"),
    "processes": ("cross-process-lateness", "sweep"),
    "servers": ("failover", "upgrade", "redis", "otel"),
    "rest": (),
}


def _part(name: str) -> list[Benchmark]:
    available = discover()
    named = {n for names in PARTS.values() for n in names}
    assert named <= {b.name for b in available}, named - {b.name for b in available}
    if PARTS[name]:
        return [b for b in available if b.name in PARTS[name]]
    return [b for b in available if b.name not in named]


def test_the_parts_cover_every_benchmark_once() -> None:
    parts = [b.name for name in PARTS for b in _part(name)]
    assert sorted(parts) == sorted(b.name for b in discover())
    assert {"decision", "lifecycle-sqlite", "lifecycle-postgres", "get", "list", "expiry-lateness", "sweep",
            "pending-memory", "durable", "batches", "scale", "http"} <= set(parts)


@pytest.mark.parametrize("part", list(PARTS))
def test_every_benchmark_runs_in_quick_mode_and_produces_numbers(part: str, postgres_url: str,
                                                                 tmp_path: Path) -> None:
    benchmarks = _part(part)
    lines: list[str] = []

    report = run_benchmarks(benchmarks, quick=True, postgres_url=postgres_url, cache_dir=tmp_path / "cache",
                            log=lines.append)

    output = "\n".join(lines)
    assert not report.failures, output
    assert [s.name for s in report.sections] == [b.name for b in benchmarks]
    for section in report.sections:
        assert section.skipped is None, f"{section.name} was skipped: {section.skipped}"
        assert section.measurements, section.name
        assert section.comparisons, section.name
        for measurement in section.measurements:
            assert measurement.samples, measurement.label
            assert all(math.isfinite(v) and v > 0 for v in measurement.samples), measurement
        for comparison in section.comparisons:
            assert math.isfinite(comparison.ratio), comparison
            assert comparison.ratio > 0, comparison
            assert comparison.reference.label in {m.label for m in section.measurements}
    goals = {s.name: s.goals for s in report.sections if s.goals}
    if part == "rest":
        targets = [c for _, c in report.comparisons if c.target is not None]
        assert targets, "the comparisons with targets from the issues are missing"
        assert report.machine.postgres != "not used"
        why = sampling.available()
        if why is None or in_ci():  # CI runs as root with the dev extra: the profile must be there
            http = next(s for s in report.sections if s.name == "http")
            assert sum("Where a request's interpreter time goes" in block for block in http.blocks) == 2, why
            sqlite = next(s for s in report.sections if s.name == "lifecycle-sqlite")
            assert any(block.startswith("Where a write's time goes") for block in sqlite.blocks), why
    if part == "lateness":  # p99 lateness: idle and with a CPU-bound thread, each database
        assert len(goals["expiry-lateness"]) == 4
        lateness = next(s for s in report.sections if s.name == "expiry-lateness")
        assert set(lateness.figures["lateness"]) >= {"sessionflow waker, SQLite, idle",
                                                     "sessionflow waker, PostgreSQL, CPU-bound thread",
                                                     "APScheduler date job per deadline, idle"}
    if part == "processes":  # and across processes
        assert "cross-process-lateness" in goals, goals

    plot = tmp_path / "benchmarks.png"
    drawn = write_plot(report, plot)
    if part in ("rest", "lateness"):  # the plot draws the lifecycle throughput and the lateness
        assert drawn
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = render_markdown(report, plot=plot.name if drawn else None)
    assert "## Summary" in text
    assert "## Machine" in text
    if drawn:
        assert "](benchmarks.png)" in text
    for section in report.sections:
        assert section.title in text
        for block in section.blocks:
            assert block.strip() in text
    if part not in ("processes", "servers"):  # (the servers' part reports no latency distribution)
        assert "p99" in text
    if goals:
        assert "an absolute target" in text


def test_selection_by_name_and_prefix() -> None:
    available = discover()
    assert [b.name for b in select(available, ["lifecycle"])] == ["lifecycle-sqlite", "lifecycle-postgres"]
    assert [b.name for b in select(available, ["get", "decision"])] == ["decision", "get"]
    with pytest.raises(SystemExit):
        select(available, ["no-such-benchmark"])
