"""Pushes from the helpdesks: a Zammad trigger's webhook, a Znuny invoker. The helpdesk's signature is the auth.

No API token: each connector verifies its own pushes (`Connector.read_push`: Zammad's HMAC-SHA1
`X-Hub-Signature`, Znuny's shared token), so a forged or unsigned request gets 401 and is counted. An
accepted push answers 202 at once; routing runs in the daemon (daemon.runtime.intake), so the helpdesk never waits
for the model.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from daemon.web.auth import client_address, services, too_many_failures
from daemon.web.errors import ApiError, responses
from daemon.web.schemas import PushAccepted
from daemon.web.services import Services

router = APIRouter(prefix="/api/v1", tags=["push"])

# The push results that are refused, with their status and error code; every other result is a 202.
_REFUSED: dict[str, tuple[int, str]] = {
    "unknown": (404, "not_found"),
    "rejected": (401, "push_rejected"),
    "invalid": (400, "invalid_push"),
    "throttled": (429, "push_queue_full"),
}


@router.post(
    "/hooks/{connector}",
    status_code=202,
    response_model=PushAccepted,
    responses=responses(400, 401, 404, 413, 422, 429, 500),
)
async def hook(
    request: Request,
    connector: Annotated[str, Path(max_length=200)],
    svc: Annotated[Services, Depends(services)],
) -> PushAccepted:
    """Queue the ticket a push names; it is routed within a second, once, like a polled one."""
    if svc.hooks is None:
        raise ApiError(404, "not_found", "pushes are taken by `ticketd run`, not `ticketd serve`")
    client = client_address(request)
    wait = svc.throttle.refuse(client, "push")
    if wait is not None:  # a client guessing a push token or webhook secret: nothing is read or checked
        raise too_many_failures(wait)
    body = await request.body()
    reply = svc.hooks(connector, request.headers, body)
    refused = _REFUSED.get(reply.result)
    if refused is not None:
        status, code = refused
        if status == 401:
            svc.throttle.failed(client, "push", f"{connector}: {reply.message}")
        raise ApiError(status, code, reply.message, headers={"Retry-After": "30"} if status == 429 else None)
    result = reply.result if reply.result in ("accepted", "relayed") else "duplicate"
    return PushAccepted(result=result, queued=reply.queued)
