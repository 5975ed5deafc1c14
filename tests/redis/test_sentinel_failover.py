"""A Redis failover under writers: the primary SIGKILLed, its replica promoted by the Sentinels, the writers going
on through ``redis+sentinel://``; with the replica wait on, no acknowledged write is lost; without it, how many
were is measured and printed. Every "not applied" answer is true. (Slow: run by ``make faults``.)"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sessionflow import SessionManager
from sessionflow.errors import OutcomeUnknown, StoreError
from tests.support.redis import RedisUnavailable, require_redis
from tests.support.sentinel import SERVICE, SentinelSetup, sentinel_setup

ONLY_WHEN_SLOW = True


def _writes_across_a_failover(setup: SentinelSetup, wait: bool) -> dict[str, Any]:
    """Writers create sessions (each numbered in its metadata) while the primary is SIGKILLed; what each was
    told, and when writes resumed."""
    options: dict[str, Any] = {"redis_prefix": "f:", "redis_retries": 60, "redis_socket_timeout": 2.0}
    if wait:
        options["redis_wait_replicas"] = 1
    told: dict[int, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    killed_at: list[float] = []
    resumed_at: list[float] = []

    def writer(first: int) -> None:
        with SessionManager.open(setup.url, **options) as manager:
            n = first
            while not stop.is_set():
                try:
                    manager.create(performer_id="p", metadata={"n": n})
                    answer = "applied"
                    if killed_at and not resumed_at:
                        resumed_at.append(time.monotonic())
                except OutcomeUnknown:
                    answer = "unknown"
                except StoreError:
                    answer = "not applied"
                with lock:
                    told[n] = answer
                n += 4

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    setup.primary.kill()
    killed_at.append(time.monotonic())
    setup.wait_until("failover", timeout=60)
    setup.primary.start()  # back on its port and data: the Sentinels make it the new primary's replica
    deadline = time.monotonic() + 60
    while not resumed_at and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # writes on the promoted primary
    stop.set()
    for thread in threads:
        thread.join(60)
    with SessionManager.open(setup.url, redis_prefix="f:") as manager:
        stored: set[int] = set()
        while page := manager.list(limit=1000, offset=len(stored)):
            stored |= {s.metadata["n"] for s in page}
    return {"told": told, "stored": stored,
            "resumed_after": resumed_at[0] - killed_at[0] if resumed_at else None}


@pytest.mark.slow
@pytest.mark.parametrize("wait", [True, False], ids=["replica-wait", "primary-only"])
def test_a_failover_under_writers(wait: bool) -> None:
    try:
        with sentinel_setup() as setup:
            result = _writes_across_a_failover(setup, wait)
    except RedisUnavailable as error:
        require_redis(error)
    told, stored = result["told"], result["stored"]
    acknowledged = {n for n, answer in told.items() if answer == "applied"}
    refused = {n for n, answer in told.items() if answer == "not applied"}
    lost = acknowledged - stored
    resumed = result["resumed_after"]
    print(f"\n[{SERVICE} failover, {'replica wait' if wait else 'primary only'}] writes acknowledged "
          f"{len(acknowledged)}, lost {len(lost)}, outcome unknown {sum(a == 'unknown' for a in told.values())}, "
          f"not applied {len(refused)}; writes resumed "
          + ("never" if resumed is None else f"{resumed:.2f} s after the kill"))
    assert resumed is not None, "the writers never resumed on the promoted replica"
    assert not refused & stored, "a write said 'not applied' was applied"
    if wait:
        assert not lost, f"acknowledged writes lost: {sorted(lost)[:10]}"
