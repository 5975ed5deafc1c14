"""A client that retries a write with its ``Idempotency-Key`` after any error ends with the write applied exactly
once: one session for a create, one event for a transition or a note.

A ``sessionflow serve`` process over a SQLite file, behind a :class:`FaultProxy` on the HTTP connection, and three
faults of the client's connection to it:

``reply-lost``
    the request reaches the service, which writes and answers; the answer is lost (the connection is closed),
    and new connections are refused for a while. Retried blindly, the write would be applied twice (a second
    session, a second note) or refused (a start: 409); with its key, the retry is answered with the first answer
    (``Idempotent-Replayed: true``).
``request-lost``
    the request never reaches the service: the retry with the key is the write, applied once.
``killed-after-write``
    the answer is lost and the service is killed (``SIGKILL``) before the client retries, then started again on
    the same port and file: the key is kept with the write in the database, so the new process answers the retry
    from it.

And the service stopped in the middle of a write (``killed-mid-write``): its write waits for the SQLite file's
write lock, which the test holds, when the process is killed; the write was never committed, so the retry with
the key (to the restarted service) applies it, once.

The client retries every error the same way — a broken connection, a refused one, any 5xx — until it gets an
answer that is not a 5xx, which must be the write's success. The PostgreSQL counterpart, whose faults break the
service's connection to the database instead (503 ``outcome_unknown`` / ``store_error``), is in
``test_outcome_truth.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from sessionflow import SessionManager
from tests.support.faultproxy import FaultProxy
from tests.support.locks import WriteLock
from tests.support.postgres import free_port
from tests.support.serving import wait_until_serving

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
              pytest.mark.filterwarnings("ignore::ResourceWarning"), pytest.mark.slow]
#: A fault run (``make faults``): collected only when slow tests are asked for (``-m slow``).
ONLY_WHEN_SLOW = True
pytest.importorskip("uvicorn")

#: New connections are refused this long after a fault (the client keeps retrying meanwhile).
REFUSE_FOR = 0.5
#: How long a client keeps retrying before the test gives up.
PATIENCE = 60.0


class Service:
    """A ``sessionflow serve`` process over ``url`` on a fixed loopback port; :meth:`kill` and :meth:`start` again
    keep the port and the file."""

    def __init__(self, url: str, cwd: Path) -> None:
        self.url = url
        self.cwd = cwd
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sessionflow", "--db", self.url, "serve", "--port", str(self.port),
             "--log-level", "warning"], cwd=self.cwd, env=env, text=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        wait_until_serving(f"http://127.0.0.1:{self.port}", self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.communicate(timeout=30)


@dataclass(frozen=True)
class Write:
    """A write of the client: its request (given the prepared session's id) and how many times the database
    holds it (given the test's marker user and that session)."""

    name: str
    pattern: bytes
    request: Callable[[str, str], tuple[str, str, dict[str, Any]]]
    applied: Callable[[SessionManager, str, str], int]
    status: int = 200
    state: str | None = "in_progress"


def _events(manager: SessionManager, sid: str, name: str) -> int:
    return sum(1 for event in manager.history(sid) if event.event == name)


WRITES = [
    Write("create", b"POST /sessions ",
          lambda marker, _: ("POST", "/sessions", {"performer_id": "client", "user_id": marker}),
          lambda manager, marker, _: len(manager.list(user_id=marker)), status=201, state=None),
    Write("start", b"/start ", lambda _, sid: ("POST", f"/sessions/{sid}/start", {"performer_id": "client"}),
          lambda manager, _, sid: _events(manager, sid, "started"), state="pending"),
    Write("note", b"/notes ",
          lambda _, sid: ("POST", f"/sessions/{sid}/notes",
                          {"performer_id": "client", "file_path": "a.py", "status": "stored", "memory_id": "m-1"}),
          lambda manager, _, sid: _events(manager, sid, "note_added")),
]


@dataclass
class Setup:
    service: Service
    proxy: FaultProxy
    truth: SessionManager
    path: Path
    marker: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    path = tmp_path / "served.db"
    service = Service(f"sqlite:///{path}", tmp_path)
    service.start()
    proxy = FaultProxy(service.port, settle=0.05).start()
    truth = SessionManager.open(f"sqlite:///{path}")
    try:
        yield Setup(service, proxy, truth, path, f"u-{uuid4().hex[:12]}")
    finally:
        truth.close()
        proxy.close()
        service.kill()


def prepared(s: Setup, state: str | None) -> str:
    """The session the write goes to (created and started through the service, not through the proxy)."""
    if state is None:
        return ""
    direct = f"http://127.0.0.1:{s.service.port}"
    created = httpx.post(f"{direct}/sessions", json={"performer_id": "client", "user_id": s.marker,
                                                      "file_paths": ["a.py"]}, timeout=30)
    assert created.status_code == 201, created.text
    sid = str(created.json()["id"])
    if state == "in_progress":
        assert httpx.post(f"{direct}/sessions/{sid}/start", json={"performer_id": "client"},
                          timeout=30).status_code == 200
    return sid


def retried(base: str, method: str, path: str, body: dict[str, Any], key: str,
            between: Callable[[int], None] = lambda _: None) -> tuple[httpx.Response, int]:
    """Send the write with its key until an answer that is not a 5xx (every other error: sent again); the answer
    and the number of attempts. ``between(n)`` runs after the ``n``-th attempt failed."""
    deadline = time.monotonic() + PATIENCE
    attempts = 0
    while True:
        attempts += 1
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                response = client.request(method, path, json=body, headers={"Idempotency-Key": key})
            if response.status_code < 500:
                return response, attempts
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no answer to {method} {path} within {PATIENCE} s"
        between(attempts)
        time.sleep(0.05)


@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.name)
@pytest.mark.parametrize("fault", ["reply-lost", "request-lost", "killed-after-write"])
def test_a_retry_with_the_key_applies_the_write_once(write: Write, fault: str, setup: Setup) -> None:
    sid = prepared(setup, write.state)
    method, path, body = write.request(setup.marker, sid)
    if fault == "request-lost":
        setup.proxy.drop_request(write.pattern, REFUSE_FOR)
    else:
        setup.proxy.drop_reply_after(write.pattern, REFUSE_FOR)

    def restart(attempt: int) -> None:
        if fault == "killed-after-write" and attempt == 1:
            setup.service.kill()
            setup.service.start()

    response, attempts = retried(setup.base, method, path, body, key=f"{write.name}-1", between=restart)
    what = f"{write.name}, {fault}: {response.status_code} {response.text}"
    assert setup.proxy.wait_fired(5), f"{what}: the fault never happened"
    assert attempts >= 2, what
    assert response.status_code == write.status, what
    assert (response.headers.get("idempotent-replayed") == "true") == (fault != "request-lost"), what
    assert write.applied(setup.truth, setup.marker, sid) == 1, what
    if write.name == "create":
        assert [str(s.id) for s in setup.truth.list(user_id=setup.marker)] == [response.json()["id"]], what



@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.name)
def test_a_service_killed_mid_write_then_retried_with_the_key_applies_it_once(write: Write, setup: Setup) -> None:
    sid = prepared(setup, write.state)
    method, path, body = write.request(setup.marker, sid)
    lock = WriteLock(setup.path)
    first: list[httpx.Response | BaseException] = []

    def send() -> None:
        try:
            first.append(httpx.request(method, f"{setup.base}{path}", json=body,
                                       headers={"Idempotency-Key": f"{write.name}-1"}, timeout=30))
        except BaseException as error:  # the test reads it
            first.append(error)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    time.sleep(1.0)  # the write is waiting for the lock
    assert not first, f"the write did not wait for the lock: {first}"
    setup.service.kill()
    thread.join(30)
    assert len(first) == 1, "the write's connection outlived the service"
    assert isinstance(first[0], httpx.TransportError), first
    lock.release()
    assert write.applied(setup.truth, setup.marker, sid) == 0, "a write killed before its commit was applied"
    setup.service.start()
    response, _ = retried(setup.base, method, path, body, key=f"{write.name}-1")
    assert response.status_code == write.status, response.text
    assert "idempotent-replayed" not in response.headers
    assert write.applied(setup.truth, setup.marker, sid) == 1
