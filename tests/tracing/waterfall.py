"""One trace drawn as a trace viewer's waterfall, in text: a line per span, indented under its parent, with the
service (process) that made it, its duration and a bar on the trace's time axis.

The spans are the JSON objects OpenTelemetry's console exporter prints (``ReadableSpan.to_json()`` of the SDK),
gathered from every process of the trace. :func:`shape` is the picture without its timings: what a test compares
with the picture docs/tracing.md shows.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

__all__ = ["BAR", "render", "shape"]

#: The width of the time axis, in characters.
BAR = 40
_NAME = 46
_SERVICE = 13


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _tree(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The spans depth first, each with its depth; siblings in start order. A span whose parent is not among
    ``spans`` (a remote caller's span that was not recorded) is a root."""
    ids = {s["context"]["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: _instant(s["start_time"])):
        parent = span.get("parent_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    ordered: list[tuple[int, dict[str, Any]]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            ordered.append((depth, span))
            walk(span["context"]["span_id"], depth + 1)

    walk(None, 0)
    return ordered


def render(spans: list[dict[str, Any]]) -> str:
    """The waterfall of ``spans`` (all of one trace)."""
    ordered = _tree(spans)
    begin = min(_instant(s["start_time"]) for s in spans)
    end = max(_instant(s["end_time"]) for s in spans)
    total = max(end - begin, 1e-9)
    trace_id = spans[0]["context"]["trace_id"].removeprefix("0x")
    lines = [f"trace {trace_id}  ({len(spans)} spans, {total * 1000:.1f} ms)",
             f"{'service':<{_SERVICE}} {'span':<{_NAME}} {'at':>10} {'duration':>9}  |{'':<{BAR}}|"]
    for depth, span in ordered:
        start, stop = _instant(span["start_time"]) - begin, _instant(span["end_time"]) - begin
        left = min(int(start / total * BAR), BAR - 1)
        width = max(1, round((stop - start) / total * BAR))
        bar = (" " * left + "█" * width)[:BAR]
        service = str(span["resource"]["attributes"].get("service.name", "?"))[:_SERVICE]
        name = ("  " * depth + span["name"])[:_NAME]
        lines.append(f"{service:<{_SERVICE}} {name:<{_NAME}} {start * 1000:>7.2f} ms {(stop - start) * 1000:>6.2f} ms"
                     f"  |{bar:<{BAR}}|")
    return "\n".join(lines)


def shape(picture: str) -> list[str]:
    """``picture`` without what changes from run to run: the trace id, the durations and the bars."""
    kept = []
    for line in picture.splitlines():
        line = re.sub(r"\s+at\s+duration  \|\s*\|$", "", line)
        line = re.sub(r"^trace [0-9a-f]{32}  \((\d+) spans, [\d.]+ ms\)$", r"trace (\1 spans)", line)
        line = re.sub(r"\s+[\d.]+ ms\s+[\d.]+ ms  \|[ █]*\|$", "", line)
        kept.append(line.rstrip())
    return kept
