"""The mistakes of a document: each located by key path and line, and the error that lists them.

Owns :class:`DocumentProblem` (key path, line, what is wrong), how problems are described on one line
(:func:`describe_problems`), ordered (:func:`ordered_problems`) and written as JSON (:func:`problems_dict`),
:class:`LifecycleDocumentError`, and the types of key paths (:data:`KeyPath`) and lines (:data:`Lines`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sessionflow.errors import LifecycleDefinitionError

__all__ = ["DocumentProblem", "ErrorFactory", "KeyPath", "LifecycleDocumentError", "Lines", "describe_problems",
           "ordered_problems", "problems_dict", "render_path", "show_value"]

#: A key path inside a document: mapping keys (as text) and list indices.
KeyPath = tuple[str | int, ...]
#: The line (from 1) of each key path of a YAML document.
Lines = dict[KeyPath, int]
#: How a caller's error is made from the problems and the file (``None`` for a document given in memory).
ErrorFactory = Callable[[Sequence["DocumentProblem"], "str | None"], Exception]

_SHOWN_PROBLEMS = 20


def show_value(value: Any) -> str:
    """``value`` as a problem shows it: its repr, cut at 60 characters (a huge integer is not written out)."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "a very large number"
    return text if len(text) <= 60 else text[:57] + "..."


def render_path(path: KeyPath) -> str:
    """``("events", "go", 0, "to")`` -> ``events.go[0].to``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part[:60]}" if text else part[:60])
    return text


@dataclass(frozen=True, slots=True)
class DocumentProblem:
    """One mistake in a document: its key path (``timeouts.review.after``; empty for the whole document),
    what is wrong, and its line (from 1) when the file is YAML."""

    path: str
    problem: str
    line: int | None = None

    @classmethod
    def at(cls, path: KeyPath, problem: str, lines: Lines) -> DocumentProblem:
        """The problem at ``path``, on the line of ``path`` or of its nearest enclosing key."""
        for end in range(len(path), -1, -1):
            key = tuple(p if isinstance(p, int) else str(p) for p in path[:end])
            if key in lines:
                return cls(render_path(path), problem, lines[key])
        return cls(render_path(path), problem)

    def describe(self, file: str | None) -> str:
        """``FILE:LINE: PATH: PROBLEM``, leaving out what is not known."""
        where = f"{file}:{self.line}" if file and self.line else file or (f"line {self.line}" if self.line else "")
        return ": ".join(part for part in (where, self.path, self.problem) if part)


def describe_problems(file: str | None, problems: Sequence[DocumentProblem]) -> str:
    """One line: each problem located (at most 20, then how many more), separated by ``; ``."""
    text = "; ".join(p.describe(file) for p in problems[:_SHOWN_PROBLEMS]) or (file or "invalid document")
    more = len(problems) - _SHOWN_PROBLEMS
    return text + (f"; and {more} more problems" if more > 0 else "")


def ordered_problems(problems: Sequence[DocumentProblem]) -> tuple[DocumentProblem, ...]:
    """The problems in the order of their lines (those without a line last, in their order)."""
    return tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))


def problems_dict(file: str | None, problems: Sequence[DocumentProblem]) -> dict[str, Any]:
    """The JSON form of located problems: ``{"file": ..., "problems": [{"path", "line", "problem"}, ...]}``."""
    return {"file": file, "problems": [{"path": p.path, "line": p.line, "problem": p.problem} for p in problems]}


class LifecycleDocumentError(LifecycleDefinitionError):
    """A lifecycle document or file that cannot be used. ``file`` is the file (``None`` for a document given
    in memory); ``problems`` lists each :class:`DocumentProblem` — key path, line, what is wrong — and the
    message shows them on one line: ``review.yaml:12: timeouts.in_review.after: 'soon' is not a duration ...``.
    """

    def __init__(self, problems: Sequence[DocumentProblem], file: str | None = None) -> None:
        self.file = file
        self.problems = ordered_problems(problems)
        super().__init__(describe_problems(file, self.problems))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(problems_dict(self.file, self.problems))
        return data
