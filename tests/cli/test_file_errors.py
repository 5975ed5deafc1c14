"""Files that cannot be written: ``purge --archive`` and ``export`` onto a full disk raise ``ArchiveError`` (exit 11,
one line, the store unchanged), and a folder path that cannot be a folder is refused (exit 6, the field named).

A full disk is simulated by an ``os.write`` that writes part of an archive or export file and then fails with
ENOSPC; one test runs the real command line under a file-size limit (EFBIG) instead.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sessionflow import SessionManager
from sessionflow.adapters.jsonl import export
from sessionflow.entrypoints.cli import app
from sessionflow.errors import ArchiveError, InvalidInput
from sessionflow.testing import ManualClock

OLD = datetime(2020, 1, 1, tzinfo=UTC)
ENOSPC_TEXT = os.strerror(errno.ENOSPC)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'files.db'}"
    with SessionManager.open(url, clock=ManualClock(OLD)) as mgr:
        for i in range(3):
            s = mgr.create(user_id=f"u{i}", metadata={"i": i}, performer_id="p")
            mgr.fail(s.id, reason="old", performer_id="p")
    return url


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Once called, the first write of an audit file writes half of it, and every later one fails with ENOSPC."""
    real_write = os.write

    def arm() -> None:
        full = False

        def write(fd: int, data: bytes | memoryview) -> int:
            nonlocal full
            if full:
                raise OSError(errno.ENOSPC, ENOSPC_TEXT)
            if bytes(data[:13]) != b'{"record_id":':
                return real_write(fd, data)
            full = True
            return real_write(fd, bytes(data[:len(data) // 2]))

        monkeypatch.setattr(os, "write", write)

    return arm


def snapshot(url: str) -> dict[str, list[int]]:
    with SessionManager.open(url) as mgr:
        return {str(sid): [e.version for e in mgr.history(sid)] for sid in mgr.store.session_ids()}


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", db, *args])


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# ---------------------------------------------------------------- the library


def test_purge_onto_a_full_disk_raises_archive_error_and_keeps_the_store(
        db: str, tmp_path: Path, full_disk: Callable[[], None]) -> None:
    before = snapshot(db)
    archive = tmp_path / "archive"
    full_disk()
    with SessionManager.open(db) as mgr, pytest.raises(ArchiveError) as caught:
        mgr.purge(closed_before=datetime.now(UTC) - timedelta(days=30), archive=archive)
    error = caught.value
    assert error.code == "archive_error"
    assert error.problem == ENOSPC_TEXT
    assert error.path.startswith(str(archive))
    assert error.path.endswith(".jsonl")
    assert isinstance(error.__cause__, OSError)
    assert error.__cause__.errno == errno.ENOSPC
    assert error.to_dict()["path"] == error.path
    assert snapshot(db) == before
    assert files_under(archive) == []  # no temporary file left behind


def test_export_onto_a_full_disk_raises_archive_error(db: str, tmp_path: Path,
                                                      full_disk: Callable[[], None]) -> None:
    root = tmp_path / "audit"
    full_disk()
    with SessionManager.open(db) as mgr, pytest.raises(ArchiveError) as caught:
        export(mgr, root)
    assert caught.value.problem == ENOSPC_TEXT
    assert isinstance(caught.value.__cause__, OSError)
    assert files_under(root) == []


@pytest.mark.parametrize("bad", ["", "FILE", "FILE/x", "FILE/x/y"])
def test_export_refuses_a_root_that_cannot_be_a_folder(db: str, tmp_path: Path, bad: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("a file\n")
    with SessionManager.open(db) as mgr, pytest.raises(InvalidInput) as caught:
        export(mgr, bad)
    assert caught.value.field == "root"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE", "files.db"]


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("json_mode", [False, True])
def test_cli_purge_onto_a_full_disk_exits_11_with_one_line(db: str, tmp_path: Path, full_disk: Callable[[], None],
                                                           json_mode: bool) -> None:
    before = snapshot(db)
    archive = tmp_path / "archive"
    full_disk()
    result = run(db, "purge", "--closed-before", "30d", "--archive", str(archive), *(["--json"] if json_mode else []))
    assert result.exit_code == 11, result.output
    line = one_error_line(result)
    if json_mode:
        document = json.loads(line)
        assert (document["code"], document["exit_code"], document["problem"]) == ("archive_error", 11, ENOSPC_TEXT)
        assert document["path"].startswith(str(archive))
    else:
        assert line.startswith(f"error: cannot write '{archive}"), line
        assert line.endswith(f": {ENOSPC_TEXT}"), line
    assert result.stdout == ""
    assert snapshot(db) == before
    assert files_under(archive) == []


def test_cli_export_onto_a_full_disk_exits_11_with_one_line(db: str, tmp_path: Path,
                                                            full_disk: Callable[[], None]) -> None:
    full_disk()
    result = run(db, "export", str(tmp_path / "audit"))
    assert result.exit_code == 11, result.output
    assert one_error_line(result).endswith(ENOSPC_TEXT)
    assert files_under(tmp_path / "audit") == []


@pytest.mark.parametrize("command", ["export", "purge"])
@pytest.mark.parametrize("bad", ["", "FILE/x"])
def test_cli_refuses_a_folder_that_cannot_be_one_with_exit_6(db: str, tmp_path: Path, command: str, bad: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("a file\n")
    before = snapshot(db)
    args = ["export", bad] if command == "export" else ["purge", "--closed-before", "30d", "--archive", bad]
    result = run(db, "--json", *args)
    assert result.exit_code == 6, result.output
    document = json.loads(one_error_line(result))
    assert document["code"] == "invalid_input"
    assert document["field"] == ("root" if command == "export" else "archive")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE", "files.db"]  # nothing written anywhere
    assert snapshot(db) == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a file-size limit (RLIMIT_FSIZE)")
@pytest.mark.parametrize("command", ["export", "purge"])
def test_cli_under_a_real_file_size_limit(tmp_path: Path, command: str) -> None:
    """The real thing: the operating system refuses the file (EFBIG), not a simulated write."""
    import resource

    url = f"sqlite:///{tmp_path / 'big.db'}"
    with SessionManager.open(url, clock=ManualClock(OLD)) as mgr:
        s = mgr.create(metadata={"blob": "x" * 60_000}, performer_id="p")
        mgr.update(s.id, metadata={"blob": "y" * 60_000}, performer_id="p")
        mgr.fail(s.id, reason="old", performer_id="p")  # its audit file: about 180 kB
    before = snapshot(url)
    limit = 100_000  # bytes a file may grow to: SQLite's shared-memory index (32 kB) fits, the audit file not

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out"
    args = ["export", str(out)] if command == "export" else ["purge", "--closed-before", "30d", "--archive", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    done = subprocess.run([sys.executable, "-m", "sessionflow", "--db", url, *args], preexec_fn=limited,
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode == 11, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.endswith(f": {os.strerror(errno.EFBIG)}\n"), done.stderr
    assert snapshot(url) == before
    assert [p for p in files_under(out) if p.stat().st_size] == []
