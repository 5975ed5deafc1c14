"""The report's plot (``docs/benchmarks.png``): lifecycle throughput and expiry lateness of one run.

Left: sessions per second of every contender of the durable lifecycle benchmarks (``lifecycle-sqlite``,
``lifecycle-postgres``). Right: expiry lateness percentiles (p50, p99, max; logarithmic) of the
``expiry-lateness`` benchmark, with the targets of issue 4. A panel whose benchmark did not run is left out;
with neither, no plot is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.framework import Section
from benchmarks.report import Report

__all__ = ["write_plot"]

_OURS = "#1f6fb4"
_OTHERS = "#9a9a9a"
_PERCENTILES = (("p50", "#8fbce6"), ("p99", "#1f6fb4"), ("max", "#0b2e4f"))


def _section(report: Report, name: str) -> Section | None:
    return next((s for s in report.sections if s.name == name and not s.skipped), None)


def _throughput(report: Report) -> list[tuple[str, float]]:
    bars: list[tuple[str, float]] = []
    for name, database in (("lifecycle-sqlite", "SQLite"), ("lifecycle-postgres", "PostgreSQL")):
        section = _section(report, name)
        if section is None:
            continue
        bars.extend((m.label if database in m.label else f"{m.label} ({database})", m.per_second)
                    for m in section.measurements
                    if section.kinds.get(m.label) == "throughput" and m.quantity == "time")
    return bars


def _lateness(report: Report) -> dict[str, dict[str, float]]:
    section = _section(report, "expiry-lateness")
    figure: dict[str, dict[str, float]] = section.figures.get("lateness", {}) if section else {}
    return figure


def write_plot(report: Report, path: Path) -> bool:
    """Draw the plot of ``report`` into ``path`` (PNG); False when there is nothing to draw."""
    throughput = _throughput(report)
    lateness = _lateness(report)
    panels = [p for p in (throughput, lateness) if p]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = max(4.0, 0.32 * max(len(throughput), 2 * len(lateness)) + 1.5)
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), height), squeeze=False)
    row: list[Any] = list(axes[0])
    if throughput:
        ax = row.pop(0)
        labels = [label for label, _ in throughput]
        values = [value for _, value in throughput]
        colors = [_OURS if label.startswith("sessionflow") else _OTHERS for label in labels]
        positions = range(len(labels))
        ax.barh(positions, values, color=colors)
        ax.set_yticks(list(positions), labels, fontsize=8)
        ax.invert_yaxis()
        for y, value in zip(positions, values, strict=True):
            ax.text(value, y, f" {value:,.0f}", va="center", fontsize=7)
        ax.set_xlabel("sessions per second (create + start + complete, each committed)")
        ax.set_title("Durable lifecycle throughput (higher is better)", fontsize=10)
        ax.margins(x=0.15)
    if lateness:
        ax = row.pop(0)
        names = sorted(lateness, key=lambda name: ("CPU" in name, "switch" in name, not name.startswith("sessionflow"),
                                                   name))
        width = 0.27
        for k, (key, color) in enumerate(_PERCENTILES):
            ys = [i + (k - 1) * width for i in range(len(names))]
            ax.barh(ys, [lateness[n][key] * 1000 for n in names], height=width, color=color, label=key)
        ax.set_yticks(list(range(len(names))), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        for limit, text, style in ((25, "target p99, idle: 25 ms", "--"),
                                   (50, "target p99, CPU-bound thread: 50 ms", ":")):
            ax.axvline(limit, color="#c0392b", linestyle=style, linewidth=1.2, label=text)
        ax.set_xlabel("lateness: committed expired event minus deadline (ms, log scale)")
        ax.set_title("Expiry lateness (lower is better)", fontsize=10)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    fig.suptitle(f"sessionflow benchmarks, {report.machine.date} UTC, {report.machine.cores} cores"
                 + (" (quick mode)" if report.quick else ""), fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
