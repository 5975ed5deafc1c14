"""A write-heavy (or sweep-heavy) process for the crash tests: prints each acknowledged write, then is killed.

Usage: python -m tests.reliability.crash_worker URL writes|sweep
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from sessionflow import ConcurrencyConflict, SessionManager


def writes(url: str) -> None:
    with SessionManager.open(url, migrate=False) as manager:
        i = 0
        while True:
            s = manager.create(performer_id="crash", file_paths=["a", "b"], metadata={"i": i})
            print(f"ack {s.id} {s.version}", flush=True)
            for step in ("start", "note", "file", "touch"):
                try:
                    if step == "start":
                        s = manager.start(s.id, performer_id="crash")
                    elif step == "note":
                        s = manager.add_note(s.id, file_path="a", memory_id=f"m{i}", status="ok", performer_id="crash")
                    elif step == "file":
                        s = manager.record_file(s.id, "a", performer_id="crash")
                    else:
                        s = manager.touch(s.id, performer_id="crash")
                except ConcurrencyConflict:
                    continue
                print(f"ack {s.id} {s.version}", flush=True)
            i += 1


def sweep(url: str) -> None:
    far = datetime(2100, 1, 1, tzinfo=UTC)
    with SessionManager.open(url, migrate=False) as manager:
        print("sweeping", flush=True)
        while True:
            if manager.expire_sessions(now=far, batch_size=200) == 0:
                print("done", flush=True)
                return


if __name__ == "__main__":
    {"writes": writes, "sweep": sweep}[sys.argv[2]](sys.argv[1])
