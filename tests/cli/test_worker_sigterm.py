"""``sessionflow worker`` as a real process, stopped by SIGTERM in the middle of a long sweep: it finishes the
batch in hand (committed and printed), begins no other, and exits 0; the next worker expires the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionflow import SessionManager
from sessionflow.testing import ManualClock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

DUE = 10_000
BATCH = 10


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "tester"
    return env


def _recorded_expiries(url: str) -> int:
    """The sessions whose expiry is recorded, read at a time before any deadline (reads then expire nothing)."""
    with SessionManager.open(url, clock=ManualClock(datetime(2000, 1, 1, tzinfo=UTC))) as reader:
        return reader.count("expired")


def test_sigterm_mid_sweep_finishes_the_batch_in_hand_and_exits_0(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    past = datetime.now(UTC) - timedelta(hours=2)
    with SessionManager.open(url, clock=ManualClock(past)) as seeding:  # all due an hour ago
        seeding.create_many([{"user_id": f"u{i}", "ttl": timedelta(hours=1)} for i in range(DUE)],
                            performer_id="system")
    worker = subprocess.Popen([sys.executable, "-m", "sessionflow", "--db", url, "worker", "--json",
                               "--batch-size", str(BATCH)],
                              cwd=tmp_path, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert worker.stdout is not None
        first = worker.stdout.readline()  # the first expiry: the catch-up sweep is under way
        assert json.loads(first)["event"] == "expired", first
        worker.send_signal(signal.SIGTERM)
        # (read through the same buffered stream: readline may have buffered more lines than the first, which
        # communicate(), reading the pipe itself, would never see; stderr holds a few lines only)
        rest = worker.stdout.read()
        assert worker.stderr is not None
        err = worker.stderr.read()
        worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert "Traceback" not in err
    printed = [json.loads(line) for line in (first + rest).splitlines()]
    recorded = _recorded_expiries(url)
    assert 0 < recorded < DUE, "the sweep went on after SIGTERM"
    assert recorded % BATCH == 0, "a batch was cut short"
    assert len(printed) == recorded, "a committed expiry was not printed"
    assert f"worker stopped: {recorded} sessions expired" in err

    again = subprocess.run([sys.executable, "-m", "sessionflow", "--db", url, "worker", "--for", "1s"],
                           cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"worker stopped: {DUE - recorded} sessions expired" in again.stderr
    assert _recorded_expiries(url) == DUE
