"""The throwaway PostgreSQL the test suite runs against really starts, answers, stops and cleans up."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import postgres
from tests.support.postgres import (
    PostgresUnavailable,
    find_binaries,
    postgres_url_for_tests,
    require_postgres,
    throwaway_postgres,
)

pytestmark = pytest.mark.postgres


def _binaries() -> postgres.PostgresBinaries:
    try:
        return find_binaries()
    except PostgresUnavailable as error:
        require_postgres(error)


def _port_is_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) in (errno.ECONNREFUSED, errno.ECONNRESET)


def _port_is_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_throwaway_server_starts_answers_and_is_removed() -> None:
    binaries = _binaries()
    with throwaway_postgres(binaries) as url:
        parsed = make_url(url)
        assert parsed.drivername == "postgresql+psycopg"
        assert parsed.host == "127.0.0.1"
        assert parsed.username == "postgres"
        assert parsed.database == "postgres"
        port = parsed.port
        assert port is not None

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                version = conn.execute(text("select version()")).scalar_one()
                data_directory = Path(conn.execute(text("show data_directory")).scalar_one())
                fsync = conn.execute(text("show fsync")).scalar_one()
                listen = conn.execute(text("show listen_addresses")).scalar_one()
        finally:
            engine.dispose()
        assert version.startswith("PostgreSQL ")
        assert binaries.version == "unknown" or f"PostgreSQL {binaries.version}" in version
        assert fsync == "off"
        assert listen == "127.0.0.1"
        root = data_directory.parent
        assert root.name.startswith("sessionflow-pg-")
        assert data_directory.is_dir()

    assert not root.exists(), f"{root} was not removed"
    assert _port_is_closed(port), f"something still listens on port {port}"
    assert _port_is_bindable(port), f"port {port} is not free"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2)


def _use_server_then_fail(binaries: postgres.PostgresBinaries, seen: dict[str, object]) -> None:
    with throwaway_postgres(binaries) as url:
        with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
            row = conn.execute("show data_directory").fetchone()
            assert row is not None
            seen["root"] = Path(row[0]).parent
        seen["port"] = make_url(url).port
        raise RuntimeError("boom")


def test_server_is_stopped_and_removed_when_the_body_raises() -> None:
    binaries = _binaries()
    seen: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="boom"):
        _use_server_then_fail(binaries, seen)
    root = seen["root"]
    port = seen["port"]
    assert isinstance(root, Path)
    assert isinstance(port, int)
    assert not root.exists()
    assert _port_is_closed(port)


def test_url_from_the_environment_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    given = "postgresql+psycopg://someone@db.example:5999/elsewhere"
    monkeypatch.setenv(postgres.ENV_URL, given)

    def must_not_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("a throwaway server was started although a URL was given")

    monkeypatch.setattr(postgres, "throwaway_postgres", must_not_start)
    with postgres_url_for_tests() as url:
        assert url == given


def test_missing_binaries_are_reported_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(PostgresUnavailable, match="initdb, pg_ctl"):
        find_binaries()


def test_missing_postgres_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    error = PostgresUnavailable("no server binaries")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(PostgresUnavailable, match="no server binaries"):
        require_postgres(error)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no server binaries"):
        require_postgres(error)
