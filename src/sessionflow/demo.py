"""A guided tour: drive a few sessions through every path of the lifecycle and print their histories.

Run it with ``python -m sessionflow.demo`` (or ``make demo``). It uses the embedded default store
(``sqlite:///./sessionflow.db``) when this installation has one (``SessionManager.open``), and an in-memory
store otherwise; ``--in-memory`` forces the latter and ``--url`` names another database.

The paths shown:

1. completed — files recorded (one processed, one failed), a note, an update, a touch, then ``complete``;
   before that, an early ``complete`` is refused by its guard and appends nothing;
2. failed — ``fail`` with a reason;
3. expired — a session with a 1-second TTL, expired by the sweep (``expire_sessions``) once overdue, and
   another one expired on read (a read never reports a session as live past its deadline);
4. deleted — gone from ``get``, while its history stays readable.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, TextIO
from uuid import UUID

from sessionflow.application.manager import SessionManager
from sessionflow.domain.models import EventType, SessionEvent, SessionStatus
from sessionflow.domain.values import format_timestamp
from sessionflow.errors import InvalidTransition, SessionNotFound

__all__ = ["format_history", "main", "open_manager", "run_demo"]

#: The embedded default store of ``SessionManager.open()``.
DEFAULT_URL = "sqlite:///./sessionflow.db"
#: The TTL of the sessions that are left to expire.
SHORT_TTL = timedelta(seconds=1)
_DETAIL_WIDTH = 120
USER = "demo-user"


def durable_store_available() -> bool:
    """True when this installation can open a durable store (``sessionflow.bootstrap`` exists)."""
    return importlib.util.find_spec("sessionflow.bootstrap") is not None


def open_manager(url: str | None = None, *, in_memory: bool = False) -> tuple[SessionManager, str]:
    """A manager for the demo and a description of where its sessions live."""
    if in_memory:
        return SessionManager.in_memory(), "an in-memory store"
    if durable_store_available():
        target = url or DEFAULT_URL
        return SessionManager.open(target), target
    if url is not None:
        raise SystemExit(f"error: no durable store in this installation, cannot open {url}")
    return SessionManager.in_memory(), "an in-memory store (no durable store in this installation)"


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _created_details(payload: Mapping[str, Any]) -> list[str]:
    parts = [f"{key}={payload[key]}" for key in ("user_id", "module_name") if payload.get(key)]
    files = payload.get("file_paths") or []
    if files:
        parts.append(f"files={len(files)}")
    if payload.get("metadata"):
        parts.append(f"metadata={_short(payload['metadata'])}")
    ttl = payload.get("ttl_seconds")
    if isinstance(ttl, int | float):
        parts.append(f"ttl={timedelta(seconds=ttl)}")
    if payload.get("expires_at"):
        parts.append(f"expires_at={payload['expires_at']}")
    return parts


def _details(event: SessionEvent) -> str:
    if event.event is EventType.CREATED:
        parts = _created_details(event.payload)
    else:
        parts = [f"{key}={_short(value)}" for key, value in event.payload.items()
                 if value is not None and value != [] and value != {}]
    text = " ".join(parts)
    return text if len(text) <= _DETAIL_WIDTH else text[: _DETAIL_WIDTH - 3] + "..."


def _transition(event: SessionEvent) -> str:
    target = event.target_state.value
    if event.source_state is None:
        return f"-> {target}"
    if event.source_state is event.target_state:
        return target
    return f"{event.source_state.value} -> {target}"


def format_history(events: Sequence[SessionEvent]) -> str:
    """The events as a plain-text table: version, event, state change, performer, time and payload."""
    header = ("v", "event", "state", "performer", "timestamp (UTC)", "details")
    rows = [(str(e.version), e.event.value, _transition(e), e.performer_id, format_timestamp(e.timestamp),
             _details(e)) for e in events]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _show(out: TextIO, manager: SessionManager, title: str, session_id: UUID) -> None:
    history = manager.history(session_id)
    last = history[-1]
    state = last.target_state.value + (" (deleted)" if last.event is EventType.DELETED else "")
    print(f"\n{title}\n  session {session_id} — {state}, version {last.version}\n", file=out)
    for row in format_history(history).splitlines():
        print(f"  {row}", file=out)


def run_demo(manager: SessionManager, out: TextIO = sys.stdout) -> dict[str, UUID]:
    """Drive one session down each path of the lifecycle, print the histories, return the session ids."""
    # 1. completed, with files and notes
    done = manager.create(user_id=USER, workspace_id="ws-demo", module_name="auth",
                          file_paths=["auth/login.py", "auth/tokens.py"], metadata={"ticket": "DEMO-1"},
                          performer_id=USER)
    manager.start(done.id, performer_id=USER)
    manager.update(done.id, current_file="auth/login.py", performer_id=USER)
    manager.record_file(done.id, "auth/login.py", performer_id=USER)
    try:
        manager.complete(done.id, performer_id=USER)
    except InvalidTransition as refused:
        unchanged = manager.get(done.id)
        print(f"refused as expected: {refused}\n  (nothing appended: still version {unchanged.version})",
              file=out)
    manager.record_file(done.id, "auth/tokens.py", error="parse error at line 12", performer_id=USER)
    manager.add_note(done.id, file_path="auth/login.py", memory_id="mem-1", status="stored", performer_id=USER)
    manager.touch(done.id, performer_id=USER)
    completed = manager.complete(done.id, performer_id=USER)
    assert completed.status is SessionStatus.COMPLETED

    # 2. failed, with a reason
    failing = manager.create(user_id=USER, workspace_id="ws-demo", module_name="billing",
                             file_paths=["billing/invoice.py"], performer_id=USER)
    manager.start(failing.id, performer_id=USER)
    failed = manager.fail(failing.id, reason="upstream service unavailable", performer_id=USER)
    assert failed.status is SessionStatus.FAILED

    # 3. expired through their deadlines: one by the sweep, one on read
    swept = manager.create(user_id=USER, workspace_id="ws-demo", module_name="search",
                           file_paths=["search/index.py"], ttl=SHORT_TTL, performer_id=USER)
    manager.start(swept.id, performer_id=USER)
    lazy = manager.create(user_id=USER, workspace_id="ws-demo", module_name="reports", ttl=SHORT_TTL,
                          performer_id=USER)
    wait = SHORT_TTL.total_seconds() + 0.2
    print(f"\nwaiting {wait:g} s for two sessions with a {SHORT_TTL.total_seconds():g}-second TTL to fall due...",
          file=out)
    time.sleep(wait)
    read = manager.get(lazy.id)
    print(f"read after the deadline: session {lazy.id} is {read.status.value} "
          f"(get_active gives {manager.get_active(lazy.id)})", file=out)
    count = manager.expire_sessions()
    print(f"expire_sessions() expired {count} overdue session(s)", file=out)
    assert manager.get(swept.id).status is SessionStatus.EXPIRED

    # 4. deleted
    doomed = manager.create(user_id=USER, workspace_id="ws-demo", module_name="scratch", performer_id=USER)
    manager.delete(doomed.id, performer_id=USER)
    try:
        manager.get(doomed.id)
    except SessionNotFound as gone:
        print(f"after delete: {gone} (its history stays readable)", file=out)

    ids = {"completed": done.id, "failed": failing.id, "expired by the sweep": swept.id,
           "expired on read": lazy.id, "deleted": doomed.id}
    titles = {
        "completed": "1. Completed — files recorded (one failed), a note, an update, a touch",
        "failed": "2. Failed with a reason",
        "expired by the sweep": "3a. Expired by expire_sessions() once its deadline passed",
        "expired on read": "3b. Expired on read: a read never reports a session live past its deadline",
        "deleted": "4. Deleted: gone from get() and list(), history kept",
    }
    for key, session_id in ids.items():
        _show(out, manager, titles[key], session_id)
    return ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionflow.demo", description=__doc__.splitlines()[0]
                                     if __doc__ else None)
    parser.add_argument("--url", help=f"database URL of the durable store (default: {DEFAULT_URL})")
    parser.add_argument("--in-memory", action="store_true", help="use an in-memory store")
    args = parser.parse_args(argv)
    manager, where = open_manager(args.url, in_memory=args.in_memory)
    with manager:
        print(f"sessionflow demo — sessions stored in {where}")
        run_demo(manager)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
