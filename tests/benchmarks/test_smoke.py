"""The benchmark suite in quick mode: every benchmark runs, produces numbers and renders, so none rots.

The figures of a quick run mean nothing (tiny sizes, a busy machine); only their presence is checked.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from benchmarks.report import render_markdown
from benchmarks.runner import discover, run_benchmarks, select

pytestmark = pytest.mark.postgres


def test_every_benchmark_runs_in_quick_mode_and_produces_numbers(postgres_url: str, tmp_path: Path) -> None:
    benchmarks = discover()
    assert {"decision", "lifecycle-sqlite", "lifecycle-postgres", "get", "list"} <= {b.name for b in benchmarks}
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
    targets = [c for _, c in report.comparisons if c.target is not None]
    assert targets, "the comparisons with targets from the issues are missing"

    text = render_markdown(report)
    assert "## Summary" in text
    assert "## Machine" in text
    for section in report.sections:
        assert section.title in text
    assert report.machine.postgres != "not used"


def test_selection_by_name_and_prefix() -> None:
    available = discover()
    assert [b.name for b in select(available, ["lifecycle"])] == ["lifecycle-sqlite", "lifecycle-postgres"]
    assert [b.name for b in select(available, ["get", "decision"])] == ["decision", "get"]
    with pytest.raises(SystemExit):
        select(available, ["no-such-benchmark"])
