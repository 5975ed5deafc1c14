"""The public API stays what docs/api.md declares: no public name disappears and no signature changes
unnoticed, and the page and the snapshot list the same names.

The snapshot, ``tests/architecture/public_api.json``, is written by ``python -m tests.architecture.public_api
--write``. Rewrite it only together with a CHANGELOG entry (docs/api.md, "The changelog").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import sessionflow
from tests.architecture.public_api import (
    CALLABLE_KINDS,
    SNAPSHOT,
    differences,
    documented,
    dump,
    load,
    main,
    resolve,
    signature_problems,
    snapshot,
)

#: What a failure says to do.
UPDATE = (
    "The public API differs from tests/architecture/public_api.json (docs/api.md lists it).\n"
    "If the change is intended, rewrite the snapshot with `python -m tests.architecture.public_api --write`, "
    "ONLY together with a CHANGELOG.md entry: 'Changed' or 'Removed' with a '**Breaking:**' note saying what "
    "callers must do, or 'Deprecated' when the old name keeps working with a DeprecationWarning for one minor "
    "release ('Added' for a new name or a new optional parameter). Update docs/api.md to match.\n"
)


@pytest.fixture(scope="module")
def current() -> dict[str, Any]:
    return snapshot()


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return load()


def test_the_public_api_matches_its_snapshot(committed: dict[str, Any], current: dict[str, Any]) -> None:
    found = differences(committed, current)
    assert not found, UPDATE + "\n".join(found)


def test_docs_api_lists_every_name_of_the_snapshot_and_no_other(committed: dict[str, Any]) -> None:
    listed = set(documented())
    missing = sorted(set(committed) - listed)
    extra = sorted(listed - set(committed))
    assert not missing, f"docs/api.md does not list these public names: {missing}"
    assert not extra, (f"docs/api.md lists names the snapshot does not have: {extra}; add them to ENTRY_POINTS in "
                       "tests/architecture/public_api.py (or remove them from the page), then:\n" + UPDATE)


def test_docs_api_shows_the_signatures_of_the_code(committed: dict[str, Any]) -> None:
    """Each function and class row shows the real parameters — names, order, kinds, which are optional and
    literal defaults — and the other rows (protocols, enums, values, aliases, fixtures) show none."""
    problems: list[str] = []
    for name, cell in documented().items():
        kind = committed.get(name, {}).get("kind")
        if kind in CALLABLE_KINDS:
            problems += signature_problems(name, cell, resolve(name))
        elif kind is not None and cell not in ("—", "fixture"):
            problems.append(f"{name}: a {kind}; docs/api.md shows {cell!r} instead of '—'")
    assert problems == []


def test_every_name_of_all_is_in_the_snapshot(committed: dict[str, Any]) -> None:
    assert {f"sessionflow.{name}" for name in sessionflow.__all__} <= set(committed)
    assert len(set(sessionflow.__all__)) == len(sessionflow.__all__), "a name is listed twice in __all__"


def test_every_public_name_resolves_and_none_is_private(committed: dict[str, Any]) -> None:
    for name in committed:
        assert not name.rpartition(".")[2].startswith("_") or name == "sessionflow.__version__", name
        resolve(name)


def test_the_snapshot_file_is_as_the_generator_writes_it(committed: dict[str, Any]) -> None:
    assert SNAPSHOT.read_text(encoding="utf-8") == dump(committed), (
        "public_api.json was edited by hand: rewrite it with `python -m tests.architecture.public_api --write`")


def test_the_generator_reports_what_differs(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                            current: dict[str, Any]) -> None:
    """The command without ``--write`` exits 1 and names each difference; ``--write`` makes them agree."""
    changed = json.loads(dump(current))
    del changed["sessionflow.replay"]
    changed["sessionflow.gone"] = {"kind": "function", "signature": "()"}
    changed["sessionflow.SessionManager"]["members"]["create"] = "(self)"
    changed["sessionflow.SessionManager"]["members"].pop("touch")
    fake = tmp_path / "public_api.json"
    fake.write_text(dump(changed), encoding="utf-8")
    monkeypatch.setattr("tests.architecture.public_api.SNAPSHOT", fake)

    lines: list[str] = []
    assert main([], report=lines.append) == 1
    assert lines[:-1] == [
        "removed: sessionflow.gone",
        "added: sessionflow.replay",
        f"changed: sessionflow.SessionManager members create: '(self)' -> "
        f"{current['sessionflow.SessionManager']['members']['create']!r}",
        f"changed: sessionflow.SessionManager members touch: added "
        f"({current['sessionflow.SessionManager']['members']['touch']!r})",
    ]
    assert main(["--write"], report=lines.append) == 0
    assert json.loads(fake.read_text(encoding="utf-8")) == current
    assert main([], report=lines.append) == 0


def _example(store: object, *, ttl: float = 60.0, name: str = "x", **options: object) -> None:
    """A function whose documented signature the checker compares."""


@pytest.mark.parametrize(("cell", "expected"), [
    ("`_example(store, *, ttl=60.0, name='x', **options)`", []),
    ("`_example(store, *, ttl=..., name=..., **options)`", []),
    ("`_example(store, *, name='x', ttl=60.0, **options)`", ["docs/api.md shows (store, *, name='x'"]),
    ("`_example(store, ttl=60.0, name='x', **options)`", ["docs/api.md shows (store, ttl=60.0"]),
    ("`_example(store, *, ttl, name='x', **options)`", ["shows 'ttl' as required"]),
    ("`_example(store, *, ttl=30, name='x', **options)`", ["shows ttl=30, the code's default is 60.0"]),
    ("`_example(store, *, ttl=60.0, name='y', **options)`", ["shows name='y', the code's default is 'x'"]),
    ("—", ["docs/api.md shows no signature"]),
    ("`other(store)`", ["shows the signature of 'other'"]),
])
def test_the_signature_checker_catches_what_drifts(cell: str, expected: list[str]) -> None:
    problems = signature_problems("tests._example", cell, _example)
    assert len(problems) == len(expected), problems
    for problem, text in zip(problems, expected, strict=True):
        assert text in problem, problem
