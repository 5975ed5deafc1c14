"""A PostgreSQL primary and its synchronous streaming standby, two throwaway local clusters, for failover tests.

Started as ``tests/support/postgres.py`` starts one server (a temporary directory, ``--auth=trust``, the
``postgres`` user when the tests run as root, loopback only): the primary is initialised with ``initdb`` and
started with ``synchronous_standby_names='*'`` (every commit waits until a standby has flushed its WAL:
``synchronous_commit=on``); the standby is a ``pg_basebackup -R -X stream`` copy of it, started on its own
port, streaming from it. Only the primary's command line names the synchronous standby, so the standby, once
promoted, commits on its own.

:meth:`PostgresPair.kill_primary` SIGKILLs every process of the primary at once (the machine it ran on is gone,
as far as clients can tell); :meth:`PostgresPair.promote` runs ``pg_ctl promote`` on the standby and waits until
it accepts writes. :attr:`PostgresPair.url` names both hosts in SQLAlchemy's multi-host form, with
``target_session_attrs=read-write``: libpq connects to whichever of the two is the primary.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.support.postgres import PostgresBinaries, find_binaries, free_port

__all__ = ["PostgresPair", "postgres_pair"]

_OPTIONS = ("-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=on "
            "-c max_connections=200 -c wal_level=replica -c max_wal_senders=5 -c hot_standby=on")


class PostgresPair:
    """A primary and its synchronous standby (see the module's docstring). Raises ``PostgresUnavailable`` when no
    server can be started here."""

    def __init__(self, binaries: PostgresBinaries | None = None) -> None:
        self.binaries = binaries if binaries is not None else find_binaries()
        self.basebackup = self.binaries.initdb.with_name("pg_basebackup")
        self.account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="sessionflow-pg-pair-"))
        self.primary_data = self.root / "primary"
        self.standby_data = self.root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        self._running: set[Path] = set()
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)

    # ------------------------------------------------------------------ URLs

    @property
    def url(self) -> str:
        """Both hosts, the primary first; libpq picks the one that accepts writes."""
        return (f"postgresql+psycopg://postgres@/postgres?host=127.0.0.1:{self.primary_port}"
                f"&host=127.0.0.1:{self.standby_port}&target_session_attrs=read-write&connect_timeout=3")

    def direct_url(self, port: int) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Initialise and start the primary, copy it into the standby, start that, and wait until the primary
        sees it as its synchronous standby."""
        self._checked([str(self.binaries.initdb), "-D", str(self.primary_data), "--auth=trust", "-U", "postgres",
                       "-E", "UTF8", "--locale=C", "--no-sync"], "initdb")
        self._start(self.primary_data, self.primary_port, "-c synchronous_standby_names='*'")
        self._checked([str(self.basebackup), "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                       "-D", str(self.standby_data), "-R", "-X", "stream", "--no-sync"], "pg_basebackup")
        self._start(self.standby_data, self.standby_port, "")
        self._wait_for_sync_standby()

    def _start(self, data: Path, port: int, extra: str) -> None:
        options = f"-p {port} -k {self.root} {_OPTIONS} {extra}"
        self._checked([str(self.binaries.pg_ctl), "-w", "-t", "60", "-D", str(data), "-l", str(data) + ".log",
                       "-o", options, "start"], f"pg_ctl start ({data.name})")
        self._running.add(data)

    def _wait_for_sync_standby(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with psycopg.connect(host="127.0.0.1", port=self.primary_port, user="postgres", dbname="postgres",
                                 connect_timeout=5, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync' "
                                   "AND state = 'streaming'").fetchone()
            if row is not None and row[0] >= 1:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby did not become synchronous:\n{self.log_tail(self.standby_data)}")
            time.sleep(0.1)

    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster and every one of its processes, at once."""
        pid = int((self.primary_data / "postmaster.pid").read_text().splitlines()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
        pids = [pid, *(int(p) for p in children.stdout.split())]
        for each in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        self._running.discard(self.primary_data)

    def promote(self) -> None:
        """``pg_ctl promote`` on the standby; returns once it accepts writes."""
        self._checked([str(self.binaries.pg_ctl), "-w", "-t", "60", "-D", str(self.standby_data), "promote"],
                      "pg_ctl promote")

    def close(self) -> None:
        try:
            for data in list(self._running):
                self._run([str(self.binaries.pg_ctl), "-w", "-t", "60", "-D", str(data), "-m", "immediate",
                           "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if self.account is not None:
            argv = ["runuser", "-u", self.account.pw_name, "--", *argv]
        env = dict(os.environ, LC_ALL="C", LANG="C")
        env.pop("PGDATA", None)
        return subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    def _checked(self, argv: list[str], what: str) -> None:
        result = self._run(argv)
        if result.returncode != 0:
            raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                               f"{self.log_tail(self.primary_data)}\n{self.log_tail(self.standby_data)}")

    def log_tail(self, data: Path, lines: int = 30) -> str:
        try:
            return "\n".join(Path(str(data) + ".log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log for {data.name})"


@contextlib.contextmanager
def postgres_pair() -> Iterator[PostgresPair]:
    """A started :class:`PostgresPair`, stopped and removed on exit."""
    pair = PostgresPair()
    try:
        pair.start()
        yield pair
    finally:
        pair.close()
