"""A purging process for the purge crash test: purges in small batches with an archive, then is killed.

Usage: python -m tests.reliability.purge_worker URL ARCHIVE_DIR CUTOFF_ISO
"""

from __future__ import annotations

import sys
from datetime import datetime

from sessionflow import SessionManager


def main(url: str, archive: str, cutoff: str) -> None:
    with SessionManager.open(url, migrate=False, cache_size=0) as manager:
        print("purging", flush=True)
        result = manager.purge(closed_before=datetime.fromisoformat(cutoff), archive=archive, batch_size=3)
        print(f"done {result.sessions}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
