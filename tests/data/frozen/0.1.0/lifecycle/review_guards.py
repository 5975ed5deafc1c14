"""Guards for the YAML-defined review lifecycle (tests/lifecycles/review.lifecycle.yaml)."""

from __future__ import annotations

from typing import Any

from sessionflow import Session
from sessionflow.loader import guard


@guard
def has_title(session: Session, **_: Any) -> bool:
    """The document has a title."""
    return bool(session.metadata.get("title"))


@guard
def has_reviewer(reviewer: str | None = None, **_: Any) -> bool:
    """Someone reviews it."""
    return bool(reviewer)


@guard("is_author")
def reviewer_is_author(session: Session, reviewer: str | None = None, **_: Any) -> bool:
    """The reviewer wrote it."""
    return reviewer is not None and reviewer == session.metadata.get("author")
