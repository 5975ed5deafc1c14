"""``OutcomeUnknown`` and ``ArchiveError``: their place in the error tree, their JSON, their HTTP status and
their exit codes."""

from __future__ import annotations

from uuid import UUID

from sessionflow import ArchiveError, OutcomeUnknown, SessionflowError, StoreError
from sessionflow.adapters.outcome import WriteOutcome, failure
from sessionflow.entrypoints.cli.errors import EXIT_CODES, ExitCode, error_document, exit_code_for
from sessionflow.entrypoints.http.errors import status_for

SID = UUID("00000000-0000-4000-8000-000000000001")
RID = UUID("00000000-0000-4000-8000-0000000000aa")


def test_outcome_unknown_is_not_a_store_error() -> None:
    error = OutcomeUnknown("append", session_ids=[SID], record_ids=[RID], reason="server closed the connection")
    assert isinstance(error, SessionflowError)
    assert not isinstance(error, StoreError)
    assert error.session_id == SID
    assert 'may or may not have been applied' in error.message
    assert str(RID) in error.message
    data = error.to_dict()
    assert data['code'] == 'outcome_unknown'
    assert data['may_have_been_applied'] is True
    assert data['session_ids'] == [str(SID)]
    assert data['record_ids'] == [str(RID)]
    assert data['applied'] == 0


def test_outcome_unknown_of_several_steps_says_what_was_done() -> None:
    error = OutcomeUnknown("expire", session_ids=[SID, RID]).with_applied(1000)
    assert error.session_id is None
    assert error.applied == 1000
    assert "1000 sessions were changed by its earlier steps" in error.message


def test_failure_is_outcome_unknown_only_while_unsure() -> None:
    outcome = WriteOutcome("append", session_ids=[SID], record_ids=[RID])
    assert type(failure("database error: x", outcome)) is StoreError
    assert type(failure("database error: x", None)) is StoreError
    outcome.unsure = True
    unknown = failure("database error: x", outcome)
    assert isinstance(unknown, OutcomeUnknown)
    assert unknown.record_ids == (RID,)


def test_http_status_and_cli_exit_codes() -> None:
    unknown = OutcomeUnknown("append", session_ids=[SID], record_ids=[RID])
    assert status_for(unknown) == 503
    assert status_for(StoreError('x')) == 503
    assert exit_code_for(unknown) == ExitCode.OUTCOME_UNKNOWN == 10
    assert exit_code_for(StoreError("x")) == ExitCode.STORE == 7
    assert exit_code_for(ArchiveError("/a", "No space left on device")) == ExitCode.FILE == 11
    assert error_document(unknown)['exit_code'] == 10
    assert error_document(unknown)['code'] == 'outcome_unknown'
    assert 10 in EXIT_CODES
    assert 11 in EXIT_CODES


def test_archive_error() -> None:
    error = ArchiveError("/archive/x.jsonl", "No space left on device")
    assert error.to_dict()['code'] == 'archive_error'
    assert error.to_dict()['path'] == '/archive/x.jsonl'
    assert not isinstance(error, StoreError)
