"""Liveness, readiness and Prometheus metrics; no token, so probes and scrapers need no secret."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from daemon.api.auth import services
from daemon.api.errors import responses
from daemon.api.schemas import Health, Readiness
from daemon.api.services import Services

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses=responses(500))
async def healthz() -> Health:
    """The process is alive and its event loop answers."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready; `details` says why"}, **responses(500)},
)
async def readyz(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    """Ready when a model is loaded and (under `ticketd run`) every connector is; `details` says why not."""
    ready, details = svc.ready()  # cheap attribute reads; on the loop, like the scheduler that sets them
    body = Readiness(ready=ready, details=details).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text exposition"},
        **responses(500),
    },
)
async def metrics(svc: Annotated[Services, Depends(services)]) -> Response:
    """Prometheus text exposition of this process's metrics."""
    data, content_type = svc.metrics.render()
    return Response(content=data, media_type=content_type)
