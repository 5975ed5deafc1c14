"""Over HTTP, a NUL character (``\\x00``) in a stored string is a 400 naming the field, on every store, and changes
nothing (the manager's own refusal is in the contract suite, ``sessionflow.testing.contract.nul``)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow.entrypoints.http import create_app
from tests.conftest import MakeManager
from tests.support.backends import BACKENDS

NUL = "a\x00b"


@pytest.mark.parametrize("backend", BACKENDS)  # the HTTP service runs on the synchronous manager
@pytest.mark.parametrize(("body", "field"), [
    ({"metadata": {"k": NUL}}, "metadata"),
    ({"metadata": {"k": [{NUL: 1}]}}, "metadata"),
    ({"user_id": NUL}, "user_id"),
    ({"file_paths": [NUL]}, "file_paths"),
])
def test_over_http_a_nul_is_a_400_on_every_store(make_manager: MakeManager, backend: str, body: dict[str, Any],
                                                 field: str) -> None:
    mgr = make_manager()
    with TestClient(create_app(mgr, metrics=False)) as client:
        response = client.post("/sessions", json={"performer_id": "u1", **body})
        assert response.status_code == 400, response.text
        assert (response.json()["code"], response.json()["field"]) == ("invalid_input", field)
        sid = client.post("/sessions", json={"performer_id": "u1"}).json()["id"]
        position = mgr.last_position()
        sent = client.post(f"/sessions/{sid}/events/start", json={"performer_id": "u1", "args": {"n": {"k": NUL}}})
        assert (sent.status_code, sent.json()["field"]) == (400, "args")
        failed = client.post(f"/sessions/{sid}/events/fail", json={"performer_id": "u1", "args": {"reason": NUL}})
        assert (failed.status_code, failed.json()["field"]) == (400, "reason")
    assert mgr.count() == 1
    assert mgr.last_position() == position
    assert len(mgr.history(sid)) == 1
