"""The pieces every benchmark module is built from: measurements, comparisons, targets and the timing loop.

A benchmark module (``benchmarks/bench_*.py``) exposes ``BENCHMARK = Benchmark(...)``; its ``run(ctx)``
measures sessionflow and its references *in the same run* and returns a :class:`Section` holding the
measurements and the comparisons (ratio and, where an issue sets one, the target).

Timing: :func:`measure` runs each contender for ``rounds`` timed rounds of ``n`` units after one untimed
warm-up round, interleaving the contenders (and rotating their order each round) so that drift of the
machine affects them alike. A measurement keeps the time per operation of every round; figures are medians.

Adding a benchmark (say ``benchmarks/bench_sweep.py``)::

    def run(ctx: Context) -> Section:
        section = Section(name="sweep", title="Sweep of 100k overdue sessions", description=__doc__ or "")
        ours = Contender("sessionflow expire_sessions", "session", sweep_with_sessionflow)
        raw = Contender("set-based SQL", "session", sweep_with_sql)
        results = ctx.measure([ours, raw], n=ctx.scale(100_000, 1_000), rounds=ctx.scale(5, 2))
        section.compare(section.add(results[ours.label], "throughput"),
                        section.add(results[raw.label], "throughput"), "throughput")  # + Target(...) if set
        return section

    BENCHMARK = Benchmark(name="sweep", title="Sweep of 100k overdue sessions", run=run, order=60)

Quantities other than time (memory per pending session, expiry lateness measured by the benchmark itself)
are recorded as :class:`Measurement` objects built directly, with ``quantity="bytes"`` for sizes; the
report formats them accordingly. An absolute goal (``p99 <= 25 ms``) is a :class:`Goal`
(``section.goal(...)``); tables of other shapes go to ``section.blocks`` (markdown) and figures for the
plot to ``section.figures``. A benchmark that cannot run raises :class:`Skipped` with the reason.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from benchmarks.skip import Skipped

if TYPE_CHECKING:
    from benchmarks.environment import PostgresProvider

__all__ = [
    "Benchmark",
    "Comparison",
    "Contender",
    "Context",
    "Goal",
    "Kind",
    "Measurement",
    "Section",
    "Skipped",
    "TIMES",
    "Target",
    "calibrate",
    "format_duration",
    "measure",
    "profile_contender",
]

#: ``latency``: lower is better, the ratio is ours / reference. ``throughput``: higher is better, the ratio
#: is our rate / the reference's rate (so above 1 means sessionflow is faster in both cases' natural reading).
Kind = Literal["latency", "throughput"]


#: The multiplication sign of ratios (written as an escape: the linter flags it as a look-alike of ``x``).
TIMES = "\u00d7"


N = TypeVar("N", int, float)


def format_duration(seconds: float) -> str:
    """A duration per operation in the most readable unit (``ns``, ``µs`` or ``ms``)."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs" if seconds < 1e-4 else f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.2f} ms"


def format_rate(per_second: float) -> str:
    if per_second >= 10_000:
        return f"{per_second / 1000:.0f}k/s"
    if per_second >= 1000:
        return f"{per_second / 1000:.2f}k/s"
    return f"{per_second:.0f}/s"


@dataclass(frozen=True)
class Measurement:
    """The cost per operation of one contender, one value per timed round: seconds, or bytes."""

    label: str
    unit: str  # what one operation is: "session", "transition", "get", ...
    samples: tuple[float, ...]
    ops_per_round: int = 0
    threads: int = 1
    quantity: Literal["time", "bytes"] = "time"

    def format(self, value: float) -> str:
        if self.quantity == "bytes":
            return f"{value / 1024:,.1f} KiB" if value >= 1024 else f"{value:,.0f} B"
        return format_duration(value)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def per_second(self) -> float:
        return 1.0 / self.median

    def describe(self, kind: Kind = "latency") -> str:
        """``12.3 µs/get`` for latency figures, ``6.42k sessions/s (156 µs/session)`` for throughput; without a
        unit (a lateness, a size), just the value."""
        per_op = f"{self.format(self.median)}/{self.unit}" if self.unit else self.format(self.median)
        if kind == "throughput" and self.quantity == "time":
            return f"{format_rate(self.per_second).removesuffix('/s')} {self.unit}s/s ({per_op})"
        return per_op


@dataclass(frozen=True)
class Target:
    """A goal for a ratio, as an issue states it (``>= 0.6``: at least 0.6 times the reference)."""

    op: Literal[">=", "<=", ">"]
    value: float
    source: str = ""

    def met(self, ratio: float) -> bool:
        if self.op == ">=":
            return ratio >= self.value
        if self.op == "<=":
            return ratio <= self.value
        return ratio > self.value

    def __str__(self) -> str:
        symbol = {">=": "≥", "<=": "≤", ">": ">"}[self.op]
        suffix = f" ({self.source})" if self.source else ""
        return f"{symbol} {self.value:g}{TIMES}{suffix}"


@dataclass(frozen=True)
class Goal:
    """An absolute goal for one measurement, as an issue states it (``p99 lateness <= 25 ms``)."""

    measurement: Measurement
    op: Literal["<=", ">="]
    limit: float  # in the measurement's quantity: seconds or bytes
    source: str = ""
    note: str = ""

    @property
    def met(self) -> bool:
        value = self.measurement.median
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def __str__(self) -> str:
        symbol = {">=": "≥", "<=": "≤"}[self.op]
        suffix = f" ({self.source})" if self.source else ""
        return f"{symbol} {self.measurement.format(self.limit)}{suffix}"


@dataclass(frozen=True)
class Comparison:
    """sessionflow's measurement against one reference measured in the same run."""

    subject: Measurement
    reference: Measurement
    kind: Kind
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        """Throughput: our rate / the reference's rate. Latency: our time / the reference's time."""
        if self.kind == "throughput":
            return self.reference.median / self.subject.median
        return self.subject.median / self.reference.median

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.ratio)

    def reading(self) -> str:
        """How much faster or slower sessionflow is, in words: ``1.72x faster``, ``83x slower`` (sizes: ``less``
        and ``more``; a lateness: ``sooner`` and ``later``)."""
        better, worse = (("less", "more") if self.subject.quantity == "bytes" else
                         ("sooner", "later") if not self.subject.unit else ("faster", "slower"))
        speed = self.reference.median / self.subject.median  # > 1: sessionflow is faster
        if speed >= 1:
            return f"{speed:.2f}{TIMES} {better}" if speed < 10 else f"{speed:.0f}{TIMES} {better}"
        slower = 1 / speed
        return f"{slower:.2f}{TIMES} {worse}" if slower < 10 else f"{slower:.0f}{TIMES} {worse}"

    @property
    def ratio_text(self) -> str:
        ratio = self.ratio
        if ratio >= 100:
            return f"{ratio:.0f}{TIMES}"
        return f"{ratio:.2f}{TIMES}" if ratio >= 0.095 else f"{ratio:.3f}{TIMES}"


@dataclass
class Section:
    """What one benchmark produced: its measurements, comparisons and notes (markdown)."""

    name: str
    title: str
    description: str = ""
    measurements: list[Measurement] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Markdown blocks (tables) shown after the measurements.
    blocks: list[str] = field(default_factory=list)
    #: Figures for the plot, by name (see :mod:`benchmarks.plot`).
    figures: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, Kind] = field(default_factory=dict)  # measurement label -> how to show it
    profiles: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0

    def add(self, measurement: Measurement, kind: Kind = "latency") -> Measurement:
        self.measurements.append(measurement)
        self.kinds[measurement.label] = kind
        return measurement

    def compare(self, subject: Measurement, reference: Measurement, kind: Kind, target: Target | None = None,
                note: str = "") -> Comparison:
        comparison = Comparison(subject, reference, kind, target, note)
        self.comparisons.append(comparison)
        return comparison

    def goal(self, measurement: Measurement, op: Literal["<=", ">="], limit: float, source: str = "",
             note: str = "") -> Goal:
        goal = Goal(measurement, op, limit, source, note)
        self.goals.append(goal)
        return goal


@dataclass
class Context:
    """What a benchmark gets from the runner."""

    quick: bool
    workdir: Path  # a temporary directory of this run, removed afterwards
    cache_dir: Path  # survives runs (large generated databases)
    postgres: PostgresProvider
    profile: bool = False
    log: Callable[[str], None] = print

    def scale(self, full: N, quick: N) -> N:
        """``full`` in a full run, ``quick`` in a quick one."""
        return quick if self.quick else full

    def measure(self, contenders: Sequence[Contender], n: int, rounds: int) -> dict[str, Measurement]:
        """:func:`measure` with this run's log (and no garbage collection between rounds in quick mode)."""
        return measure(contenders, n, rounds, log=self.log, collect=not self.quick)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: ``run(ctx)`` measures and returns its section. ``order`` sorts the report."""

    name: str
    title: str
    run: Callable[[Context], Section]
    order: int = 100
    needs_postgres: bool = False
    summary: str = ""


@dataclass
class Contender:
    """Something to time: ``run(n)`` does ``n`` units of work; each unit is ``ops_per_unit`` operations.

    ``prepare(n)``, when given, runs untimed before each round (for example to build objects the timed
    part uses). ``profile`` marks contenders :func:`profile_contender` may profile (sessionflow's own).
    """

    label: str
    unit: str
    run: Callable[[int], object]
    ops_per_unit: int = 1
    prepare: Callable[[int], object] | None = None
    threads: int = 1
    profile: bool = False


def _timed(contender: Contender, n: int, collect: bool = True) -> float:
    if contender.prepare is not None:
        contender.prepare(n)
    if collect:
        gc.collect()
    start = time.perf_counter()
    contender.run(n)
    elapsed = time.perf_counter() - start
    return elapsed / (n * contender.ops_per_unit)


def measure(contenders: Sequence[Contender], n: int, rounds: int, *, warmup: int = 1,
            log: Callable[[str], None] | None = None, collect: bool = True) -> dict[str, Measurement]:
    """Time every contender for ``rounds`` rounds of ``n`` units, interleaved; returns them by label.

    ``collect``: run a full garbage collection before each round (so one contender's garbage is not
    collected on another's time); quick runs skip it.
    """
    for contender in contenders:
        for _ in range(warmup):
            _timed(contender, max(contender.threads, n // 4), collect)
    samples: dict[str, list[float]] = {c.label: [] for c in contenders}
    order = list(contenders)
    for round_no in range(rounds):
        shift = round_no % len(order)
        for contender in order[shift:] + order[:shift]:
            samples[contender.label].append(_timed(contender, n, collect))
    result = {
        c.label: Measurement(c.label, c.unit, tuple(samples[c.label]), ops_per_round=n * c.ops_per_unit,
                             threads=c.threads)
        for c in contenders
    }
    if log is not None:
        for m in result.values():
            log(f"    {m.label}: {format_duration(m.median)}/{m.unit} "
                f"(median of {len(m.samples)}; {format_duration(m.low)} .. {format_duration(m.high)})")
    return result


def calibrate(contender: Contender, *, seconds: float, low: int, high: int) -> int:
    """How many units make a round of about ``seconds`` (between ``low`` and ``high``), from a short trial."""
    n = 1
    while True:
        per_unit = _timed(contender, n, collect=False) * contender.ops_per_unit
        if per_unit * n >= seconds / 20 or n >= high:
            break
        n *= 4
    return max(low, min(high, int(seconds / per_unit)))


def profile_contender(contender: Contender, n: int, *, top: int = 25) -> str:
    """One extra round of ``contender`` under cProfile; the top functions by own time and by cumulative time."""
    if contender.prepare is not None:
        contender.prepare(n)
    profiler = cProfile.Profile()
    profiler.enable()
    contender.run(n)
    profiler.disable()
    text = io.StringIO()
    text.write(f"profile of {contender.label}: {n} {contender.unit}s x {contender.ops_per_unit}\n")
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler, stream=text)
        stats.strip_dirs().sort_stats(key).print_stats(top)
    return text.getvalue()
