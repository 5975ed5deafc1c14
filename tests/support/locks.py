"""Holding an SQLite file's write lock from a test, so that a server's writes wait for it (its busy timeout)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["WriteLock"]


class WriteLock:
    """The SQLite file's write lock, held by the test until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()
