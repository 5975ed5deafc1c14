"""What every load run checks afterwards, and where it runs: shared by the library and HTTP load runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from uuid import UUID

from sessionflow import SessionManager, replay


def check_acknowledged(manager: SessionManager, acked: Mapping[UUID, int]) -> tuple[list[str], int]:
    """Problems found in the sessions written (versions not contiguous, acknowledged writes missing or doubled,
    a projection that is not the fold of its history, anything ``verify`` finds) and how many events they hold.

    Projection and history are read together, so a waker still expiring sessions causes no false report.
    Lazy and swept expiries add ``system`` events on top of the acknowledged ones.
    """
    problems: list[str] = []
    events = 0
    for sid, count in acked.items():
        projection, history = manager.store.read_together(sid)
        if [e.version for e in history] != list(range(1, len(history) + 1)):
            problems.append(f"{sid}: versions not contiguous")
        own = sum(1 for e in history if e.performer_id != "system")
        if own != count:
            problems.append(f"{sid}: {count} acknowledged writes but {own} events")
        if replay(history) != projection:
            problems.append(f"{sid}: projection differs from its history")
        events += len(history)
    problems.extend(str(d) for d in manager.verify())
    return problems, events


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    """``url``, or a throwaway PostgreSQL server for the run."""
    if url:
        yield url
        return
    from tests.support.postgres import throwaway_postgres

    with throwaway_postgres() as pg_url:
        yield pg_url
