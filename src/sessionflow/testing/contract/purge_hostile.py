"""``purge`` given an archive path the operating system cannot even represent (a NUL inside it, a path-like that
names bytes, a name too long for the file system) refuses it with ``InvalidInput`` naming ``archive``, on every
store, before anything is written or removed."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionflow import InvalidInput, SessionManager
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager, requires


class _BytesPath(os.PathLike[bytes]):
    """A path-like object that names a path as bytes."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __fspath__(self) -> bytes:
        return self.raw


def _closed(mgr: SessionManager, clock: ManualClock) -> None:
    """Sessions a purge would remove (and one newer, so the feed's newest event is not in an old one)."""
    for user in ("u1", "u2"):
        session = mgr.create(user_id=user, performer_id=user)
        mgr.fail(session.id, reason="stop", performer_id=user)
    clock.advance(timedelta(days=10))
    mgr.create(user_id="u3", performer_id="u3")


def _archives(tmp_path: Path) -> dict[str, Any]:
    return {
        "nul in a str": str(tmp_path / "a\x00b"),
        "nul in a Path": Path(str(tmp_path)) / "arch\x00ive",
        "lone nul": "\x00",
        "nul in bytes path-like": _BytesPath(os.fsencode(tmp_path / "a\x00b")),
        "bytes path-like": _BytesPath(os.fsencode(tmp_path / "archive")),
        "name too long": str(tmp_path / ("x" * 300)),
        "lone surrogate": str(tmp_path / "a\ud800b"),
    }


class TestPurgeHostile(ContractSuite):
    """Archive paths the system cannot represent."""

    @pytest.mark.parametrize("case", sorted(_archives(Path("/tmp"))))
    def test_an_archive_path_the_system_cannot_represent_is_invalid_input(
            self, make_manager: MakeManager, clock: ManualClock, tmp_path: Path, case: str) -> None:
        mgr = make_manager(clock=clock)
        _closed(mgr, clock)
        where = tmp_path / "archives"
        where.mkdir()
        archive = _archives(where)[case]
        before = [(s, mgr.history(s.id)) for s in mgr.list(limit=100)]
        histories = {s.id: mgr.history(s.id) for s, _ in before}
        with pytest.raises(InvalidInput) as caught:
            mgr.purge(closed_before=clock.now() - timedelta(days=1), archive=archive)
        assert caught.value.field == "archive"
        assert [(s, mgr.history(s.id)) for s in mgr.list(limit=100)] == before
        assert {sid: mgr.history(sid) for sid in histories} == histories
        assert list(where.iterdir()) == []  # no folder or file created either

    @requires("purge")
    def test_a_good_archive_path_still_purges(self, make_manager: MakeManager, clock: ManualClock,
                                              tmp_path: Path) -> None:
        mgr = make_manager(clock=clock)
        _closed(mgr, clock)
        result = mgr.purge(closed_before=clock.now() - timedelta(days=1), archive=tmp_path / "archive")
        assert (result.sessions, result.archive_files) == (2, 2)
