"""The benchmark report's tables: a round of a fixed count of operations says how many; a time-boxed round
(a failover timed until the writers resume, a load run for so many seconds) says it was time-boxed."""

from __future__ import annotations

from benchmarks.environment import Machine
from benchmarks.framework import TIMES, Measurement, Section
from benchmarks.report import Report, render_markdown


def test_rounds_of_a_count_and_time_boxed_rounds_are_told_apart() -> None:
    section = Section(name="demo", title="Demo", description="A demo section.")
    section.add(Measurement("counted", "session", (0.001, 0.002, 0.003), ops_per_round=500), "throughput")
    section.add(Measurement("time-boxed", "lifecycle", (0.004, 0.005, 0.006), threads=8), "throughput")
    machine = Machine(date="2026-01-01 00:00", cores=2, cpu="cpu", system="system", python="3.11",
                      sqlite="3.40", postgres="not used", packages={}, commit="abc")
    text = render_markdown(Report(machine=machine, sections=[section], quick=True, command="python -m benchmarks"))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["counted"].endswith(f"| 3 {TIMES} 500 sessions |")
    assert rows["time-boxed"].endswith("| 3 time-boxed rounds, 8 threads |")
