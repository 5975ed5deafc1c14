"""The non-public names of other libraries sessionflow relies on (``domain/_compat.py``,
``adapters/_sqlalchemy_compat.py``) still exist in the installed versions and do what the package expects:
a release that drops or changes one fails here, not as a slower or wrong store."""

from __future__ import annotations

import asyncio
import json
from json import encoder

from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.util import concurrency, greenlet_spawn

from sessionflow.adapters._sqlalchemy_compat import in_greenlet, pool_capacity
from sessionflow.adapters.aio import GreenletRunner
from sessionflow.domain._compat import compact_encoder


def test_json_has_its_c_encoder_and_compact_json_matches_json_dumps() -> None:
    assert callable(getattr(encoder, "c_make_encoder", None)), "json.encoder.c_make_encoder is gone"
    compact = compact_encoder()
    value = {"a": [1, 2.5, None, True], "é": "quote \" and \u2028", "nested": {"x": "y"}}
    assert compact(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_a_queue_pool_keeps_its_overflow_limit_where_pool_capacity_reads_it() -> None:
    assert hasattr(QueuePool(lambda: None, pool_size=3, max_overflow=7), "_max_overflow")
    assert pool_capacity(QueuePool(lambda: None, pool_size=3, max_overflow=7)) == 10
    assert pool_capacity(QueuePool(lambda: None, pool_size=2, max_overflow=-1)) == 2  # (-1: no limit)
    assert pool_capacity(StaticPool(lambda: None)) == 0


def test_sqlalchemy_tells_whether_the_caller_runs_inside_greenlet_spawn() -> None:
    assert callable(getattr(concurrency, "in_greenlet", None)), "sqlalchemy.util.concurrency.in_greenlet is gone"
    assert in_greenlet() is False

    async def main() -> bool:
        return await greenlet_spawn(in_greenlet)

    assert asyncio.run(main()) is True


def test_the_greenlet_runners_lock_makes_tasks_wait_for_each_other() -> None:
    runner = GreenletRunner()
    lock = runner.lock()
    order: list[str] = []

    def hold(name: str) -> None:
        with lock:
            order.append(f"{name} in")
            runner.wait(asyncio.sleep(0.01))
            order.append(f"{name} out")

    async def main() -> None:
        await asyncio.gather(runner.run(hold, "a"), runner.run(hold, "b"))

    asyncio.run(main())
    assert order == ["a in", "a out", "b in", "b out"]
