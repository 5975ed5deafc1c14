"""docs/deployment.md shows a picture of each topology: each Graphviz source in docs/deployment/ has its SVG and
PNG beside it, drawn from the source as it is now, and the document shows every one of them."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.postgres import in_ci

ROOT = Path(__file__).resolve().parents[2]
PICTURES = ROOT / "docs" / "deployment"
DOCUMENT = ROOT / "docs" / "deployment.md"
SOURCES = sorted(PICTURES.glob("*.dot"))
SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _drawn(svg: str) -> dict[str, list[str]]:
    """The nodes and edges of a Graphviz SVG (by their titles), each with its texts."""
    root = ET.fromstring(svg)
    shown: dict[str, list[str]] = {}
    for group in root.iter(f"{SVG}g"):
        kind = group.attrib.get("class")
        title = group.find(f"{SVG}title")
        if kind in ("node", "edge", "cluster") and title is not None:
            shown[f"{kind}:{title.text}"] = [t.text or "" for t in group.iter(f"{SVG}text")]
    return shown


def test_there_is_a_picture_of_each_topology() -> None:
    assert [p.stem for p in SOURCES] == ["one-host-sqlite", "one-process", "postgres-standby", "redis-replicas",
                                         "several-hosts-postgres"]
    shown = set(re.findall(r"!\[[^\]]*\]\(deployment/([\w-]+)\.svg\)", DOCUMENT.read_text(encoding="utf-8")))
    assert shown == {p.stem for p in SOURCES}
    for source in SOURCES:
        assert source.with_suffix(".svg").is_file()
        assert source.with_suffix(".png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_each_picture_is_drawn_from_its_source(source: Path) -> None:
    if shutil.which("dot") is None:
        message = "Graphviz's dot is not installed (Debian: apt-get install graphviz; `make test` does it as root)"
        if in_ci():
            pytest.fail(f"CI: {message}")
        pytest.skip(message)
    fresh = subprocess.run(["dot", "-Tsvg", str(source)], capture_output=True, text=True, check=True, timeout=60)
    committed = _drawn(source.with_suffix(".svg").read_text(encoding="utf-8"))
    assert committed, f"{source.name}: nothing drawn"
    assert committed == _drawn(fresh.stdout), (
        f"redraw with: dot -Tsvg {source.relative_to(ROOT)} -o {source.with_suffix('.svg').relative_to(ROOT)} "
        f"&& dot -Tpng -Gdpi=96 {source.relative_to(ROOT)} -o {source.with_suffix('.png').relative_to(ROOT)}")
