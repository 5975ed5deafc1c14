"""Servers of a test's own that the test crashes and restarts on the same port and data.

:class:`CrashablePostgres` is a throwaway PostgreSQL cluster (as ``tests/support/postgres.py`` starts one: a
temporary directory, ``--auth=trust``, run as ``postgres`` when the tests run as root) that :meth:`crash` stops
with ``pg_ctl stop -m immediate`` — every server process killed at once, no checkpoint, crash recovery on the
next start — and :meth:`start` starts again. Its durability: ``synchronous_commit`` on, so a commit is answered
only once its WAL is written; ``fsync`` off, because these crashes stop processes, not the machine, and the
kernel keeps what was written.

For Redis, ``tests.support.redis.RedisServer`` already kills (``SIGKILL``) and restarts a server on the same
port and data (``appendonly yes``, ``appendfsync always``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.postgres import PostgresBinaries, find_binaries, free_port

__all__ = ["CrashablePostgres"]


class CrashablePostgres:
    """A private PostgreSQL server to crash (:meth:`crash`) and start again (:meth:`start`). Raises
    ``PostgresUnavailable`` when no server can be started here."""

    def __init__(self, binaries: PostgresBinaries | None = None) -> None:
        self.binaries = binaries if binaries is not None else find_binaries()
        self.account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="sessionflow-crash-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.running = False
        self._started = False  # once started, the port stays (the clients' URLs name it)
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        self._checked([str(self.binaries.initdb), "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E",
                       "UTF8", "--locale=C", "--no-sync"], "initdb")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        if self.account is not None:
            argv = ["runuser", "-u", self.account.pw_name, "--", *argv]
        env = dict(os.environ, LC_ALL="C", LANG="C")
        env.pop("PGDATA", None)
        return subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def _checked(self, argv: list[str], what: str) -> None:
        result = self._run(argv)
        if result.returncode != 0:
            raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                               f"{self.log_tail()}")

    def start(self) -> None:
        """Start the server (on a free port the first time, on the same port afterwards) and wait for it."""
        for attempt in range(3):
            if not self.port or (attempt and not self._started):  # a free port may be taken meanwhile
                self.port = free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=on -c full_page_writes=off -c max_connections=200")
            result = self._run([str(self.binaries.pg_ctl), "-w", "-t", "60", "-D", str(self.data), "-l",
                                str(self.log), "-o", options, "start"])
            if result.returncode == 0:
                self.running = self._started = True
                self._wait_ready()
                return
            time.sleep(0.5)
        raise RuntimeError(f"pg_ctl start failed:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                     connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once, without a checkpoint."""
        self._checked([str(self.binaries.pg_ctl), "-w", "-t", "60", "-D", str(self.data), "-m", "immediate",
                       "stop"], "pg_ctl stop -m immediate")
        self.running = False

    def close(self) -> None:
        try:
            if self.running:
                self.crash()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"
