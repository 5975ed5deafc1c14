"""The operator's console over HTTP (without a browser: ``tests/browser`` drives one): signing in and out, the
cookie, the protection of writes, who sees and does what, the actions and a stale page, the pages, the loopback
rule without tokens, and how the service and a host app mount it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from statemachine import State, StateMachine

from sessionflow import Session, SessionManager, __version__
from sessionflow.domain.definitions import SESSION_DEFINITION, LifecycleDefinition, LifecycleRegistry
from sessionflow.entrypoints.http import TokenTable, app_from_env, create_app
from sessionflow.entrypoints.http.console import mount_console
from sessionflow.entrypoints.http.console.access import COOKIE
from sessionflow.settings import Settings

TOKENS = {"tok-alice": "alice", "tok-bob": "bob",
          "tok-ops": {"service": "system", "scopes": ["sessions:read", "sessions:write", "sessions:admin",
                                                      "events:read"]},
          "tok-reader": {"service": "reader", "scopes": ["sessions:read"]}}
SECRET = "a-console-secret-of-at-least-32-characters"
LOOPBACK = ("127.0.0.1", 40000)


class Tokens:
    """A token source whose table a test can replace (as a tokens file that changed)."""

    def __init__(self) -> None:
        self.table = TokenTable.parse(TOKENS)

    def current(self) -> TokenTable:
        return self.table


@pytest.fixture
def manager() -> Iterator[SessionManager]:
    with SessionManager.in_memory() as manager:
        yield manager


@pytest.fixture
def sessions(manager: SessionManager) -> dict[str, Session]:
    return {"alice": manager.create(performer_id="alice", user_id="alice", file_paths=["a.csv", "b.csv"],
                                    metadata={"source": "upload"}),
            "bob": manager.create(performer_id="bob", user_id="bob", ttl=timedelta(minutes=5))}


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def client(manager: SessionManager, tokens: Tokens) -> TestClient:
    app = create_app(manager, tokens=tokens)
    mount_console(app, secret=SECRET)
    return TestClient(app, client=LOOPBACK)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def sign_in(client: TestClient, token: str) -> None:
    form = client.get("/ui/sign-in")
    answer = client.post("/ui/sign-in", data={"token": token, "csrf": csrf_of(form.text), "next": "/ui/sessions"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


def test_a_page_without_a_sign_in_leads_to_the_sign_in_page(client: TestClient) -> None:
    answer = client.get("/ui/sessions?status=pending", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?next=/ui/sessions%3Fstatus%3Dpending"


def test_signing_in_sets_a_signed_cookie_that_never_holds_the_token(client: TestClient) -> None:
    form = client.get("/ui/sign-in")
    answer = client.post("/ui/sign-in", data={"token": "tok-alice", "csrf": csrf_of(form.text), "next": "/ui/feed"},
                         follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/feed"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is Secure
    assert "tok-alice" not in cookie


def test_a_wrong_token_is_refused_and_a_next_elsewhere_is_ignored(client: TestClient) -> None:
    form = client.get("/ui/sign-in")
    wrong = client.post("/ui/sign-in", data={"token": "nope", "csrf": csrf_of(form.text)})
    assert wrong.status_code == 401
    assert "this token is not valid" in wrong.text
    away = client.post("/ui/sign-in", data={"token": "tok-alice", "csrf": csrf_of(form.text),
                                            "next": "https://elsewhere.example/ui/x"}, follow_redirects=False)
    assert away.headers["location"] == "/ui/sessions"


def test_a_forged_or_tampered_cookie_is_refused(client: TestClient) -> None:
    sign_in(client, "tok-bob")
    value = client.cookies[COOKIE]
    payload, _, mac = value.rpartition(".")
    client.cookies.set(COOKIE, payload + "." + "0" * len(mac), path="/ui")
    assert client.get("/ui/sessions", follow_redirects=False).status_code == 303


def test_removing_the_token_revokes_the_sign_in(client: TestClient, tokens: Tokens) -> None:
    sign_in(client, "tok-alice")
    assert client.get("/ui/sessions").status_code == 200
    tokens.table = TokenTable.parse({k: v for k, v in TOKENS.items() if k != "tok-alice"})
    answer = client.get("/ui/sessions", follow_redirects=False)
    assert answer.status_code == 303


def test_the_cookie_holds_in_another_process_with_the_same_secret(manager: SessionManager) -> None:
    first, second = (create_app(manager, tokens=TOKENS) for _ in range(2))
    for app in (first, second):
        mount_console(app, secret=SECRET)
    one, other = TestClient(first, client=LOOPBACK), TestClient(second, client=LOOPBACK)
    sign_in(one, "tok-alice")
    other.cookies.set(COOKIE, one.cookies[COOKIE], path="/ui")
    assert other.get("/ui/sessions").status_code == 200


def test_signing_out(client: TestClient) -> None:
    sign_in(client, "tok-alice")
    page = client.get("/ui/sessions")
    answer = client.post("/ui/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 303
    assert f'{COOKIE}=""' in answer.headers["set-cookie"] or "Max-Age=0" in answer.headers["set-cookie"]


def test_a_user_sees_and_acts_on_its_own_sessions_only(client: TestClient, sessions: dict[str, Session],
                                                       manager: SessionManager) -> None:
    sign_in(client, "tok-bob")
    table = client.get("/ui/sessions")
    assert str(sessions["bob"].id)[:8] in table.text
    assert str(sessions["alice"].id)[:8] not in table.text
    alice = sessions["alice"].id
    missing = client.get(f"/ui/sessions/{alice}")
    assert missing.status_code == 404
    assert "<span>user bob</span>" in missing.text  # the error page still says who is signed in
    assert client.get(f"/ui/sessions/{alice}/export.jsonl").status_code == 404
    assert client.get(f"/ui/sessions/{alice}/do/fail").status_code == 404
    answer = client.post(f"/ui/sessions/{alice}/do/fail", data={"csrf": csrf_of(table.text), "version": "1",
                                                                 "reason": "bob was here"})
    assert answer.status_code == 404
    assert manager.get(alice).status == "pending"
    assert client.get("/ui/sessions?user_id=alice").status_code == 200  # the filter is its own user, whatever given
    assert str(sessions["alice"].id)[:8] not in client.get("/ui/sessions?user_id=alice").text


def test_failing_through_the_form_records_the_principal(client: TestClient, sessions: dict[str, Session],
                                                        manager: SessionManager) -> None:
    sign_in(client, "tok-alice")
    sid = sessions["alice"].id
    confirm = client.get(f"/ui/sessions/{sid}/do/fail")
    assert confirm.status_code == 200
    assert 'name="reason"' in confirm.text
    answer = client.post(f"/ui/sessions/{sid}/do/fail", data={"csrf": csrf_of(confirm.text), "version": "1",
                                                               "reason": "bad input"}, follow_redirects=False)
    assert answer.status_code == 303
    failed = manager.get(sid)
    assert failed.status == "failed"
    assert failed.failure_reason == "bad input"
    assert manager.history(sid)[-1].performer_id == "alice"


def test_a_stale_page_writes_nothing_and_says_so(client: TestClient, sessions: dict[str, Session],
                                                 manager: SessionManager) -> None:
    sign_in(client, "tok-alice")
    sid = sessions["alice"].id
    confirm = client.get(f"/ui/sessions/{sid}/do/fail")
    manager.touch(sid, performer_id="alice")  # another writer, meanwhile
    answer = client.post(f"/ui/sessions/{sid}/do/fail", data={"csrf": csrf_of(confirm.text), "version": "1",
                                                               "reason": "late"})
    assert answer.status_code == 409
    assert "changed since the page was read (version 1, now 2): nothing was written" in answer.text
    assert f"sessionflow {__version__}</footer>" in answer.text  # the page's own version does not replace it
    assert manager.get(sid).status == "pending"


def test_writes_need_the_form_token_and_the_same_origin(client: TestClient, sessions: dict[str, Session],
                                                        manager: SessionManager) -> None:
    sign_in(client, "tok-alice")
    sid = sessions["alice"].id
    csrf = csrf_of(client.get(f"/ui/sessions/{sid}/do/touch").text)
    forged = client.post(f"/ui/sessions/{sid}/do/touch", data={"csrf": "forged", "version": "1"})
    assert forged.status_code == 400
    cross = client.post(f"/ui/sessions/{sid}/do/touch", data={"csrf": csrf, "version": "1"},
                        headers={"Origin": "https://evil.example"})
    assert cross.status_code == 400
    assert manager.get(sid).version == 1


def test_a_service_needs_the_api_s_scopes(client: TestClient, sessions: dict[str, Session],
                                          manager: SessionManager) -> None:
    sign_in(client, "tok-reader")
    sid = sessions["bob"].id
    assert client.get(f"/ui/sessions/{sid}").status_code == 200
    assert client.get(f"/ui/sessions/{sid}/do/touch").status_code == 403
    assert client.get("/ui/feed").status_code == 403  # events:read
    sign_in(client, "tok-ops")
    confirm = client.get(f"/ui/sessions/{sid}/do/delete")
    answer = client.post(f"/ui/sessions/{sid}/do/delete", data={"csrf": csrf_of(confirm.text), "version": "1"},
                         follow_redirects=False)
    assert answer.status_code == 303
    assert manager.history(sid)[-1].performer_id == "system"


def test_the_pages(client: TestClient, sessions: dict[str, Session], manager: SessionManager) -> None:
    sign_in(client, "tok-ops")
    manager.start(sessions["alice"].id, performer_id="system")
    page = client.get(f"/ui/sessions/{sessions['alice'].id}")
    assert page.status_code == 200
    for text in ("a.csv", "upload", "Export the history (JSONL)", "started", "Now in <strong>in_progress</strong>"):
        assert text in page.text, text
    export = client.get(f"/ui/sessions/{sessions['alice'].id}/export.jsonl")
    assert [line.count('"event"') for line in export.text.splitlines()] == [1, 1]
    counts = client.get("/ui/sessions/counts")
    assert re.findall(r"status-(\w+)\">\w+</span> <span class=\"n\">(\d+)", counts.text) == [
        ("in_progress", "1"), ("pending", "1")]
    deadlines = client.get("/ui/deadlines?within=15m")
    assert str(sessions["bob"].id)[:8] in deadlines.text
    assert str(sessions["alice"].id)[:8] not in deadlines.text
    assert client.get("/ui/deadlines?within=forever").status_code == 400
    feed = client.get("/ui/feed?event=started")
    assert feed.text.count("<strong>started</strong>") == 1
    assert "<strong>created</strong>" not in feed.text
    lifecycles = client.get("/ui/lifecycles")
    assert 'data-state="pending">1<' in lifecycles.text


def test_paging_through_the_sessions_table(client: TestClient, manager: SessionManager) -> None:
    made = [manager.create(performer_id="system", user_id="carol") for _ in range(60)]
    sign_in(client, "tok-ops")
    first = client.get("/ui/sessions?order=oldest")
    assert str(made[0].id)[:8] in first.text
    assert str(made[55].id)[:8] not in first.text
    following = re.search(r'href="(/ui/sessions\?[^"]+)" rel="next"', first.text)
    assert following is not None
    second = client.get(following.group(1).replace("&amp;", "&"))
    assert str(made[55].id)[:8] in second.text
    assert str(made[0].id)[:8] not in second.text


def test_without_tokens_only_the_loopback_interface_is_answered(manager: SessionManager,
                                                                sessions: dict[str, Session]) -> None:
    app = create_app(manager)
    mount_console(app)
    assert TestClient(app, client=LOOPBACK).get("/ui/sessions").status_code == 200
    remote = TestClient(app, client=("192.0.2.7", 5000)).get("/ui/sessions")
    assert remote.status_code == 403
    assert "loopback" in remote.text
    local = TestClient(app, client=LOOPBACK)
    sid = sessions["bob"].id
    csrf = csrf_of(local.get(f"/ui/sessions/{sid}/do/touch").text)
    assert local.post(f"/ui/sessions/{sid}/do/touch", data={"csrf": csrf, "version": "1"},
                      follow_redirects=False).status_code == 303
    assert manager.history(sid)[-1].performer_id == "console"


def test_a_host_app_mounts_it_with_one_call(manager: SessionManager, sessions: dict[str, Session]) -> None:
    host = FastAPI()
    mount_console(host, manager, tokens=TOKENS, secret=SECRET, path="/ops")
    client = TestClient(host, client=LOOPBACK)
    form = client.get("/ops/sign-in")
    client.post("/ops/sign-in", data={"token": "tok-bob", "csrf": csrf_of(form.text)})
    assert str(sessions["bob"].id)[:8] in client.get("/ops/sessions").text
    assert client.get("/ops/static/console.css").status_code == 200


def test_serve_mounts_it_unless_told_not_to() -> None:
    on = Settings(database_url="sqlite://")
    off = Settings(database_url="sqlite://", http={"console": False})
    for settings, console, mounted in ((on, True, True), (on, False, False), (off, True, False)):
        app = app_from_env(settings, environ={}, timeouts=False, console=console)
        try:
            assert any(getattr(route, "path", "") == "/ui" for route in app.routes) is mounted
        finally:
            app.state.manager.close()


class Review(StateMachine):
    """A lifecycle of its own: drafted -> in_review -> approved | rejected."""

    drafted = State(initial=True)
    in_review = State()
    approved = State(final=True)
    rejected = State(final=True)

    submit = drafted.to(in_review)
    approve = in_review.to(approved)
    reject = in_review.to(rejected)


REVIEW = LifecycleDefinition("console.review", 1, Review)


def test_a_custom_lifecycle_s_events_are_offered_and_sent(tokens: Tokens) -> None:
    registry = LifecycleRegistry(SESSION_DEFINITION, REVIEW)
    with SessionManager.in_memory(registry=registry, lifecycle=REVIEW) as manager:
        made = manager.create(performer_id="alice", user_id="alice")
        app = create_app(manager, tokens=tokens)
        mount_console(app, secret=SECRET)
        client = TestClient(app, client=LOOPBACK)
        sign_in(client, "tok-alice")
        page = client.get(f"/ui/sessions/{made.id}")
        assert page.status_code == 200
        offered = re.findall(r'/do/(\w+)\?version=', page.text)
        assert offered == ["submit", "touch", "delete"]
        confirm = client.get(f"/ui/sessions/{made.id}/do/submit")
        answer = client.post(f"/ui/sessions/{made.id}/do/submit", data={"csrf": csrf_of(confirm.text), "version": "1"},
                             follow_redirects=False)
        assert answer.status_code == 303
        assert manager.get(made.id).status == "in_review"
        again = client.get(f"/ui/sessions/{made.id}")
        assert re.findall(r'/do/(\w+)\?version=', again.text) == ["approve", "reject", "touch", "delete"]
        assert client.get(f"/ui/sessions/{made.id}/do/submit").status_code == 400  # not offered in_review
        assert "Now in <strong>in_review</strong>" in again.text
        lifecycles = client.get("/ui/lifecycles")
        assert "console.review" in lifecycles.text
        assert 'data-state="in_review">1<' in lifecycles.text


def test_reading_works_without_javascript(client: TestClient, sessions: dict[str, Session]) -> None:
    sign_in(client, "tok-ops")
    table = client.get("/ui/sessions?status=pending")
    link = re.search(r'<noscript><a href="([^"]+)">', table.text)
    assert link is not None
    counts = client.get(link.group(1).replace("&amp;", "&"))
    assert "<h1>Counts per status</h1>" in counts.text
    assert '<span class="n">2</span>' in counts.text
    assert 'href="/ui/sessions?order=newest&amp;status=pending"' in counts.text  # one status, the others kept
    assert client.get("/ui", follow_redirects=True).url.path == "/ui/sessions"


def test_the_built_in_lifecycle_offers_what_the_state_allows(client: TestClient, manager: SessionManager) -> None:
    sign_in(client, "tok-ops")
    made = manager.create(performer_id="system")
    offered = lambda: re.findall(r'/do/(\w+)\?version=', client.get(f"/ui/sessions/{made.id}").text)  # noqa: E731
    assert offered() == ["start", "fail", "touch", "delete"]
    manager.start(made.id, performer_id="system")
    assert offered() == ["fail", "complete", "touch", "delete"]
    manager.fail(made.id, reason="r", performer_id="system")
    assert offered() == ["delete"]


def test_serve_hands_its_workers_the_console_s_switch_and_one_key() -> None:
    from sessionflow.entrypoints.http.environment import console_environ, settings_environ

    assert console_environ(Settings(), False) == {"SESSIONFLOW_HTTP__CONSOLE": "false"}
    drawn = console_environ(Settings(), True)
    assert list(drawn) == ["SESSIONFLOW_HTTP__CONSOLE_KEY"]
    assert len(drawn["SESSIONFLOW_HTTP__CONSOLE_KEY"] or "") >= 32
    given = Settings(http={"console_key": SECRET})
    assert console_environ(given, True) == {}
    assert settings_environ(given)["SESSIONFLOW_HTTP__CONSOLE_KEY"] == SECRET
    assert SECRET not in repr(given)


def test_the_table_s_filters_are_checked(client: TestClient, manager: SessionManager) -> None:
    sign_in(client, "tok-ops")
    early = manager.create(performer_id="system", user_id="u")
    cut = early.created_at.replace(tzinfo=None).isoformat(timespec="milliseconds")
    late = manager.create(performer_id="system", user_id="u")
    assert client.get("/ui/sessions?status=bogus").status_code == 400
    assert client.get("/ui/sessions?created_after=yesterday").status_code == 400
    after = client.get(f"/ui/sessions?created_after={cut}")
    assert str(early.id)[:8] in after.text
    before = client.get(f"/ui/sessions?created_before={cut}")
    assert str(early.id)[:8] not in before.text
    assert str(late.id)[:8] not in before.text
