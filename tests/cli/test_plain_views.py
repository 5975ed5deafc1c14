"""``sessionflow show`` off a terminal prints the session's view as rich would print its table there, without
loading rich: the text is compared with rich's own rendering, for chosen and generated sessions, and what rich
would lay out otherwise (files, notes, backslashes, emoji codes, wide characters, wrapping) still goes through
rich."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from sessionflow import SessionManager, SessionStatus
from sessionflow.domain.models import FileResult, Session, SessionNote, SessionProgress
from sessionflow.entrypoints.cli.render import Output
from sessionflow.entrypoints.cli.tables import session_table, session_text

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _session(**changes: Any) -> Session:
    values: dict[str, Any] = {"id": uuid4(), "status": SessionStatus.PENDING, "version": 1, "ttl_seconds": 3600,
                              "created_at": NOW, "updated_at": NOW, "expires_at": NOW + timedelta(hours=1)}
    values.update(changes)
    return Session(**values)


def _rich(session: Session, width: int = Output.PLAIN_WIDTH) -> str:
    """What rich prints for the session's table on a console like the command line's off a terminal."""
    out = io.StringIO()
    Console(file=out, highlight=False, soft_wrap=True, width=width).print(session_table(session))
    return out.getvalue()


CHOSEN = {
    "new": _session(),
    "every field": _session(
        status=SessionStatus.FAILED, version=7, user_id="u[x]", workspace_id="ws-1", module_name="a module",
        metadata={"a": 1, "b": [1, "two"], "c": {"d": None}}, ttl_seconds=90.5, max_expires_at=NOW + timedelta(days=1),
        closed_at=NOW, closed_by="alice@example.com", failure_reason="disk full (again)", expires_at=None,
        progress=SessionProgress(total_files=0, current_file="x.txt")),
    "deleted": _session(deleted_at=NOW, updated_at=NOW + timedelta(seconds=1)),
    "in progress": _session(status=SessionStatus.IN_PROGRESS, version=2, user_id="bob"),
    "custom state": _session(status="reviewing", lifecycle="review", user_id="c:d"),
    "markup-like": _session(user_id="[bold]x[/bold]", module_name="[red]"),
}


@pytest.mark.parametrize("name", list(CHOSEN))
def test_the_plain_view_is_what_rich_prints(name: str) -> None:
    session = CHOSEN[name]
    text = session_text(session, Output.PLAIN_WIDTH)
    assert text is not None
    assert text + "\n" == _rich(session)


FALLBACKS = {
    "files": _session(file_paths=("a.txt", "b.txt"), progress=SessionProgress(total_files=2, processed_files=1),
                      file_results=(FileResult(path="a.txt", recorded_at=NOW),)),
    "notes": _session(notes=(SessionNote(file_path="a", status="stored", created_at=NOW),)),
    "emoji code": _session(failure_reason="broke :fire: here"),
    "wide characters": _session(user_id="ユーザー"),
    "backslash": _session(module_name="a\\[b]"),
    "two spaces": _session(failure_reason="a  b"),
    "trailing space": _session(user_id="u "),
    "too wide": _session(metadata={"k": "v" * 300}),
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_what_rich_lays_out_otherwise_goes_through_rich(name: str) -> None:
    assert session_text(FALLBACKS[name], Output.PLAIN_WIDTH) is None


_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@settings(max_examples=300, deadline=None)
@given(user=_TEXT, module=_TEXT, reason=_TEXT, closed_by=_TEXT, key=_TEXT, value=_TEXT,
       width=st.integers(min_value=40, max_value=200))
def test_whenever_there_is_a_plain_view_it_is_what_rich_prints(user: str, module: str, reason: str, closed_by: str,
                                                               key: str, value: str, width: int) -> None:
    session = _session(user_id=user or None, module_name=module or None, failure_reason=reason or None,
                       closed_by=closed_by or None, closed_at=NOW if closed_by else None,
                       metadata={key: value} if key else {})
    text = session_text(session, width)
    if text is not None:
        assert text + "\n" == _rich(session, width)


def test_show_in_a_script_prints_the_plain_view_without_loading_rich(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with SessionManager.open(url) as manager:
        session = manager.create(performer_id="alice", user_id="alice", metadata={"a": 1})
    code = ("import sys\nfrom sessionflow.entrypoints.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\n"
            "print('rich loaded' if 'rich' in sys.modules else 'no rich', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, "--db", url, "show", str(session.id)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.stderr.strip().splitlines()[-1] == "no rich", done.stderr
    assert done.stdout == _rich(session)
