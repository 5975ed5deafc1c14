"""The documentation's examples are tests.

Every fenced code block marked ``python`` in ``README.md`` and ``docs/*.md`` is run. The blocks of one file
run in order in one namespace (a later block may use what an earlier one defined), in a fresh temporary
working directory. A block that must not run is fenced as ``text`` or ``pycon`` instead.

Line numbers in a failing block's traceback are those of the Markdown file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the first line of code
    language: str
    code: str


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their language and position."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, indent = match["fence"], match["indent"]
        language = match["info"].lower()
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith(fence[0] * len(fence)):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.name}:{index + 1}: code block is never closed")
        body = [line[len(indent):] if line.startswith(indent) else line for line in lines[start:end]]
        blocks.append(Block(path, start + 1, language, "\n".join(body) + "\n"))
        index = end + 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [block for block in code_blocks(path) if block.language in {"python", "py", "python3"}]


def test_the_documents_exist() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/index.md", "docs/lifecycle.md", "docs/errors.md", "docs/limits.md"} <= names


def test_the_readme_quick_start_is_one_of_the_tested_examples() -> None:
    blocks = python_blocks(ROOT / "README.md")
    assert any("SessionManager.in_memory(default_ttl=timedelta(hours=1)) as mgr" in block.code
               for block in blocks), "the README quick start is missing or not fenced as python"


def test_block_extraction_keeps_languages_and_lines(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# t\n\n```python\nx = 1\n```\n\n```text\nnot code\n```\n\n```pycon\n>>> 1\n```\n"
                   "\n- item\n\n  ```python\n  y = x + 1\n  ```\n", encoding="utf-8")
    blocks = code_blocks(doc)
    assert [(b.language, b.line, b.code) for b in blocks] == [
        ("python", 4, "x = 1\n"), ("text", 8, "not code\n"), ("pycon", 12, ">>> 1\n"), ("python", 18, "y = x + 1\n")]
    assert [b.code for b in python_blocks(doc)] == ["x = 1\n", "y = x + 1\n"]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"docs_{path.stem}"}
    for block in python_blocks(path):
        # Pad with blank lines so a traceback points at the Markdown file's own line numbers.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(path), "exec"), namespace)
