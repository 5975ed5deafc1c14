"""Where the benchmarks run: the machine description and the PostgreSQL server.

PostgreSQL: ``SESSIONFLOW_BENCH_DATABASE_URL`` names an existing server (any database on it; the role must
be allowed to create databases). Without it a throwaway server is started with the test suite's helper
(``tests.support.postgres.throwaway_postgres``: ``initdb`` + ``pg_ctl`` on a free loopback port, durability
off since it is thrown away). Either way every benchmark gets a *fresh* database of its own
(:meth:`PostgresProvider.fresh_database`), dropped afterwards.

Durable PostgreSQL: the server above runs without durability (a throwaway server has ``fsync`` and
``synchronous_commit`` off). The benchmarks that measure at real durability take their databases from
:meth:`PostgresProvider.durable_database` instead: a second throwaway server, started on first use with
``fsync``, ``synchronous_commit`` and ``full_page_writes`` on (every commit waits for its WAL flush to the
disk), once per run, stopped and removed when the run ends; or the server ``SESSIONFLOW_BENCH_DURABLE_DATABASE_URL``
names, which must report ``fsync`` and ``synchronous_commit`` on.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from benchmarks.skip import Skipped

__all__ = ["ENV_DURABLE_URL", "ENV_URL", "Machine", "PostgresProvider", "conninfo", "describe_machine",
           "load_average"]

#: The environment variable that names an existing PostgreSQL server for the benchmarks.
ENV_URL = "SESSIONFLOW_BENCH_DATABASE_URL"
#: The environment variable that names an existing *durable* server (fsync and synchronous_commit on).
ENV_DURABLE_URL = "SESSIONFLOW_BENCH_DURABLE_DATABASE_URL"
#: The settings a durable server must report.
_DURABLE = ("fsync", "synchronous_commit", "full_page_writes")

_PACKAGES = ("sessionflow", "python-statemachine", "transitions", "eventsourcing", "SQLAlchemy", "psycopg",
             "pydantic")


def conninfo(url: str | URL) -> dict[str, Any]:
    """psycopg connection keywords for a SQLAlchemy URL (``postgresql+psycopg://user@host:port/db``)."""
    parsed = make_url(url) if isinstance(url, str) else url
    info: dict[str, Any] = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "dbname": parsed.database or "postgres",
    }
    if parsed.password:
        info["password"] = parsed.password
    return info


class PostgresProvider:
    """Starts (or finds) a PostgreSQL server on first use; hands out fresh databases on it."""

    def __init__(self, url: str | None = None) -> None:
        self._given = url
        self._url: str | None = None
        self._stack = contextlib.ExitStack()
        self._error: str | None = None
        self.server_version: str | None = None
        self.origin = ""
        self._durable_url: str | None = None
        self._durable_error: str | None = None
        #: How the durable server came about and its settings (set when it is first used).
        self.durable_origin = ""

    def server_url(self) -> str:
        """The server's URL (its default database); raises :class:`Skipped` when no server is available."""
        if self._url is not None:
            return self._url
        if self._error is not None:
            raise Skipped(self._error)
        url = self._given or os.environ.get(ENV_URL, "").strip() or None
        try:
            if url is None:
                try:
                    from tests.support.postgres import PostgresUnavailable, throwaway_postgres
                except ImportError as error:  # not run from the repository
                    raise Skipped(f"no PostgreSQL: set {ENV_URL} ({error})") from None
                try:
                    url = self._stack.enter_context(throwaway_postgres())
                except PostgresUnavailable as error:
                    raise Skipped(f"no PostgreSQL: {error}") from None
                self.origin = "throwaway server from tests/support/postgres.py"
            else:
                self.origin = f"server from {ENV_URL}" if self._given is None else "server given by the caller"
            import psycopg

            with psycopg.connect(**conninfo(url), autocommit=True) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                self.server_version = str(row[0]) if row else "unknown"
                settings = {name: conn.execute(f"SHOW {name}").fetchone() for name in
                            ("fsync", "synchronous_commit")}
                self.origin += ": " + ", ".join(f"{k}={v[0] if v else '?'}" for k, v in settings.items())
        except Skipped as error:
            self._error = str(error)
            raise
        self._url = url
        return url

    @contextlib.contextmanager
    def fresh_database(self, prefix: str = "sfbench") -> Iterator[str]:
        """A new, empty database on the server (its SQLAlchemy URL); dropped on exit."""
        with _fresh_database(self.server_url(), prefix) as url:
            yield url

    def durable_server_url(self) -> str:
        """The durable server's URL (its default database), started on first use; raises :class:`Skipped`
        when none is available. ``fsync``, ``synchronous_commit`` and ``full_page_writes`` are checked on."""
        if self._durable_url is not None:
            return self._durable_url
        if self._durable_error is not None:
            raise Skipped(self._durable_error)
        url = os.environ.get(ENV_DURABLE_URL, "").strip() or None
        try:
            if url is None:
                try:
                    from tests.support.postgres import PostgresUnavailable, throwaway_postgres
                except ImportError as error:  # not run from the repository
                    raise Skipped(f"no durable PostgreSQL: set {ENV_DURABLE_URL} ({error})") from None
                try:
                    url = self._stack.enter_context(throwaway_postgres(durable=True))
                except PostgresUnavailable as error:
                    raise Skipped(f"no durable PostgreSQL: {error}") from None
                origin = "throwaway durable server from tests/support/postgres.py"
            else:
                origin = f"server from {ENV_DURABLE_URL}"
            import psycopg

            with psycopg.connect(**conninfo(url), autocommit=True) as conn:
                settings = {}
                for name in (*_DURABLE, "wal_sync_method"):
                    row = conn.execute(f"SHOW {name}").fetchone()
                    settings[name] = str(row[0]) if row else "?"
            if any(settings[name] != "on" for name in _DURABLE[:2]):
                raise Skipped(f"the durable PostgreSQL server ({origin}) runs with "
                              + ", ".join(f"{k}={v}" for k, v in settings.items()))
            self.durable_origin = f"{origin}: " + ", ".join(f"{k}={v}" for k, v in settings.items())
        except Skipped as error:
            self._durable_error = str(error)
            raise
        self._durable_url = url
        return url

    @contextlib.contextmanager
    def durable_database(self, prefix: str = "sfbench_durable") -> Iterator[str]:
        """A new, empty database on the durable server (its SQLAlchemy URL); dropped on exit.

        The server is started once per run, on first use, and stopped by :meth:`close` (at the end of the
        run); raises :class:`Skipped` when no durable server is available.
        """
        with _fresh_database(self.durable_server_url(), prefix) as url:
            yield url

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def _fresh_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server at ``server_url`` (its SQLAlchemy URL); dropped on exit."""
    import psycopg

    server = make_url(server_url)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**conninfo(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**conninfo(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Machine:
    date: str
    cores: int
    cpu: str
    system: str
    python: str
    sqlite: str
    postgres: str
    packages: dict[str, str]
    commit: str
    load: str = ""

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("Date (UTC)", self.date),
            ("CPU", f"{self.cores} cores, {self.cpu}"),
            ("System", self.system),
            ("Python", self.python),
            ("SQLite", self.sqlite),
            ("PostgreSQL", self.postgres),
            ("Libraries", ", ".join(f"{k} {v}" for k, v in self.packages.items())),
            ("sessionflow tree", self.commit),
            ("Load average (1 min) at start / end", self.load),
        ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha} (src/ with uncommitted changes)" if dirty else sha


def load_average() -> float:
    """The 1-minute load average (0 where the system does not tell)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def describe_machine(postgres: PostgresProvider | None, load_at_start: float | None = None) -> Machine:
    packages: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    pg = "not used"
    if postgres is not None and postgres.server_version is not None:
        pg = f"{postgres.server_version} ({postgres.origin})"
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        cores=os.cpu_count() or 0,
        cpu=_cpu_model(),
        system=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=f"{platform.python_implementation()} {sys.version.split()[0]}",
        sqlite=sqlite3.sqlite_version,
        postgres=pg,
        packages=packages,
        commit=_commit(),
        load=(f"{load_at_start:.2f} / " if load_at_start is not None else "") + f"{load_average():.2f}",
    )
