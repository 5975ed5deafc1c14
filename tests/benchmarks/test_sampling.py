"""The profile folding of the benchmarks (``benchmarks/sampling.py``): each sampled stack goes to the first
part one of its frames matches (or, by innermost frame, to the part of the innermost matching frame), and the
table gives each part's interpreter time per operation."""

from __future__ import annotations

from benchmarks.sampling import HTTP_PARTS, Part, Profile, breakdown, table

LOOP = ("Runner.run (asyncio/runners.py:118)", "H11Protocol.handle_events (uvicorn/protocols/http/h11_impl.py:5)")
APP = (*LOOP, "Starlette.__call__ (starlette/applications.py:1)", "BodyLimit.__call__ "
       "(sessionflow/entrypoints/http/limits.py:75)")
WORKER = ("Thread._bootstrap (threading.py:1002)", "WorkerThread.run (anyio/_backends/_asyncio.py:9)",
          "handler (sessionflow/entrypoints/http/routers/sessions.py:3)")


def _profile(*stacks: tuple[tuple[str, ...], int]) -> Profile:
    return Profile(tuple(stacks), seconds=2)


def test_a_stack_goes_to_the_most_specific_part_among_its_frames() -> None:
    profile = _profile(
        ((*WORKER, "ManagerWrites.start (sessionflow/application/manager_writes.py:1)",
          "SqliteEventStore._append_on (sessionflow/adapters/sqlalchemy/sqlite.py:173)"), 5),
        ((*WORKER, "ManagerWrites.start (sessionflow/application/manager_writes.py:1)",
          "TypeAdapter.validate_python (pydantic/type_adapter.py:410)"), 3),
        ((*WORKER, "_session_response (sessionflow/entrypoints/http/routers/sessions.py:9)",
          "JSONEncoder.iterencode (json/encoder.py:258)"), 2),
        ((*APP, "solve_dependencies (fastapi/dependencies/utils.py:1)"), 4),
        ((*APP, "run_in_threadpool (starlette/concurrency.py:1)", "Condition.notify (threading.py:382)"), 6),
        ((*APP,), 7),  # the middleware's own work
        (LOOP, 9),
        (("gc_collect (unknown)",), 1),
    )
    found = breakdown(profile, HTTP_PARTS)
    assert found == {
        "the store (SQL, driver calls)": 5,
        "the manager (validation, decision, events)": 3,
        "the response (serialisation and sending)": 2,
        "FastAPI: dependencies, body parsing and validation": 4,
        "the threadpool hop (sync handler)": 6,
        "routing and middlewares (Starlette, FastAPI, sessionflow's body limit)": 7,
        "HTTP server and event loop (uvicorn, h11, asyncio)": 9,
        "other": 1,
    }


def test_by_innermost_frame_the_nearest_matching_frame_decides() -> None:
    parts = (Part("outer", ("a.py",)), Part("inner", ("b.py",)))
    profile = _profile((("f (a.py:1)", "g (b.py:2)", "h (c.py:3)"), 4), (("f (a.py:1)",), 1))
    assert breakdown(profile, parts) == {"outer": 5}
    assert breakdown(profile, parts, innermost=True) == {"inner": 4, "outer": 1}


def test_the_table_gives_time_per_operation_and_shares() -> None:
    parts = (Part("work", ("w",)),)
    profile = _profile((("w",), 250), (("x",), 250))  # 1 s of work and 1 s of other at 250 samples/s
    text = table([("server", breakdown(profile, parts), 1000)], parts)
    rows = text.splitlines()
    assert rows[0] == "| part | server |"
    assert rows[2] == "| work | 1,000 µs (50%) |"  # 1 s over 1,000 operations
    assert rows[3] == "| other | 1,000 µs (50%) |"
    assert rows[4] == "| **total** | 2,000 µs (100%) |"
