"""Lifecycle diagrams: drawn from the machine definition, in every format, and the pictures in docs/ are
the renderer's current output."""

from __future__ import annotations

import importlib.util
import json
import re
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from statemachine import State, StateMachine
from typer.testing import CliRunner

from sessionflow import diagram
from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.lifecycle import SessionLifecycle
from sessionflow.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
COUNTS = {"pending": 3, "in_progress": 1, "completed": 12, "failed": 2, "expired": 5}


def test_the_graph_is_the_machine() -> None:
    graph = diagram.lifecycle_graph()
    compiled = CompiledLifecycle(SessionLifecycle)
    assert [s.value for s in graph.states] == list(compiled.states)
    assert [s.value for s in graph.states if s.initial] == [compiled.initial_state]
    assert {s.value for s in graph.states if s.final} == set(compiled.final_states)
    expected = set()
    for state in compiled.states:
        for event in compiled.events:
            for t in compiled.transitions(state, event):
                if t.source != t.target:
                    expected.add((event, t.source, t.target, tuple(g.name for g in t.guards)))
    assert {(e.event, e.source, e.target, e.guards) for e in graph.edges} == expected
    assert graph.internal == ((("record_file", "add_note", "touch", "update"), ("pending", "in_progress")),)
    assert graph.state("in_progress").label == "In progress"


def test_mermaid_has_every_state_and_transition() -> None:
    text = diagram.to_mermaid()
    assert text.splitlines()[0] == "stateDiagram-v2"
    graph = diagram.lifecycle_graph()
    for edge in graph.edges:
        assert f"    {edge.source} --> {edge.target} : {edge.event} {edge.guard_text}\n" in text
    assert "    [*] --> pending\n" in text
    for final in ("completed", "failed", "expired"):
        assert f"    {final} --> [*]\n" in text
    counted = diagram.to_mermaid(counts=COUNTS)
    assert 'state "Completed (12)" as completed' in counted
    assert 'state "In progress (1)"' in counted


def test_dot_has_every_transition() -> None:
    text = diagram.to_dot(counts={"pending": 7})
    assert text.startswith('digraph "SessionLifecycle" {')
    assert '"pending" [label="Pending (7)"]' in text
    assert '"completed" [label="Completed (0)", peripheries=2]' in text
    assert len(re.findall(r'^    "\w+" -> "\w+" \[label=', text, flags=re.MULTILINE)) == 6


def test_svg_is_well_formed_and_draws_every_state_and_edge() -> None:
    root = ET.fromstring(diagram.to_svg())
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for label in ("Pending", "In progress", "Completed", "Failed", "Expired", "start", "complete",
                  "[deadline_not_passed]", "[all_files_accounted]"):
        assert label in texts
    assert texts.count("fail") == 2
    assert texts.count("expire") == 2
    assert len(list(root.iter(f"{SVG}polyline"))) == 6  # one route per transition
    assert len(list(root.iter(f"{SVG}rect"))) == 1 + 5 + 3  # background, states, inner border of the finals
    assert diagram.to_svg() == diagram.to_svg()  # deterministic


def test_svg_with_counts() -> None:
    root = ET.fromstring(diagram.to_svg(counts=COUNTS))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "12 sessions" in texts
    assert "1 session" in texts
    assert "Session lifecycle (23 sessions)" in texts


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_is_the_svg_drawing_at_twice_the_size() -> None:
    pytest.importorskip("PIL")
    root = ET.fromstring(diagram.to_svg())
    width, height = _png_size(diagram.to_png())
    assert width >= 2 * float(root.attrib["width"]) * 0.9
    assert height >= 2 * float(root.attrib["height"]) * 0.9
    assert diagram.to_png(counts=COUNTS) != diagram.to_png()


def test_png_without_pillow_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(diagram.DiagramUnavailable, match=r"sessionflow\[diagram\]"):
        diagram.to_png()
    result = CliRunner().invoke(app, ["diagram", "--format", "png", "-o", "x.png"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: PNG output needs Pillow")


def test_render_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown diagram format"):
        diagram.render("gif")


class Review(StateMachine):
    """A machine of another shape: a loop back, an ``unless`` guard, a skip over a column."""

    draft = State("Draft", initial=True)
    review = State("In review")
    approved = State("Approved")
    published = State("Published", final=True)

    submit = draft.to(review)
    reject = review.to(draft)
    approve = review.to(approved, unless="is_stale")
    publish = approved.to(published) | draft.to(published, cond="is_trivial")
    edit = draft.to.itself(internal=True)  # type: ignore[no-untyped-call]

    def is_stale(self) -> bool:
        return False

    def is_trivial(self) -> bool:
        return False


def test_other_machines_render_too() -> None:
    graph = diagram.lifecycle_graph(Review)
    assert ("approve", ("not is_stale",)) in {(e.event, e.guards) for e in graph.edges}
    root = ET.fromstring(diagram.to_svg(graph))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"Draft", "In review", "Approved", "Published", "reject", "[not is_stale]"} <= set(texts)
    assert "Review" in texts  # a machine's own name as the title
    assert "edit: allowed in Draft; the state stays" in texts
    assert "    review --> draft : reject\n" in diagram.to_mermaid(graph)


def test_the_pictures_in_docs_are_current() -> None:
    assert (ROOT / "docs" / "lifecycle.svg").read_text(encoding="utf-8") == diagram.to_svg(), \
        "regenerate with: sessionflow diagram --format svg -o docs/lifecycle.svg"
    lifecycle = (ROOT / "docs" / "lifecycle.md").read_text(encoding="utf-8")
    match = re.search(r"```mermaid\n(.*?)```", lifecycle, flags=re.DOTALL)
    assert match is not None, "docs/lifecycle.md has no mermaid block"
    assert match.group(1) == diagram.to_mermaid(), "regenerate with: sessionflow diagram --format mermaid"
    assert "](lifecycle.svg)" in lifecycle


def test_the_diagram_command(tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'd.db'}"
    result = runner.invoke(app, ["diagram"])
    assert result.exit_code == 0
    assert result.stdout == diagram.to_mermaid()
    assert runner.invoke(app, ["diagram", "--format", "dot"]).stdout == diagram.to_dot()
    out = tmp_path / "l.svg"
    result = runner.invoke(app, ["diagram", "--format", "svg", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_text(encoding="utf-8") == diagram.to_svg()
    assert "wrote" in result.stderr
    runner.invoke(app, ["--db", db, "create", "--performer", "p"])
    result = runner.invoke(app, ["--db", db, "diagram", "--counts", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["format"] == "mermaid"
    assert data["counts"]["pending"] == 1
    assert 'state "Pending (1)" as pending' in data["source"]
    result = runner.invoke(app, ["diagram", "--format", "png", "--json"])
    assert result.exit_code == 2
    assert "--output" in result.stderr
    if importlib.util.find_spec("PIL") is not None:
        png = tmp_path / "l.png"
        result = runner.invoke(app, ["diagram", "--format", "png", "-o", str(png), "--json"])
        assert result.exit_code == 0
        assert _png_size(png.read_bytes())[0] > 0
