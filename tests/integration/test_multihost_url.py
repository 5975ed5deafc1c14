"""A multi-host PostgreSQL URL (SQLAlchemy's form for psycopg: ``?host=a:5432&host=b:5432`` with
``target_session_attrs=read-write``) works through every entry point that takes a URL, with its first host a dead
port and its second the live server: the library, the asyncio facade, the settings, the command line, ``serve``,
``worker`` and the LISTEN watcher; and the password is hidden wherever the URL is shown."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from sessionflow import AsyncSessionManager, SessionManager, Settings
from sessionflow.adapters.sqlalchemy.notifications import PostgresChangeWatcher, libpq_params
from sessionflow.application.watching import Notice
from sessionflow.entrypoints.cli.parsing import mask_url
from sessionflow.testing import ManualClock
from tests.support.postgres import free_port
from tests.support.serving import wait_until_serving

pytestmark = pytest.mark.postgres

PASSWORD = "s3cret-pw"  # the throwaway server trusts every local connection: any password is accepted


@pytest.fixture
def multihost_url(postgres_url: str) -> str:
    live = make_url(postgres_url)
    assert live.host is not None
    assert live.port is not None
    return (f"postgresql+psycopg://{live.username}:{PASSWORD}@/{live.database}?host={live.host}:{free_port()}"
            f"&host={live.host}:{live.port}&target_session_attrs=read-write")


def _env(url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "tester"
    env["SESSIONFLOW_DATABASE_URL"] = url
    return env


def test_the_library_opens_it(multihost_url: str) -> None:
    with SessionManager.open(multihost_url) as manager:
        created = manager.create(performer_id="u", user_id="multihost-lib")
        assert manager.get(created.id).user_id == "multihost-lib"
        assert manager.ping()


def test_the_asyncio_facade_opens_it(multihost_url: str) -> None:
    async def scenario() -> str | None:
        async with AsyncSessionManager.open(multihost_url) as manager:
            created = await manager.create(performer_id="u", user_id="multihost-async")
            return (await manager.get(created.id)).user_id

    assert asyncio.run(scenario()) == "multihost-async"


def test_the_settings_take_it_and_hide_its_password(multihost_url: str) -> None:
    settings = Settings(database_url=multihost_url)
    assert PASSWORD not in repr(settings)
    assert "***" in repr(settings)
    with SessionManager.from_settings(settings) as manager:
        assert manager.create(performer_id="u", user_id="multihost-settings").version == 1
    assert PASSWORD not in mask_url(multihost_url)
    assert make_url(mask_url(multihost_url)).query["host"] == make_url(multihost_url).query["host"]


def test_the_command_line_takes_it(multihost_url: str, tmp_path: Path) -> None:
    for source in (["--db", multihost_url], []):  # the option, then SESSIONFLOW_DATABASE_URL
        created = subprocess.run([sys.executable, "-m", "sessionflow", *source, "create", "--user", "multihost-cli",
                                  "--json"], cwd=tmp_path, env=_env(multihost_url), capture_output=True, text=True,
                                 timeout=120)
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["user_id"] == "multihost-cli"


def test_worker_expires_through_it_and_masks_it(multihost_url: str, tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    with SessionManager.open(multihost_url, clock=ManualClock(past)) as seeding:
        due = seeding.create(performer_id="u", user_id="multihost-worker", ttl=timedelta(hours=1))
    result = subprocess.run([sys.executable, "-m", "sessionflow", "worker", "--for", "3s"], cwd=tmp_path,
                            env=_env(multihost_url), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stderr
    assert "***" in result.stderr
    with SessionManager.open(multihost_url, clock=ManualClock(past)) as reader:
        assert reader.get(due.id).status == "expired"


def test_serve_serves_through_it_and_masks_it(multihost_url: str, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sessionflow", "serve", "--port", str(port),
                               "--log-level", "warning"], cwd=tmp_path, env=_env(multihost_url), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, server)
        created = httpx.post(f"{base}/sessions", json={"performer_id": "u", "user_id": "multihost-serve"}, timeout=10)
        assert created.status_code == 201
        server.terminate()
        _, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert PASSWORD not in err
    assert "***" in err


def test_the_listen_watcher_listens_through_it(multihost_url: str) -> None:
    heard = threading.Event()

    def on_notice(notice: Notice) -> None:
        if notice.kind == "events":
            heard.set()

    with SessionManager.open(multihost_url) as manager:
        watcher = manager._new_watcher()
        assert isinstance(watcher, PostgresChangeWatcher)
        unsubscribe = watcher.subscribe(on_notice)
        watcher.start()
        try:
            assert watcher.wait_listening(30)
            with SessionManager.open(multihost_url) as writer:
                writer.create(performer_id="u", user_id="multihost-watcher")
            assert heard.wait(30), "no notice of the write"
        finally:
            unsubscribe()
            watcher.stop()


def test_the_libpq_parameters_of_another_driver_keep_every_host(multihost_url: str) -> None:
    """What the watcher connects with when the engine's driver is not psycopg: libpq's reading of the URL."""
    params = libpq_params(make_url(multihost_url).set(drivername="postgresql+pg8000"))
    assert params["target_session_attrs"] == "read-write"
    assert len(params["host"].split(",")) == 2
    assert len(params["port"].split(",")) == 2
    with psycopg.connect(**params) as conn:  # the dead first host is skipped
        assert conn.execute("select not pg_is_in_recovery()").fetchone() == (True,)
