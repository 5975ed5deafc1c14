"""The console's writes: signing in and out, and the actions on a session — each behind a confirmation page, each
through the manager with the version the page was read at (a stale page changes nothing and says so), the scope
the JSON API asks for, and the principal as the performer.

Every form carries the request's form token (:meth:`~.access.ConsoleAccess.check_write`). The forms are
``application/x-www-form-urlencoded``, read here (:func:`form`): the console needs no multipart parser."""

from __future__ import annotations

from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from sessionflow import ConcurrencyConflict, InvalidInput, Session, SessionflowError
from sessionflow.entrypoints.http.console import views
from sessionflow.entrypoints.http.console.access import Denied, SignedIn
from sessionflow.entrypoints.http.console.pages import visible
from sessionflow.entrypoints.http.console.web import Console
from sessionflow.entrypoints.http.errors import status_for
from sessionflow.entrypoints.http.principals import Scope

__all__ = ["router"]

#: What each built-in action is called on its button and its confirmation page.
LABELS = {"fail": "Fail", "complete": "Complete", "touch": "Extend the deadline (touch)", "delete": "Delete",
          "start": "Start"}


#: The largest form the console reads (a reason, a token, a few hidden fields).
MAX_FORM = 16_384


async def form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the first value of each); a form too large or not URL-encoded is
    refused (400)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise Denied(400, "expected a form (application/x-www-form-urlencoded)")
    body = await request.body()
    if len(body) > MAX_FORM:
        raise Denied(400, "the form is too large")
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


def _version(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 2**31:
        raise InvalidInput("version", "expected the version the page was read at")
    return int(value)


def _safe_next(request: Request, target: str) -> str:
    """``target`` when it is a path of this console, else the sessions page (never another site)."""
    root = str(request.scope.get("root_path", ""))
    if target.startswith(root + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{root}/sessions"


def router(console: Console) -> APIRouter:
    """The sign-in pages and the actions of ``console``."""
    routes = APIRouter()
    manager = console.manager
    access = console.access

    @routes.get("/sign-in", response_class=HTMLResponse)
    def sign_in_page(request: Request, next: str = "") -> Response:
        return console.page(request, "signin.html", None, next=_safe_next(request, next),
                            csrf=access.sign_in_form_token(), message="")

    @routes.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        fields = await form(request)
        access.check_write(request, fields.get("csrf", ""), access.sign_in_form_token())
        next = fields.get("next", "")
        response = RedirectResponse(_safe_next(request, next), status_code=303)
        try:
            access.sign_in(fields.get("token", ""), request, response)
        except Denied as error:
            return console.page(request, "signin.html", None, error.status, next=_safe_next(request, next),
                                csrf=access.sign_in_form_token(), message=error.message)
        return response

    @routes.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        signed = console.who(request)
        access.check_write(request, (await form(request)).get("csrf", ""), signed.csrf)
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/sign-in", status_code=303)
        access.sign_out(request, response)
        return response

    def checked(request: Request, session_id: UUID, action: str) -> tuple[SignedIn, Session]:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_ADMIN if action == "delete" else Scope.SESSIONS_WRITE)
        session, _ = visible(console, signed, session_id)
        if action not in views.actions_of(manager, session):
            raise InvalidInput("action", f"{action!r} is not offered for this session now")
        return signed, session

    @routes.get("/sessions/{session_id}/do/{action}", response_class=HTMLResponse)
    def confirm(request: Request, session_id: UUID, action: str) -> Response:
        signed, session = checked(request, session_id, action)
        return console.page(request, "confirm.html", signed, session=session, action=action,
                            label=LABELS.get(action, action), version=session.version, message="")

    @routes.post("/sessions/{session_id}/do/{action}", response_class=HTMLResponse)
    async def act(request: Request, session_id: UUID, action: str) -> Response:
        signed = console.who(request)
        fields = await form(request)
        access.check_write(request, fields.get("csrf", ""), signed.csrf)
        version = _version(fields.get("version", ""))
        return await run_in_threadpool(write, request, signed, session_id, action, version, fields.get("reason", ""))

    def write(request: Request, signed: SignedIn, session_id: UUID, action: str, version: int,
              reason: str) -> Response:
        signed.need(Scope.SESSIONS_ADMIN if action == "delete" else Scope.SESSIONS_WRITE)
        session, _ = visible(console, signed, session_id)
        if session.version != version:
            return _again(console, request, signed, session, action, 409, _stale(version, session.version),
                          stale=True)
        if action not in views.actions_of(manager, session):
            raise InvalidInput("action", f"{action!r} is not offered for this session now")
        performer = signed.principal.id if signed.principal is not None else console.performer
        try:
            _perform(console, session_id, action, performer, version, reason)
        except ConcurrencyConflict as error:
            return _again(console, request, signed, manager.get(session_id), action, 409,
                          _stale(version, error.actual_version), stale=True)
        except SessionflowError as error:  # a guard, a policy, a store failure: nothing was written
            return _again(console, request, signed, session, action, status_for(error), str(error))
        root = request.scope.get("root_path", "")
        target = f"{root}/sessions" if action == "delete" else f"{root}/sessions/{session_id}"
        return RedirectResponse(target, status_code=303)

    return routes


def _perform(console: Console, session_id: UUID, action: str, performer: str, version: int, reason: str) -> None:
    manager = console.manager
    if action == "fail":
        manager.fail(session_id, reason=reason, performer_id=performer, expected_version=version)
    elif action == "complete":
        manager.complete(session_id, performer_id=performer, expected_version=version)
    elif action == "touch":
        manager.touch(session_id, performer_id=performer, expected_version=version)
    elif action == "delete":
        manager.delete(session_id, performer_id=performer, expected_version=version)
    elif action == "start":
        manager.start(session_id, performer_id=performer, expected_version=version)
    else:
        manager.send(session_id, action, performer_id=performer, expected_version=version)


def _stale(read: int, now: int | None) -> str:
    return (f"This session changed since the page was read (version {read}, now {now}): nothing was written. "
            "Look at it again before you act.")


def _again(console: Console, request: Request, signed: SignedIn, session: Session, action: str, status: int,
           message: str, *, stale: bool = False) -> Response:
    """The confirmation page again, saying why nothing was written (with the session as it is now)."""
    return console.page(request, "confirm.html", signed, status, session=session, action=action,
                        label=LABELS.get(action, action), version=session.version, message=message, stale=stale)
