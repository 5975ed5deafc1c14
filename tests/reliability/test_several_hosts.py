"""Several "hosts" on one PostgreSQL, one of them lost under load.

Two hosts (``tests/support/hosts.py``): each a ``sessionflow serve`` on its own port and a ``sessionflow worker``,
with an environment and a working directory of its own, both with ``single_active_per_user`` on. Client threads
alternate between the two hosts' ports: each creates a short-lived session (``ttl_seconds`` of 1.5 s) for one of a
few users on one host, starts it on either (every pairing in turn) and completes half of the started ones on
either, so the users' starts race across hosts, each host acts on sessions the other one moved on, and sessions
expire all along. Mid-load, every process of the second host is SIGKILLed. Then:

* the requests to the surviving host get **no 5xx** (and no transport error): every answer is 2xx or a 409 (the
  user's other session is in progress, or the session expired first: a complete is never refused otherwise);
* the requests to the killed host fail (refused, or cut while in flight at the kill) and are counted apart; none
  failed before the kill;
* **single-active-per-user** holds: read from the feed in commit order, no start ever leaves a user with two
  sessions in progress (a session past its deadline is no longer active, expired or not yet: docs/http.md);
* **exactly one** ``expired`` event per session not completed (every such session expires: the surviving host's
  waker and worker expire those the killed one held deadlines of), none for a completed one.

Slow (some 40 s): collected only when slow tests are asked for (``make faults``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from sessionflow import SessionEvent, SessionManager
from tests.support.hosts import Host, running_hosts
from tests.support.postgres import PostgresUnavailable, require_postgres, throwaway_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
#: Collected only when slow tests are asked for (``-m slow``): tests/conftest.py deselects it otherwise.
ONLY_WHEN_SLOW = True
pytest.importorskip("uvicorn")

CLIENTS = 4
USERS = 12
TTL_SECONDS = 1.5
#: Seconds of load before the kill, and after it.
BEFORE_KILL = 6.0
AFTER_KILL = 8.0
SCENARIO_BUDGET = 90.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SINGLE_ACTIVE = {"SESSIONFLOW_POLICIES__SINGLE_ACTIVE_PER_USER": "true"}


@dataclass
class Load:
    """Clients alternating between the hosts' ports; what each request got, per host."""

    hosts: list[Host]
    killed_at: float | None = None
    answers: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    #: Transport errors per host: (seconds since the kill, negative before it; the exception's name).
    failed: dict[str, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))
    bad: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def _send(self, client: httpx.Client, host: Host, path: str, body: dict[str, object]) -> httpx.Response | None:
        try:
            response = client.post(f"{host.base}{path}", json=body)
        except httpx.TransportError as error:
            since = time.monotonic() - self.killed_at if self.killed_at is not None else -1.0
            with self.lock:
                self.failed[host.name].append((since, type(error).__name__))
            return None
        with self.lock:
            self.answers[host.name][response.status_code] += 1
        if response.status_code >= 500:
            self.bad.append(f"{host.name} {path}: {response.status_code} {response.text}")
        return response

    def client(self, number: int) -> None:
        chooser = random.Random(number)
        turn = number
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                user = f"user-{chooser.randrange(USERS)}"
                # the create and the start go through every pairing of hosts in turn
                creating, starting = self.hosts[turn % 2], self.hosts[(turn // 2) % 2]
                turn += 1
                created = self._send(client, creating, "/sessions",
                                     {"performer_id": user, "user_id": user, "ttl_seconds": TTL_SECONDS})
                if created is None or created.status_code != 201:
                    continue
                sid = created.json()["id"]
                started = self._send(client, starting, f"/sessions/{sid}/start", {"performer_id": user})
                if started is not None and started.status_code == 200 and chooser.random() < 0.5:
                    self._complete(client, self.hosts[(turn // 4) % 2], sid, user)
                time.sleep(0.01)

    def _complete(self, client: httpx.Client, host: Host, sid: str, user: str) -> None:
        """Complete a started session: refused only if it expired first (never on a copy of it from before
        its start, as another host's cache may hold)."""
        completed = self._send(client, host, f"/sessions/{sid}/complete", {"performer_id": user})
        if completed is not None and completed.status_code == 409 and completed.json().get("state") != "expired":
            self.bad.append(f"{host.name} complete: {completed.text}")


def _feed(url: str) -> Iterator[SessionEvent]:
    """Every event of the store, in position order (reading the feed expires nothing)."""
    with SessionManager.open(url) as reader:
        after = 0
        while page := reader.events(after=after, limit=10_000):
            yield from page
            after = page[-1].position or after


def _expired_counts(events: list[SessionEvent]) -> dict[UUID, int]:
    """Per session not completed: how many ``expired`` events it has."""
    completed = {e.session_id for e in events if e.event == "completed"}
    counts = {e.session_id: 0 for e in events if e.event == "created" and e.session_id not in completed}
    for event in events:
        if event.event == "expired":
            counts[event.session_id] = counts.get(event.session_id, 0) + 1
    return counts


def _completed_then_expired(events: list[SessionEvent]) -> set[UUID]:
    completed = {e.session_id for e in events if e.event == "completed"}
    return {e.session_id for e in events if e.event == "expired" and e.session_id in completed}


def _wait_all_expired(url: str, timeout: float) -> list[SessionEvent]:
    deadline = time.monotonic() + timeout
    while True:
        events = list(_feed(url))
        if all(_expired_counts(events).values()) or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def _millis(moment: datetime) -> int:
    return int((moment - EPOCH) / timedelta(milliseconds=1))


def _two_in_progress(events: list[SessionEvent]) -> list[str]:
    """Every start (in commit order) that left its user with two sessions in progress and before their deadlines
    (a session past its deadline no longer counts as active, expired or not yet: docs/http.md)."""
    owner: dict[UUID, str] = {}
    deadline: dict[UUID, int] = {}
    in_progress: dict[str, set[UUID]] = defaultdict(set)
    breaks: list[str] = []
    for event in events:
        if event.event == "created":
            owner[event.session_id] = str(event.payload["user_id"])
            deadline[event.session_id] = _millis(datetime.fromisoformat(str(event.payload["expires_at"])))
            continue
        user = owner[event.session_id]
        if event.target_state != "in_progress":
            in_progress[user].discard(event.session_id)
            continue
        now = _millis(event.timestamp)
        live = {sid for sid in in_progress[user] if deadline[sid] > now}
        if live:
            breaks.append(f"{user} at position {event.position}: {event.session_id} beside {sorted(map(str, live))}")
        in_progress[user].add(event.session_id)
    return breaks


def test_one_host_lost_under_load_the_other_answers_and_the_rules_hold(tmp_path: Path) -> None:
    began = time.monotonic()
    try:
        server = throwaway_postgres()
        url = server.__enter__()
    except PostgresUnavailable as error:
        require_postgres(error)
    try:
        SessionManager.open(url).close()  # the schema, once, before the hosts start
        with running_hosts(2, url, tmp_path, env=SINGLE_ACTIVE) as hosts:
            survivor, lost = hosts
            load = Load(hosts)
            clients = [threading.Thread(target=load.client, args=(n,), daemon=True) for n in range(CLIENTS)]
            for thread in clients:
                thread.start()
            try:
                time.sleep(BEFORE_KILL)
                before = sum(load.answers[lost.name].values())
                load.killed_at = time.monotonic()
                lost.kill()
                survived_from = sum(load.answers[survivor.name].values())
                time.sleep(AFTER_KILL)
            finally:
                load.stop.set()
                for thread in clients:
                    thread.join(60)
            after = sum(load.answers[survivor.name].values()) - survived_from
            events = _wait_all_expired(url, timeout=30)
            logs = survivor.log_tail()
    finally:
        server.__exit__(None, None, None)

    expired = _expired_counts(events)
    breaks = _two_in_progress(events)
    took = time.monotonic() - began
    answers = {name: dict(counts) for name, counts in load.answers.items()}
    failures = {name: Counter(kind for _, kind in failed) for name, failed in load.failed.items()}
    print(f"\n[hosts] {took:.1f} s; answers {answers}; transport errors {failures}; {len(expired)} sessions, "
          f"expired events per session {dict(Counter(expired.values()))}; answers from the survivor after the "
          f"kill: {after}")

    assert not any(thread.is_alive() for thread in clients), "a client hung"
    assert load.bad == [], load.bad[:20]
    assert not load.failed[survivor.name], f"the surviving host failed requests: {load.failed[survivor.name][:20]}"
    assert all(since >= 0 for since, _ in load.failed[lost.name]), "requests failed before the kill"
    assert load.failed[lost.name], "no request reached for the killed host after the kill"
    assert before > 0, "the killed host answered nothing before the kill"
    assert after > 0, "the surviving host answered nothing after the kill"
    assert load.answers[survivor.name][200] > 0, "no start went through"
    assert set(load.answers[survivor.name]) <= {200, 201, 409}, load.answers[survivor.name]
    assert not breaks, f"two sessions of a user in progress: {breaks[:10]}"
    assert not _completed_then_expired(events), "a completed session expired"
    assert sum(1 for e in events if e.event == "completed") > 0, "no session was completed"
    assert sorted(set(expired.values())) == [1], f"expired events per session: {Counter(expired.values())}\n{logs}"
    assert took <= SCENARIO_BUDGET, f"the scenario took {took:.1f} s"
