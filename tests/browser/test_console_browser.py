"""The console in a real browser (see ``conftest.py``): signing in, filtering, paging, opening a session, a
session created by another process appearing live and its countdown reaching its expiry, failing a session
through the form (and the conflict message of a stale page), bob kept out of alice's session, and the layout:
accessible names, the tab order, no horizontal scroll at 375 px nor at 1280x800. Each page is saved as a
screenshot in ``build/console-screenshots/``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Served

pytestmark = pytest.mark.timeout(300)

#: Every control without an accessible name (a label, text, aria-label or aria-labelledby), as CSS paths.
UNNAMED = """
const unnamed = [];
for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')) {
  const text = (el.innerText || el.value || '').trim();
  const named = text || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') ||
                (el.labels && el.labels.length) || el.getAttribute('title');
  if (!named) unnamed.push(el.outerHTML.slice(0, 120));
}
return unnamed;
"""


def wait(condition: Callable[[], Any], seconds: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {seconds} s for {what or condition}"
        time.sleep(0.1)


def sign_in(browser: Any, console: Served, token: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{console.url}/ui/sessions")
    assert "/ui/sign-in" in browser.current_url
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(lambda: browser.current_url.endswith("/ui/sessions"), what="the sessions page")


def rows(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-id") for row in browser.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")]


def no_horizontal_scroll(browser: Any) -> bool:
    return bool(browser.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def test_sign_in_filter_page_and_open_a_session(console: Served, browser: Any,
                                               shot: Callable[[str], Path]) -> None:
    from selenium.webdriver.common.by import By

    manager = console.manager
    made = [manager.create(performer_id="alice", user_id="alice", workspace_id=f"ws-{n % 2}",
                           file_paths=["in/a.csv", "in/b.csv"], metadata={"batch": n}) for n in range(60)]
    for session in made[:5]:
        manager.start(session.id, performer_id="alice")
    manager.record_file(made[0].id, "in/a.csv", performer_id="alice")
    manager.record_file(made[0].id, "in/b.csv", "unreadable header", performer_id="alice")
    manager.fail(made[7].id, reason="upstream refused", performer_id="alice")
    manager.create(performer_id="bob", user_id="bob")
    browser.get(f"{console.url}/ui/sign-in")
    shot("sign-in")
    sign_in(browser, console, "tok-alice")
    wait(lambda: "pending" in browser.find_element(By.ID, "counts").text, what="the counts")
    assert len(rows(browser)) == 50
    assert rows(browser)[0] == str(made[-1].id)  # newest first
    shot("sessions")

    browser.find_element(By.CSS_SELECTOR, "input[name=status][value=in_progress]").click()
    browser.find_element(By.CSS_SELECTOR, ".filters button[type=submit]").click()
    wait(lambda: "status=in_progress" in browser.current_url, what="the filtered page")
    assert rows(browser) == [str(s.id) for s in reversed(made[:5])]
    wait(lambda: "in_progress 5" in browser.find_element(By.ID, "counts").text.replace("\n", " "),
         what="the filtered counts")
    shot("sessions-filtered")

    browser.get(f"{console.url}/ui/sessions?order=oldest")
    first = rows(browser)
    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    wait(lambda: "cursor=" in browser.current_url, what="the next page")
    assert rows(browser) == [str(s.id) for s in made[50:]]
    assert not set(first) & set(rows(browser))

    browser.get(f"{console.url}/ui/sessions?order=oldest")
    browser.find_element(By.CSS_SELECTOR, f"#row-{made[0].id} a").click()
    wait(lambda: browser.current_url.endswith(f"/ui/sessions/{made[0].id}"), what="the session page")
    page = browser.find_element(By.TAG_NAME, "main").text
    for text in ("in/b.csv: unreadable header", "Now in in_progress", "started", '"batch": 0'):
        assert text in page, text
    assert browser.find_elements(By.CSS_SELECTOR, ".diagram svg g.current")
    shot("session")


def test_a_session_of_another_process_appears_and_its_countdown_reaches_its_expiry(
        console: Served, browser: Any, shot: Callable[[str], Path], create_elsewhere: Callable[..., str]) -> None:
    from selenium.webdriver.common.by import By

    console.manager.create(performer_id="alice", user_id="alice")
    sign_in(browser, console, "tok-alice")
    wait(lambda: browser.execute_script("return !!document.getElementById('sessions')"), what="the table")
    time.sleep(1.0)  # the live stream is open
    sid = create_elsewhere(user_id="alice", ttl=6)
    wait(lambda: sid in rows(browser), seconds=20, what="the new row")
    assert rows(browser)[0] == sid
    assert "New session" in browser.find_element(By.ID, "live-note").text
    shot("sessions-live")

    browser.get(f"{console.url}/ui/sessions/{sid}")
    countdown = browser.find_element(By.ID, "deadline")
    assert countdown.text.startswith("in ")
    wait(lambda: "deadline reached" in browser.find_element(By.ID, "deadline").text, seconds=20,
         what="the countdown's end")
    shot("session-deadline-reached")
    wait(lambda: console.manager.get(sid).status == "expired", seconds=20, what="the expiry")
    browser.refresh()
    assert "expired" in browser.find_element(By.TAG_NAME, "main").text


def test_fail_a_session_through_the_form_and_a_stale_page(console: Served, browser: Any,
                                                          shot: Callable[[str], Path]) -> None:
    from selenium.webdriver.common.by import By

    manager = console.manager
    one = manager.create(performer_id="alice", user_id="alice")
    two = manager.create(performer_id="alice", user_id="alice")
    sign_in(browser, console, "tok-alice")

    browser.get(f"{console.url}/ui/sessions/{one.id}")
    browser.find_element(By.LINK_TEXT, "Fail…").click()
    browser.find_element(By.ID, "reason").send_keys("the input file is corrupt")
    shot("confirm-fail")
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    wait(lambda: browser.current_url.endswith(f"/ui/sessions/{one.id}"), what="back on the session")
    assert manager.get(one.id).failure_reason == "the input file is corrupt"
    assert manager.history(one.id)[-1].performer_id == "alice"
    assert "the input file is corrupt" in browser.find_element(By.TAG_NAME, "main").text

    browser.get(f"{console.url}/ui/sessions/{two.id}/do/fail")
    browser.find_element(By.ID, "reason").send_keys("too late")
    manager.touch(two.id, performer_id="system")  # someone else writes while the page is open
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    alert = wait(lambda: browser.find_elements(By.CSS_SELECTOR, "[role=alert]"), what="the conflict message")
    assert "changed since the page was read (version 1, now 2): nothing was written" in alert[0].text
    assert manager.get(two.id).status == "pending"
    shot("confirm-stale")


def test_bob_cannot_open_or_act_on_alice_s_session(console: Served, browser: Any,
                                                   shot: Callable[[str], Path]) -> None:
    from selenium.webdriver.common.by import By

    alice = console.manager.create(performer_id="alice", user_id="alice")
    sign_in(browser, console, "tok-bob")
    assert str(alice.id) not in rows(browser)
    for path in (f"/ui/sessions/{alice.id}", f"/ui/sessions/{alice.id}/do/fail",
                 f"/ui/sessions/{alice.id}/export.jsonl"):
        browser.get(console.url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Not found", path
    shot("bob-not-found")
    assert console.manager.get(alice.id).version == 1


def test_every_page_is_named_reachable_and_fits(console: Served, browser: Any, shot: Callable[[str], Path],
                                                create_elsewhere: Callable[..., str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    manager = console.manager
    session = manager.create(performer_id="system", user_id="a-user-with-a-rather-long-name-for-a-narrow-screen",
                             workspace_id="workspace-" + "x" * 40, file_paths=["/very/long/path/" + "y" * 80],
                             ttl=timedelta(minutes=20))
    manager.start(session.id, performer_id="system")
    manager.create(performer_id="system", user_id="u2", ttl=timedelta(minutes=3))
    sign_in(browser, console, "tok-ops")
    pages = {"sessions": "/ui/sessions", "session-ops": f"/ui/sessions/{session.id}",
             "deadlines": "/ui/deadlines?within=1h", "feed": "/ui/feed", "lifecycles": "/ui/lifecycles"}
    for width, height in ((1280, 800), (375, 800)):
        browser.set_window_size(width, height)
        for name, path in pages.items():
            browser.get(console.url + path)
            time.sleep(0.3)
            assert browser.execute_script(UNNAMED) == [], (name, width)
            assert no_horizontal_scroll(browser), (name, width)
            shot(f"{name}-{width}")

    browser.set_window_size(1280, 800)
    browser.get(f"{console.url}/ui/sessions/{session.id}")
    actions = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, ".actions a")}
    assert len(actions) == 4  # complete, fail, touch, delete
    reached = set()
    body = browser.find_element(By.TAG_NAME, "body")
    body.click()
    for _ in range(80):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        reached.add(browser.switch_to.active_element.get_attribute("href"))
    assert actions <= reached

    browser.get(f"{console.url}/ui/feed")
    time.sleep(1.0)
    create_elsewhere(user_id="u3")
    wait(lambda: "created" in browser.find_element(By.CSS_SELECTOR, "#feed tbody tr").text, seconds=20,
         what="the live feed row")
    shot("feed-live")
