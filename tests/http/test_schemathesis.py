"""Property-based tests of the served OpenAPI document with schemathesis (in-process, bounded).

Every operation is called with generated valid and invalid input; every response must be a documented
status with a documented content type, headers and body schema, and never a 5xx. With tokens, the runs go
as a user principal and as a service principal with every scope. A stateful run, as each principal, follows
the document's links (the id a create returns feeds the routes on ``/sessions/{session_id}``).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
TOKENS: dict[str, Any] = {
    "tok-alice": "alice",
    "tok-ops": {"service": "ops", "scopes": ["sessions:read", "sessions:write", "sessions:admin", "events:read"]},
}
AS = {"user": {"Authorization": "Bearer tok-alice"}, "service": {"Authorization": "Bearer tok-ops"}}
SETTINGS: dict[str, Any] = {"deadline": None, "database": None, "derandomize": True,
                            "suppress_health_check": list(HealthCheck)}


class _Swappable:
    """Delegates to a fresh in-memory manager per stateful run, so runs do not see each other's sessions."""

    def __init__(self) -> None:
        self.current = SessionManager.in_memory()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)

    def reset(self) -> None:
        self.current.close()
        self.current = SessionManager.in_memory()


open_app = create_app(SessionManager.in_memory())
secured_app = create_app(SessionManager.in_memory(), tokens=TOKENS)
stateful_manager = _Swappable()
stateful_app = create_app(stateful_manager, tokens=TOKENS, metrics=False)  # type: ignore[arg-type]

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
    open_schema = schemathesis.openapi.from_asgi("/openapi.json", open_app)
    secured_schema = schemathesis.openapi.from_asgi("/openapi.json", secured_app)
    stateful_schema = schemathesis.openapi.from_asgi("/openapi.json", stateful_app)
stateful_schema.config.generation.update(modes=[GenerationMode.POSITIVE], with_security_parameters=False)


def _without_performer(case: Any) -> None:
    # With a token the performer is the token's; a generated, different performer_id is a 400 by design.
    if isinstance(case.body, dict):
        case.body.pop("performer_id", None)


def _finite(case: Any) -> None:
    # The event stream stays open for new events unless told otherwise: end it once the feed is read.
    if case.path == "/events/stream":
        case.query = {**(case.query or {}), "follow": "false"}


def _as_alice(case: Any) -> None:
    # A user principal creates sessions for itself only: make the generated creations its own, so the
    # stateful run reaches the session routes (another user_id is a documented 403).
    if isinstance(case.body, dict) and "user_id" in case.body:
        case.body["user_id"] = "alice"


@open_schema.parametrize()
@settings(max_examples=8, **SETTINGS)
def test_no_server_error_and_no_schema_violation_without_auth(case: Any) -> None:
    _finite(case)
    case.call_and_validate(checks=CHECKS)


@pytest.mark.parametrize("principal", sorted(AS))
@secured_schema.parametrize()
@settings(max_examples=12, **SETTINGS)
def test_no_server_error_and_no_schema_violation_with_auth(case: Any, principal: str) -> None:
    _without_performer(case)
    _finite(case)
    case.call_and_validate(headers=AS[principal], checks=CHECKS)


class _Lifecycles(stateful_schema.as_state_machine()):  # type: ignore[misc]
    principal = "service"

    def setup(self) -> None:
        stateful_manager.reset()

    def before_call(self, case: Any) -> None:
        _without_performer(case)
        _finite(case)
        if self.principal == "user":
            _as_alice(case)

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        return {"headers": AS[self.principal]}

    def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
        case.validate_response(response, checks=CHECKS)


class _UserLifecycles(_Lifecycles):
    principal = "user"


TestStatefulLifecycles = _Lifecycles.TestCase
TestStatefulLifecycles.settings = settings(max_examples=30, stateful_step_count=8, **SETTINGS)
TestStatefulUserLifecycles = _UserLifecycles.TestCase
TestStatefulUserLifecycles.settings = settings(max_examples=30, stateful_step_count=8, **SETTINGS)


@pytest.fixture(autouse=True, scope="module")
def _close_managers() -> Any:
    yield
    stateful_manager.current.close()
