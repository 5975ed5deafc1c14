"""The operations routes: ``/healthz`` (the process is up), ``/readyz`` (the database answers, and the service is
not stopping) and, when the app serves metrics, ``/metrics`` (the Prometheus text format). They are never
authenticated."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sessionflow.entrypoints.http.bodies import Health
from sessionflow.entrypoints.http.state import ManagerDep
from sessionflow.entrypoints.http.stopping import stopping_of
from sessionflow.errors import SessionflowError

__all__ = ["router"]


def router(*, metrics: bool) -> APIRouter:
    """Health and readiness, and ``/metrics`` when ``metrics`` (the app's ``state.metrics`` is then set)."""
    routes = APIRouter()

    @routes.get("/healthz", response_model=Health, tags=["operations"], operation_id="healthz",
                summary="The process is up")
    def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @routes.get("/readyz", response_model=Health, tags=["operations"], operation_id="readyz",
                summary="The database answers and the service is not stopping",
                responses={503: {"model": Health,
                                 "description": "Not ready (`unavailable`), or stopping (`stopping`)."}})
    def readyz(request: Request, manager: ManagerDep) -> Response:
        if stopping_of(request.app).begun:
            return JSONResponse({"status": "stopping"}, status_code=503)
        try:
            ready = manager.ping()
        except SessionflowError:
            ready = False
        return JSONResponse({"status": "ready" if ready else "unavailable"}, status_code=200 if ready else 503)

    if metrics:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        @routes.get("/metrics", tags=["operations"], operation_id="metrics", summary="Prometheus metrics",
                    response_class=Response,
                    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                     "description": "The Prometheus text exposition format."}})
        def metrics_endpoint(request: Request) -> Response:
            return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return routes
