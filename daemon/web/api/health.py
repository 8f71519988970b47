"""Liveness, readiness and Prometheus metrics; no token needed, so probes and scrapers hold no secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from daemon import __version__
from daemon.web.auth import bearer, role_checked, services
from daemon.web.errors import responses
from daemon.web.schemas import Health, Readiness
from daemon.web.services import Services

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses=responses(500))
async def healthz() -> Health:
    """The process is alive and its event loop answers; with its version, to tell which ticketd answered."""
    return Health(status="ok", version=__version__)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready; `details` says why"}, **responses(401, 429, 500)},
)
async def readyz(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> JSONResponse:
    """Ready when a model is loaded and (under `ticketd run`) every connector is; with a token, `details` says why not.

    Without a token (a probe) the status code and a summary only: the details name paths, user names and
    the helpdesks' own error texts, which are not for whoever can reach the port.
    """
    ready, details = svc.ready()  # cheap attribute reads; on the loop, like the scheduler that sets them
    if credentials is None:
        details = _summary(details)
    else:
        role_checked(svc, request, credentials)  # any valid token (read-only too); 401/429 otherwise
    body = Readiness(ready=ready, details=details).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if ready else 503)


def _summary(details: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see: whether a model is loaded and how many connectors are ready; no names, no texts."""
    model = details.get("model") or {}
    connectors = details.get("connectors") or {}
    summary: dict[str, Any] = {"model": {"loaded": bool(model.get("loaded"))}}
    if connectors:
        ready = sum(1 for c in connectors.values() if isinstance(c, dict) and c.get("ready"))
        summary["connectors"] = {"ready": ready, "total": len(connectors)}
    summary["more"] = "send a bearer token (api.tokens or api.read_tokens) for the details"
    return summary


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
