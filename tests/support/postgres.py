"""A real PostgreSQL for the test suite.

``postgres_url_for_tests()`` yields the URL of the server the PostgreSQL tests use: the one named by
``SESSIONFLOW_TEST_DATABASE_URL`` when that is set, otherwise a throwaway server started by
``throwaway_postgres()``:

* the server binaries (``initdb``, ``pg_ctl``) are looked up under ``/usr/lib/postgresql/*/bin`` (newest
  version first), then on ``PATH``;
* a cluster is initialised in a fresh temporary directory (``--auth=trust``, user ``postgres``, UTF8);
* PostgreSQL refuses to run as root, so when the tests run as root the directory is handed to the
  ``postgres`` user and every server command runs through ``runuser -u postgres --``;
* the server listens on a free loopback port only (its socket lives in the temporary directory), with
  durability switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``) because it is thrown away
  (``throwaway_postgres(durable=True)`` keeps them on, for the durability benchmarks);
* on exit it is stopped (``pg_ctl stop -m immediate``) and its directory removed.

When the binaries are missing the helpers raise :class:`PostgresUnavailable`. Under CI (``CI=true``) a test
must let that error fail the run; elsewhere :func:`require_postgres` turns it into a skip with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "ENV_URL",
    "PostgresBinaries",
    "PostgresUnavailable",
    "find_binaries",
    "free_port",
    "in_ci",
    "postgres_url",
    "postgres_url_for_tests",
    "require_postgres",
    "throwaway_postgres",
]

#: The environment variable that names an existing server to test against.
ENV_URL = "SESSIONFLOW_TEST_DATABASE_URL"

_SERVER_USER = "postgres"
_START_ATTEMPTS = 3
_READY_TIMEOUT = 30.0


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (binaries or the ``postgres`` user are missing)."""


@dataclass(frozen=True)
class PostgresBinaries:
    initdb: Path
    pg_ctl: Path

    @property
    def version(self) -> str:
        match = re.search(r"/postgresql/([0-9.]+)/bin", str(self.initdb))
        return match.group(1) if match else "unknown"


def in_ci() -> bool:
    """True when the ``CI`` environment variable says we are in continuous integration."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([0-9.]+)/bin", path)
    if not match:
        return (0,)
    return tuple(int(part) for part in match.group(1).split(".") if part.isdigit())


def find_binaries() -> PostgresBinaries:
    """``initdb`` and ``pg_ctl`` from the newest ``/usr/lib/postgresql/*/bin``, else from ``PATH``."""
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key, reverse=True):
        pg_ctl = Path(initdb).with_name("pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return PostgresBinaries(Path(initdb), pg_ctl)
    initdb_on_path = shutil.which("initdb")
    pg_ctl_on_path = shutil.which("pg_ctl")
    if initdb_on_path and pg_ctl_on_path:
        return PostgresBinaries(Path(initdb_on_path), Path(pg_ctl_on_path))
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH; "
        "install Debian's `postgresql` package (`make test` does so when run as root) "
        f"or set {ENV_URL} to an existing server"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: ``postgres`` when we are root, else ourselves (``None``)."""
    if not _is_root():
        return None
    try:
        return pwd.getpwnam(_SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root, but there is no {_SERVER_USER!r} user to run PostgreSQL as "
            "(PostgreSQL refuses to run as root); install Debian's `postgresql` package"
        ) from None


def _run(command: Sequence[str], *, account: pwd.struct_passwd | None, cwd: Path,
         timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    argv = list(command)
    if account is not None:
        argv = ["runuser", "-u", account.pw_name, "--", *argv]
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PGDATA", None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed with exit code {result.returncode}:\n{result.stdout}\n{result.stderr}".rstrip()
        )


def _wait_until_ready(port: int, log: Path, timeout: float = _READY_TIMEOUT) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                 connect_timeout=2) as conn:
                conn.execute("select 1")
            return
        except psycopg.OperationalError as exc:
            last_error = exc
            time.sleep(0.05)
    server_log = log.read_text(errors="replace") if log.exists() else "(no server log)"
    raise RuntimeError(f"PostgreSQL on port {port} did not accept connections within {timeout:g} s: "
                       f"{last_error}\n{server_log}")


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


@contextlib.contextmanager
def throwaway_postgres(binaries: PostgresBinaries | None = None, *, durable: bool = False) -> Iterator[str]:
    """Start a private PostgreSQL server and yield its SQLAlchemy URL; stop and remove it on exit.

    The URL has the form ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``. Raises
    :class:`PostgresUnavailable` when no server can be started here. ``durable=True`` starts it with
    PostgreSQL's durable defaults instead (``fsync``, ``synchronous_commit`` and ``full_page_writes`` on:
    every commit waits for its WAL flush), for measurements at real durability.
    """
    bins = binaries if binaries is not None else find_binaries()
    account = _server_account()
    root = Path(tempfile.mkdtemp(prefix="sessionflow-pg-"))
    data = root / "data"
    log = root / "server.log"
    started = False
    try:
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
        _checked(
            _run([str(bins.initdb), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync"], account=account, cwd=root),
            "initdb",
        )
        port = 0
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = free_port()
            durability = "on" if durable else "off"
            options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync={durability} "
                       f"-c synchronous_commit={durability} -c full_page_writes={durability} "
                       "-c max_connections=200")
            result = _run([str(bins.pg_ctl), "-w", "-t", "60", "-D", str(data), "-l", str(log), "-o", options,
                           "start"], account=account, cwd=root)
            if result.returncode == 0:
                started = True
                break
            if attempt == _START_ATTEMPTS:  # the port may have been taken meanwhile: try another
                raise RuntimeError(f"pg_ctl start failed {attempt} times; last output:\n{result.stdout}\n"
                                   f"{result.stderr}\n{_log_tail(log)}")
        _wait_until_ready(port, log)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        try:
            if started:
                stop = _run([str(bins.pg_ctl), "-w", "-t", "60", "-D", str(data), "-m", "immediate", "stop"],
                            account=account, cwd=root)
                _checked(stop, "pg_ctl stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def postgres_url_for_tests() -> Iterator[str]:
    """The PostgreSQL URL for the tests: ``$SESSIONFLOW_TEST_DATABASE_URL``, or a throwaway server."""
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        yield url
        return
    with throwaway_postgres() as throwaway_url:
        yield throwaway_url


def require_postgres(error: PostgresUnavailable) -> NoReturn:
    """Turn a missing PostgreSQL into a pytest skip — except under CI, where it is an error."""
    if in_ci():
        raise error
    pytest.skip(f"PostgreSQL unavailable: {error}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One PostgreSQL for the whole test run (import this fixture into a ``conftest.py`` to use it)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_url_for_tests())
        except PostgresUnavailable as error:
            require_postgres(error)
        yield url
