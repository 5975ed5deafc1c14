"""The command line: ``python -m benchmarks [NAME...] [--quick] [--output PATH] [--profile] [--list]``.

Benchmarks are the modules ``benchmarks/bench_*.py`` that expose ``BENCHMARK``; they run in their
``order``. A full run (no names, not quick) writes ``docs/benchmarks.md`` and its plot ``docs/benchmarks.png``
(see :mod:`benchmarks.plot`); a partial or quick run writes only when ``--output`` is given (the plot
beside it).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import benchmarks
from benchmarks.environment import PostgresProvider, describe_machine, load_average
from benchmarks.framework import Benchmark, Context, Section, Skipped
from benchmarks.plot import write_plot
from benchmarks.report import Report, console_table, render_markdown

__all__ = ["DEFAULT_OUTPUT", "discover", "main", "run_benchmarks", "select"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "sessionflow-benchmarks"


def discover() -> list[Benchmark]:
    """Every ``BENCHMARK`` of the ``bench_*`` modules of this package, in report order."""
    found: list[Benchmark] = []
    for module in pkgutil.iter_modules(benchmarks.__path__):
        if not module.name.startswith("bench_"):
            continue
        imported = importlib.import_module(f"benchmarks.{module.name}")
        benchmark = getattr(imported, "BENCHMARK", None)
        if not isinstance(benchmark, Benchmark):
            raise TypeError(f"benchmarks.{module.name} must define BENCHMARK = Benchmark(...)")
        found.append(benchmark)
    names = [b.name for b in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate benchmark names: {sorted(duplicates)}")
    return sorted(found, key=lambda b: (b.order, b.name))


def select(available: Sequence[Benchmark], names: Sequence[str]) -> list[Benchmark]:
    """The benchmarks named (exactly, or by prefix: ``lifecycle`` selects ``lifecycle-sqlite`` etc.)."""
    if not names:
        return list(available)
    chosen: list[Benchmark] = []
    for name in names:
        matches = [b for b in available if b.name == name] or [b for b in available if b.name.startswith(name)]
        if not matches:
            known = ", ".join(b.name for b in available)
            raise SystemExit(f"unknown benchmark {name!r}; known: {known}")
        chosen.extend(b for b in matches if b not in chosen)
    return [b for b in available if b in chosen]


def run_benchmarks(selected: Sequence[Benchmark], *, quick: bool, postgres_url: str | None = None,
                   cache_dir: Path | None = None, profile: bool = False, command: str = "python -m benchmarks",
                   log: Callable[[str], None] = print) -> Report:
    """Run ``selected`` and return the report (nothing is written)."""
    started = time.perf_counter()
    load_at_start = load_average()
    postgres = PostgresProvider(postgres_url)
    workdir = Path(tempfile.mkdtemp(prefix="sessionflow-bench-"))
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    ctx = Context(quick=quick, workdir=workdir, cache_dir=cache, postgres=postgres, profile=profile, log=log)
    sections: list[Section] = []
    failures: list[str] = []
    try:
        for benchmark in selected:
            log(f"== {benchmark.name}: {benchmark.title}")
            t0 = time.perf_counter()
            try:
                section = benchmark.run(ctx)
            except Skipped as skipped:
                section = Section(name=benchmark.name, title=benchmark.title, skipped=str(skipped))
                log(f"   skipped: {skipped}")
            except Exception:
                failures.append(f"{benchmark.name}:\n{traceback.format_exc()}")
                log(f"   FAILED:\n{traceback.format_exc()}")
                section = Section(name=benchmark.name, title=benchmark.title,
                                  skipped="failed in this run (see the console output)")
            section.seconds = time.perf_counter() - t0
            sections.append(section)
            if section.comparisons or section.goals:
                log(console_table([section]))
            for text in section.profiles:
                log(text)
            log(f"   ({section.seconds:.1f} s)")
        machine = describe_machine(postgres, load_at_start)
    finally:
        postgres.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return Report(machine=machine, sections=sections, quick=quick, command=command,
                  seconds=time.perf_counter() - started, failures=failures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run sessionflow's benchmarks, each figure next to its references measured in the same run; "
                    f"a full run writes {DEFAULT_OUTPUT.relative_to(ROOT)}.")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all); a prefix selects several")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in seconds")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"write the markdown report here (default for a full run: {DEFAULT_OUTPUT})")
    parser.add_argument("--no-write", action="store_true", help="print only, write no report")
    parser.add_argument("--profile", action="store_true", help="add cProfile listings of sessionflow's side")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"where generated databases are cached (default: {default_cache_dir()})")
    args = parser.parse_args(argv)

    available = discover()
    if args.list:
        for b in available:
            print(f"{b.name:22} {b.title}{' (PostgreSQL)' if b.needs_postgres else ''}")
        return 0
    selected = select(available, args.names)
    command = "python -m benchmarks" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    report = run_benchmarks(selected, quick=args.quick, cache_dir=args.cache_dir, profile=args.profile,
                            command=command.strip())
    output: Path | None = args.output
    if output is None and not args.names and not args.quick:
        output = DEFAULT_OUTPUT
    if output is not None and not args.no_write:
        output.parent.mkdir(parents=True, exist_ok=True)
        plot = output.with_suffix(".png")
        drawn = write_plot(report, plot)
        output.write_text(render_markdown(report, plot=plot.name if drawn else None), encoding="utf-8")
        print(f"wrote {output}" + (f" and {plot}" if drawn else ""))
    print(f"\n== summary ({report.seconds:.0f} s)\n{console_table(report.sections)}")
    if report.failures:
        print(f"\n{len(report.failures)} benchmark(s) failed: " + ", ".join(f.split(':')[0] for f in report.failures))
        return 1
    return 0
