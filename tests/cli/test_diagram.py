"""Lifecycle diagrams: drawn from the machine definition, in every format; SVG and PNG laid out by Graphviz.

The picture tests read the SVG's structure (the ``state:`` and ``transition:`` groups, their texts, the
geometry Graphviz chose), never its bytes: a Graphviz release may shift the layout. They need Graphviz's
``dot`` (``make test`` installs it when missing, as root); without it they skip, and under CI they fail.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from statemachine import State, StateMachine
from typer.testing import CliRunner

from sessionflow import diagram
from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.lifecycle import SessionLifecycle
from sessionflow.entrypoints.cli import app
from tests.lifecycles.jobs import JobLifecycle
from tests.support.postgres import in_ci

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
COUNTS = {"pending": 3, "in_progress": 1, "completed": 12, "failed": 2, "expired": 5}


@pytest.fixture
def dot() -> None:
    """Graphviz's ``dot`` is installed: else skip, or fail under CI."""
    if shutil.which("dot") is None:
        message = "Graphviz's dot is not installed (Debian: apt-get install graphviz; `make test` does it as root)"
        if in_ci():
            pytest.fail(f"CI: {message}")
        pytest.skip(message)


# ---------------------------------------------------------------------------------------------- the graph


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


def test_dot_has_every_state_and_transition() -> None:
    text = diagram.to_dot(counts={"pending": 7})
    assert text.startswith('digraph "SessionLifecycle" {')
    assert '"pending" [label="Pending (7)", id="state:pending"]' in text
    assert '"completed" [label="Completed (0)", id="state:completed", peripheries=2' in text
    assert len(re.findall(r'^    "\w+" -> "\w+" \[label=', text, flags=re.MULTILINE)) == 6
    assert '[label="start\\n[deadline_not_passed]", id="transition:start:pending:in_progress"]' in text
    assert 'label="Session lifecycle (7 sessions)\\lrecord_file, add_note, touch, update: allowed in Pending, ' \
           'In progress; the state stays\\l"' in text


def test_dot_escapes_what_a_machine_names() -> None:
    class Odd(StateMachine):
        start = State('Say "hi" \\ wave', initial=True)
        end = State("End", final=True)

        go = start.to(end)

    text = diagram.to_dot(diagram.lifecycle_graph(Odd))
    assert '[label="Say \\"hi\\" \\\\ wave", id="state:start"]' in text


def test_render_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown diagram format"):
        diagram.render("gif")


# ---------------------------------------------------------------------------------------------- pictures


def _pairs(text: str) -> list[tuple[float, float]]:
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]
    return list(zip(numbers[0::2], numbers[1::2], strict=True))


def _box(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


def _curve(d: str) -> Iterator[tuple[float, float]]:
    """Points along an edge's path (Graphviz writes ``M p C c1 c2 p c1 c2 p ...``: cubic Béziers)."""
    points = _pairs(d)
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i:i + 4]
        for step in range(21):
            t = step / 20
            u = 1 - t
            yield (u ** 3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t ** 3 * p3[0],
                   u ** 3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t ** 3 * p3[1])


def _text_box(text: ET.Element) -> tuple[float, float, float, float]:
    """A tight estimate of a text's box (Helvetica averages a little over half an em per character)."""
    size = float(text.attrib["font-size"])
    width = 0.5 * size * len(text.text or "")
    x, y = float(text.attrib["x"]), float(text.attrib["y"])
    left = {"middle": x - width / 2, "start": x, "end": x - width}[text.attrib.get("text-anchor", "start")]
    return left, y - 0.7 * size, left + width, y


def _inside(point: tuple[float, float], box: tuple[float, float, float, float], margin: float) -> bool:
    x, y = point
    return box[0] + margin < x < box[2] - margin and box[1] + margin < y < box[3] - margin


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class Picture:
    """What an SVG drawn by Graphviz shows: states and transitions by id, their texts and geometry."""

    def __init__(self, svg: str) -> None:
        self.root = ET.fromstring(svg)
        groups = {g.attrib.get("id", ""): g for g in self.root.iter(f"{SVG}g")}
        self.states = {k.removeprefix("state:"): g for k, g in groups.items() if k.startswith("state:")}
        self.transitions = {k.removeprefix("transition:"): g for k, g in groups.items()
                            if k.startswith("transition:")}
        self.title = next(t.text for t in self.root.find(f"{SVG}g").findall(f"{SVG}text"))  # type: ignore[union-attr]

    def texts(self, group: ET.Element) -> list[str]:
        return [t.text or "" for t in group.iter(f"{SVG}text")]

    def box(self, state: str) -> tuple[float, float, float, float]:
        shapes = [*self.states[state].iter(f"{SVG}path"), *self.states[state].iter(f"{SVG}polygon")]
        return _box([p for shape in shapes for p in _pairs(shape.attrib.get("d") or shape.attrib["points"])])

    def structure(self) -> dict[str, list[str]]:
        return {**{f"state:{k}": self.texts(g) for k, g in self.states.items()},
                **{f"transition:{k}": self.texts(g) for k, g in self.transitions.items()}, "title": [self.title]}

    def check_readable(self) -> None:
        """No edge runs through a state box (other than its own ends) or through a label; no label sits on a
        box or on another label."""
        boxes = {state: self.box(state) for state in self.states}
        labels = [(key, _text_box(t)) for key, g in self.transitions.items() for t in g.iter(f"{SVG}text")]
        for key, group in self.transitions.items():
            _event, source, target = key.split(":")
            (path,) = group.iter(f"{SVG}path")
            curve = list(_curve(path.attrib["d"]))
            assert curve, key
            for state, box in boxes.items():
                if state not in (source, target):
                    hits = [p for p in curve if _inside(p, box, 1.0)]
                    assert not hits, f"{key} runs through the box of {state} at {hits[0]}"
            for other, label in labels:
                hits = [p for p in curve if _inside(p, label, 0.5)]
                assert not hits, f"{key} runs through the label of {other} at {hits[0]}"
        for i, (key, label) in enumerate(labels):
            for state, box in boxes.items():
                assert not _overlap(label, box), f"a label of {key} sits on the box of {state}"
            for other, second in labels[i + 1:]:
                if other != key:
                    assert not _overlap(label, second), f"the labels of {key} and {other} overlap"


def _expected_structure(graph: diagram.LifecycleGraph) -> dict[str, list[str]]:
    return {**{f"state:{s.value}": [s.label] for s in graph.states},
            **{f"transition:{e.event}:{e.source}:{e.target}": [e.event, *([e.guard_text] if e.guards else [])]
               for e in graph.edges}}


def test_the_svg_draws_every_state_and_transition(dot: None) -> None:
    graph = diagram.lifecycle_graph()
    picture = Picture(diagram.to_svg())
    structure = picture.structure()
    assert structure.pop("title") == ["Session lifecycle"]
    texts = [t.text for t in picture.root.iter(f"{SVG}text")]
    assert "record_file, add_note, touch, update: allowed in Pending, In progress; the state stays" in texts
    assert structure == _expected_structure(graph)
    for final in ("completed", "failed", "expired"):  # a double border
        assert len(list(picture.states[final].iter(f"{SVG}path"))) == 2
    assert len(list(picture.states["pending"].iter(f"{SVG}path"))) == 1
    picture.check_readable()


def test_the_svg_with_counts(dot: None) -> None:
    picture = Picture(diagram.to_svg(counts=COUNTS))
    assert picture.texts(picture.states["completed"]) == ["Completed (12)"]
    assert picture.texts(picture.states["in_progress"]) == ["In progress (1)"]
    texts = [t.text for t in picture.root.iter(f"{SVG}text")]
    assert "Session lifecycle (23 sessions)" in texts


def test_the_png_is_drawn_at_twice_the_size(dot: None) -> None:
    root = ET.fromstring(diagram.to_svg())
    width, height = _png_size(diagram.to_png())
    svg_width, svg_height = (float(root.attrib[k].removesuffix("pt")) for k in ("width", "height"))
    assert abs(width - 2 * svg_width) <= 4
    assert abs(height - 2 * svg_height) <= 4
    assert _png_size(diagram.to_png(scale=1))[0] == pytest.approx(svg_width, abs=2)
    assert diagram.to_png(counts=COUNTS) != diagram.to_png()
    with pytest.raises(ValueError, match="scale"):
        diagram.to_png(scale=0)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


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


class Release(StateMachine):
    """Twelve states: a cycle (build → test → build again, review back to build), two transitions between one
    pair of states (verifying → live by ``promote`` or ``force``), guards, several final states."""

    draft = State("Draft", initial=True)
    queued = State("Queued")
    fetching = State("Fetching")
    building = State("Building")
    testing = State("Testing")
    reviewing = State("In review")
    approved = State("Approved")
    deploying = State("Deploying")
    verifying = State("Verifying")
    live = State("Live", final=True)
    rolled_back = State("Rolled back", final=True)
    cancelled = State("Cancelled", final=True)

    submit = draft.to(queued)
    fetch = queued.to(fetching)
    build = fetching.to(building)
    run_tests = building.to(testing)
    retry = testing.to(building, cond="flaky")
    request_review = testing.to(reviewing, cond="green")
    request_changes = reviewing.to(building)
    approve = reviewing.to(approved, cond="has_approver")
    deploy = approved.to(deploying)
    check = deploying.to(verifying)
    promote = verifying.to(live, cond="healthy")
    force = verifying.to(live, cond="is_admin")
    roll_back = verifying.to(rolled_back) | deploying.to(rolled_back)
    cancel = draft.to(cancelled) | queued.to(cancelled) | reviewing.to(cancelled)
    comment = reviewing.to.itself(internal=True)  # type: ignore[no-untyped-call]

    def flaky(self) -> bool:
        return True

    def green(self) -> bool:
        return True

    def has_approver(self) -> bool:
        return True

    def healthy(self) -> bool:
        return True

    def is_admin(self) -> bool:
        return True


@pytest.mark.parametrize("machine", [Review, JobLifecycle, Release], ids=lambda m: m.__name__)
def test_other_machines_are_drawn_whole_and_readable(dot: None, machine: type[StateMachine]) -> None:
    graph = diagram.lifecycle_graph(machine)
    picture = Picture(diagram.to_svg(graph))
    structure = picture.structure()
    assert structure.pop("title")[0].startswith(machine.__name__)  # a machine's own name as the title
    assert structure == _expected_structure(graph)
    assert len(picture.states) == len(machine.states)
    picture.check_readable()


def test_the_graph_of_twelve_states_keeps_its_cycle_and_its_parallel_transitions() -> None:
    graph = diagram.lifecycle_graph(Release)
    pairs = [(e.source, e.target) for e in graph.edges]
    assert pairs.count(("verifying", "live")) == 2
    assert {("testing", "building"), ("reviewing", "building")} <= set(pairs)
    assert len(graph.states) == 12
    assert graph.internal == ((("comment",), ("reviewing",)),)
    text = diagram.to_dot(graph)
    assert "comment: allowed in In review; the state stays" in text
    mermaid = diagram.to_mermaid(graph)
    assert "    verifying --> live : promote [healthy]\n" in mermaid
    assert "    verifying --> live : force [is_admin]\n" in mermaid
    review = diagram.lifecycle_graph(Review)
    assert ("approve", ("not is_stale",)) in {(e.event, e.guards) for e in review.edges}


def test_without_graphviz_svg_and_png_say_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    for render in (diagram.to_svg, diagram.to_png):
        with pytest.raises(diagram.DiagramUnavailable, match="apt-get install graphviz"):
            render()
    assert diagram.to_dot()
    assert diagram.to_mermaid()
    result = CliRunner().invoke(app, ["diagram", "--format", "png", "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2  # as for other usage errors
    assert result.stderr.startswith("error: SVG and PNG output need Graphviz's dot program")
    assert "--format mermaid and --format dot need nothing" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_failing_dot_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(diagram.DiagramUnavailable, match="dot failed: Error: syntax error in line 1"):
        diagram.to_svg()


# ---------------------------------------------------------------------------------------------- docs and CLI


def test_the_pictures_in_docs_are_current(dot: None) -> None:
    committed = Picture((ROOT / "docs" / "lifecycle.svg").read_text(encoding="utf-8"))
    assert committed.structure() == Picture(diagram.to_svg()).structure(), \
        "redraw with: sessionflow diagram --format svg -o docs/lifecycle.svg (and --format png -o docs/lifecycle.png)"
    width, _ = _png_size((ROOT / "docs" / "lifecycle.png").read_bytes())
    assert width == _png_size(diagram.to_png())[0]
    lifecycle = (ROOT / "docs" / "lifecycle.md").read_text(encoding="utf-8")
    match = re.search(r"```mermaid\n(.*?)```", lifecycle, flags=re.DOTALL)
    assert match is not None, "docs/lifecycle.md has no mermaid block"
    assert match.group(1) == diagram.to_mermaid(), "regenerate with: sessionflow diagram --format mermaid"
    assert "](lifecycle.svg)" in lifecycle


def test_the_diagram_command(tmp_path: Path, dot: None) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'd.db'}"
    result = runner.invoke(app, ["diagram"])
    assert result.exit_code == 0
    assert result.stdout == diagram.to_mermaid()
    assert runner.invoke(app, ["diagram", "--format", "dot"]).stdout == diagram.to_dot()
    out = tmp_path / "l.svg"
    result = runner.invoke(app, ["diagram", "--format", "svg", "-o", str(out)])
    assert result.exit_code == 0
    assert Picture(out.read_text(encoding="utf-8")).structure() == Picture(diagram.to_svg()).structure()
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
    png = tmp_path / "l.png"
    result = runner.invoke(app, ["--db", db, "diagram", "--counts", "--format", "png", "-o", str(png), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["bytes"] == png.stat().st_size
    assert _png_size(png.read_bytes())[0] > 0
