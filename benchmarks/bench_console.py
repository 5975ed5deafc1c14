"""The console's sessions page on 1,000,000 sessions (SQLite), against the JSON list of the same page.

The list benchmark's data set (`benchmarks/dataset.py`: 1,000 users, 50 workspaces, 20 % pending, 30 % in
progress, 40 % completed, 10 % failed). One app (``create_app`` with a service token holding every scope, and
``mount_console``) serves both contenders in process, through Starlette's ``TestClient``, so both pay the same
HTTP plumbing; the console is signed in once with that token (its cookie rides on every page request):

* ours: ``GET /ui/sessions`` with the filters of a combination, newest first — the HTML page of 50 rows with its
  filter form, cursor links and live-update hooks (the counts per status are a page of their own, loaded after
  it: excluded here, timed below);
* the reference: ``GET /sessions`` with the same filters, ``limit=50&newest_first=true`` — the JSON list of the
  same 50 sessions;
* the counts: ``GET /ui/sessions/counts`` of the same filters, reported on their own (no target): a count over
  all the sessions matching the filters, which is what a page of 50 does not need to read.

A random user or workspace is drawn per call for the combinations that filter by them.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any

from benchmarks.dataset import USERS, WORKSPACES, sessions_dataset, user_name
from benchmarks.framework import Benchmark, Contender, Context, Section, Skipped, Target
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]

TARGET = Target("<=", 1.5, "console issue: the sessions page within 1.5x of the JSON list, counts excluded")
_PAGE = 50
_SECRET = "a-benchmark-console-secret-of-32-characters-or-more"
_TOKEN = "bench-ops"
_SCOPES = ["sessions:read", "sessions:write", "sessions:admin", "events:read"]
#: name -> query parameters (``"user"`` / ``"workspace"`` are drawn at random per call).
COMBINATIONS: dict[str, list[tuple[str, str]]] = {
    "none": [],
    "status": [("status", "in_progress")],
    "2 statuses": [("status", "failed"), ("status", "pending")],
    "user": [("user_id", "user")],
    "status + user": [("status", "in_progress"), ("user_id", "user")],
    "workspace": [("workspace_id", "workspace")],
}


def _params(pairs: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
    drawn: list[tuple[str, str]] = []
    for name, value in pairs:
        if value == "user":
            value = user_name(rng.randrange(USERS))
        elif value == "workspace":
            value = f"ws-{rng.randrange(WORKSPACES):02d}"
        drawn.append((name, value))
    return drawn


def run(ctx: Context) -> Section:
    try:
        from fastapi.testclient import TestClient

        from sessionflow.entrypoints.http import create_app
        from sessionflow.entrypoints.http.console import mount_console
    except ImportError as missing:  # pragma: no cover - the http extra is in the benchmarks' set
        raise Skipped(f"the HTTP service is not installed ({missing})") from None
    section = Section(name="console", title="The console's sessions page, 1M sessions (SQLite)" if not ctx.quick
                      else "The console's sessions page (SQLite, quick size)", description=__doc__ or "")
    size = ctx.scale(1_000_000, 10_000)
    rounds = ctx.scale(9, 2)
    per_round = ctx.scale(60, 10)
    counts_per_round = ctx.scale(4, 2)
    data = sessions_dataset(size, cache_dir=ctx.cache_dir, workdir=ctx.workdir, log=ctx.log)
    rng = random.Random(7)

    with contextlib.ExitStack() as stack:
        manager = stack.enter_context(SessionManager.open(data.url, migrate=False))
        app = create_app(manager, tokens={_TOKEN: {"service": "system", "scopes": _SCOPES}}, metrics=False)
        mount_console(app, secret=_SECRET)
        client = stack.enter_context(TestClient(app, client=("127.0.0.1", 40000)))
        _sign_in(client)
        bearer = {"Authorization": f"Bearer {_TOKEN}"}
        _same_page(client, bearer)

        def getter(path: str, pairs: list[tuple[str, str]], extra: list[tuple[str, str]],
                   headers: dict[str, str] | None, check: Callable[[Any], None]) -> Callable[[int], None]:
            def run_gets(n: int) -> None:
                get = client.get
                for _ in range(n):
                    answer = get(path, params=_params(pairs, rng) + extra, headers=headers)
                    if answer.status_code != 200:
                        raise AssertionError(f"{path}: {answer.status_code} {answer.text[:200]}")
                    check(answer)
            return run_gets

        def rows_in_page(answer: Any) -> None:
            if "<table" not in answer.text:
                raise AssertionError("the sessions page has no table")

        def rows_in_json(answer: Any) -> None:
            if not isinstance(answer.json().get("items"), list):
                raise AssertionError("the JSON list has no items")

        for name, pairs in COMBINATIONS.items():
            page = Contender(f"console page, {name}", "page", getter(
                "/ui/sessions", pairs, [("order", "newest")], None, rows_in_page), profile=True)
            listed = Contender(f"JSON list, {name}", "page", getter(
                "/sessions", pairs, [("limit", str(_PAGE)), ("newest_first", "true")], bearer, rows_in_json))
            counts = Contender(f"console counts, {name}", "page", getter(
                "/ui/sessions/counts", pairs, [], None, lambda answer: None))
            ctx.log(f"  {name}: {per_round} pages x {rounds} rounds; counts: {counts_per_round} x {rounds}")
            measured = ctx.measure([page, listed], per_round, rounds)
            # (a count reads every matching session — up to hundreds of thousands —: a few per round)
            measured.update(ctx.measure([counts], counts_per_round, rounds))
            for label in (page.label, listed.label, counts.label):
                section.add(measured[label])
            section.compare(measured[page.label], measured[listed.label], "latency", TARGET)

    built = f"built in {data.built_seconds:.0f} s in this run" if data.built_seconds else "taken from the cache"
    section.notes.append(f"Data set: {size:,} sessions ({built}); pages of {_PAGE} rows, newest first; "
                         "one app served both contenders in process (Starlette's TestClient).")
    section.notes.append("The counts row of each combination is the counts page of the same filters, which the "
                         "sessions page loads after itself; it is reported, not compared.")
    return section


def _same_page(client: Any, bearer: dict[str, str]) -> None:
    """Check that both contenders show the same sessions: every id of the JSON list's page is on the console's."""
    listed = client.get("/sessions", params={"status": "in_progress", "limit": _PAGE, "newest_first": "true"},
                        headers=bearer).json()["items"]
    page = client.get("/ui/sessions", params={"status": "in_progress", "order": "newest"}).text
    missing = [item["id"] for item in listed if item["id"] not in page]
    if len(listed) != _PAGE or missing:
        raise AssertionError(f"the console page and the JSON list differ: {len(listed)} listed, missing {missing[:3]}")


def _sign_in(client: Any) -> None:
    """Sign the console in with the benchmark's token (the cookie then rides on every request)."""
    import re

    form = client.get("/ui/sign-in")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if found is None:
        raise AssertionError("no CSRF token on the sign-in page")
    answer = client.post("/ui/sign-in", data={"token": _TOKEN, "csrf": found.group(1), "next": "/ui/sessions"},
                         follow_redirects=False)
    if answer.status_code != 303:
        raise AssertionError(f"console sign-in: {answer.status_code} {answer.text[:200]}")


BENCHMARK = Benchmark(name="console", title="The console's sessions page, 1M sessions (SQLite)", run=run,
                      order=95, summary="console sessions page vs the JSON list of the same page")
