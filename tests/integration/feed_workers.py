"""Processes of the feed tests, run as ``python -m tests.integration.feed_workers <role> ...``.

* ``writer URL COUNT TAG``: COUNT sessions, each created, started and completed (three events).
* ``consumer URL NAME OUT``: follows the feed as consumer NAME, appending ``pid position record_id`` to the file
  OUT for each event handled (flushed before the handler returns), until killed.
"""

from __future__ import annotations

import os
import sys

from sessionflow import SessionEvent, SessionManager


def writer(url: str, count: int, tag: str) -> None:
    with SessionManager.open(url, migrate=False) as manager:
        for i in range(count):
            user = f"{tag}-{i}"
            session = manager.create(performer_id=user, user_id=user)
            manager.start(session.id, performer_id=user)
            manager.complete(session.id, performer_id=user)


def consumer(url: str, name: str, out: str) -> None:
    pid = os.getpid()
    with SessionManager.open(url, migrate=False) as manager, open(out, "a", encoding="utf-8") as sink:

        def handle(event: SessionEvent) -> None:
            sink.write(f"{pid} {event.position} {event.record_id}\n")
            sink.flush()

        manager.consume(name, handle, batch_size=20, poll_interval=0.05)


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    if role == "writer":
        writer(args[0], int(args[1]), args[2])
    elif role == "consumer":
        consumer(args[0], args[1], args[2])
    else:
        raise SystemExit(f"unknown role {role!r}")
