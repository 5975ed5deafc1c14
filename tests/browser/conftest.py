"""The console in a real browser: Debian's ``chromium`` driven by ``chromedriver`` through selenium (``make test``
installs both as root, as it does PostgreSQL). Without them the browser tests are skipped, saying why; under
``CI=true`` they fail.

``console`` serves the HTTP service with its console from a real uvicorn server on a loopback port, over an
SQLite file that another process can write to (``create_elsewhere``), with the timeout waker running. Each test
gets a clean headless browser (``browser``: no cookie, no cache, 1280x800; one Chromium per module). Screenshots go
to ``build/console-screenshots/`` (``shot``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sessionflow import SessionManager
from tests.support.postgres import in_ci

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "console-screenshots"
TOKENS = {"tok-alice": "alice", "tok-bob": "bob",
          "tok-ops": {"service": "system", "scopes": ["sessions:read", "sessions:write", "sessions:admin",
                                                      "events:read"]}}
SECRET = "the-browser-tests-console-secret-0123456789"


def _missing() -> str | None:
    """What the browser tests lack, or ``None``."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'sessionflow[test]')"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian: apt-get install chromium chromium-driver; `make test` does it)"
    try:
        import jinja2  # noqa: F401
    except ImportError:
        return "Jinja2 is not installed (pip install 'sessionflow[http]')"
    return None


@pytest.fixture(scope="session")
def browser_ready() -> None:
    missing = _missing()
    if missing is not None:
        if in_ci():
            pytest.fail(f"CI: the console's browser tests cannot run: {missing}")
        pytest.skip(missing)


@dataclass
class Served:
    """The running service: its base URL, its database URL and its manager."""

    url: str
    database_url: str
    manager: SessionManager


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def console(browser_ready: None, tmp_path: Path) -> Iterator[Served]:
    import uvicorn

    from sessionflow.entrypoints.http import create_app
    from sessionflow.entrypoints.http.console import mount_console

    database_url = f"sqlite:///{tmp_path / 'console.db'}"
    manager = SessionManager.open(database_url)
    manager.start_timeouts()
    app = create_app(manager, tokens=TOKENS, metrics=False)
    mount_console(app, secret=SECRET)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", database_url, manager)
    finally:
        server.should_exit = True
        thread.join(20)
        manager.close()


@pytest.fixture(scope="module")
def chromium(browser_ready: None) -> Iterator[Any]:
    """One headless Chromium for the module's tests (starting one takes a second or two); :func:`browser` hands
    each test a clean one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Any]:
    """The browser of one test: no cookie (signed out), 1280x800, on a blank page; left on a blank page, which
    closes its live streams before the test's server stops."""
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.execute_cdp_cmd("Network.clearBrowserCache", {})
    chromium.set_window_size(1280, 800)
    try:
        yield chromium
    finally:
        chromium.get("about:blank")
        chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})


@pytest.fixture
def shot(browser: Any) -> Callable[[str], Path]:
    """Save a screenshot of the whole page as ``build/console-screenshots/<name>.png``."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def save(name: str) -> Path:
        path = SHOTS / f"{name}.png"
        height = browser.execute_script("return document.documentElement.scrollHeight")
        width = browser.execute_script("return window.innerWidth")
        size = browser.get_window_size()
        browser.set_window_size(size["width"], max(size["height"], min(int(height) + 140, 4000)))
        try:
            browser.save_screenshot(str(path))
        finally:
            browser.set_window_size(size["width"], size["height"])
        assert width > 0
        return path

    return save


@pytest.fixture
def create_elsewhere(console: Served) -> Callable[..., str]:
    """Create a session from another process (on the same database); returns its id."""

    def create(**fields: Any) -> str:
        code = ("import sys, json; from datetime import timedelta; from sessionflow import SessionManager\n"
                "fields = json.loads(sys.argv[2]); ttl = fields.pop('ttl', None)\n"
                "with SessionManager.open(sys.argv[1]) as m:\n"
                "    ttl = None if ttl is None else timedelta(seconds=ttl)\n"
                "    s = m.create(performer_id='system', ttl=ttl, **fields)\n"
                "    print(s.id)\n")
        done = subprocess.run([sys.executable, "-c", code, console.database_url, json.dumps(fields)],
                              capture_output=True, text=True, timeout=60, env=os.environ.copy(), check=True)
        return done.stdout.strip()

    return create
