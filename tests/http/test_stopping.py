"""The app's stop, in process: once ``app.state.stopping`` is set ``/readyz`` answers 503, responses say
``Connection: close`` and event streams end; :func:`relay_stop_signals` sets the flag on the signal and hands the
signal on after the drain (at once for a second one)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType

import pytest

from sessionflow.entrypoints.http.stopping import Stopping, relay_stop_signals, stopping_of
from tests.http.conftest import MakeClient


def test_readyz_answers_503_and_responses_close_once_stopping(make_client: MakeClient) -> None:
    client = make_client()
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/healthz").headers.get("connection") != "close"
    stopping_of(client.app).begin()  # type: ignore[arg-type]
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, {"status": "stopping"})
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.headers["connection"] == "close"


def test_an_event_stream_ends_once_stopping(make_client: MakeClient) -> None:
    client = make_client()
    stopping = stopping_of(client.app)  # type: ignore[arg-type]
    threading.Timer(0.5, stopping.begin).start()
    started = time.monotonic()
    with client.stream("GET", "/events/stream") as response:
        lines = list(response.iter_lines())
    assert time.monotonic() - started < 10
    assert lines[0] == ": sessionflow event feed"
    assert ": stopping" in lines


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_signal_is_handed_on_after_the_drain_and_a_second_one_at_once() -> None:
    handed: list[tuple[int, float]] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        handed.append((signum, time.monotonic()))

    old = signal.signal(signal.SIGTERM, server_handler)
    try:
        stopping = Stopping()
        restore = relay_stop_signals(stopping, 0.5)
        sent = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stopping.begun
        assert handed == []  # draining
        deadline = time.monotonic() + 5
        while not handed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(handed) == 1
        assert handed[0][1] - sent >= 0.45

        os.kill(os.getpid(), signal.SIGTERM)  # a later signal goes through at once
        time.sleep(0.05)
        assert len(handed) == 2
        restore()
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_signal_during_the_drain_cuts_it_short() -> None:
    handed: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: handed.append(signum))
    try:
        restore = relay_stop_signals(Stopping(), 30.0)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert handed == []
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert handed == [signal.SIGINT]  # once: the drain's timer was cancelled
        restore()
    finally:
        signal.signal(signal.SIGINT, old)


def test_outside_the_main_thread_nothing_is_installed() -> None:
    results: list[object] = []
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=lambda: results.append(relay_stop_signals(Stopping(), 1.0)))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before
    assert callable(results[0])
