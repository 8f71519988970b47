"""Bearer tokens from `api.tokens`; with none configured, protected endpoints are closed, never open."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from daemon.web.errors import ApiError
from daemon.web.services import Services

# auto_error=False: a missing header is our 401 envelope, not FastAPI's bare 403.
bearer = HTTPBearer(auto_error=False, description="one of the tokens in the daemon's `api.tokens`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ticketd"'}


def services(request: Request) -> Services:
    """The app's Services (set by create_app)."""
    found: Services = request.app.state.services
    return found


def token_matches(given: str, tokens: list[str]) -> bool:
    """Constant-time comparison against every configured token (no early exit that could leak which)."""
    supplied = given.encode()
    results = [hmac.compare_digest(supplied, token.encode()) for token in tokens]
    return any(results)


def role_of(svc: Services, given: str) -> str | None:
    """ "admin" for one of `api.tokens`, "read-only" for one of `api.read_tokens`, else None (constant time)."""
    admin = token_matches(given, [t.get_secret_value() for t in svc.api.tokens])
    reader = token_matches(given, [t.get_secret_value() for t in svc.api.read_tokens])
    return "admin" if admin else "read-only" if reader else None


def client_address(request: Request) -> str:
    """The client's address (the real one behind a trusted proxy, see daemon/web/edge.py)."""
    return request.client.host if request.client is not None else "unknown"


def too_many_failures(wait: int) -> ApiError:
    """429 for a client that used up its failed credentials (daemon/web/throttle.py)."""
    return ApiError(
        429,
        "too_many_failures",
        f"too many failed credentials from this address; try again in {wait} s (api.failed_auth_per_minute)",
        headers={"Retry-After": str(wait)},
    )


def role_checked(svc: Services, request: Request, credentials: HTTPAuthorizationCredentials) -> str:
    """The role of presented credentials, throttled per client: 429 while over the limit, 401 when wrong."""
    client = client_address(request)
    wait = svc.throttle.refuse(client, "bearer")
    if wait is not None:
        raise too_many_failures(wait)
    role = role_of(svc, credentials.credentials)
    if role is None:
        svc.throttle.failed(client, "bearer", "the bearer token is not valid")
        raise ApiError(401, "invalid_token", "the bearer token is not valid", headers=_CHALLENGE)
    return role


def _check(
    svc: Services, request: Request, credentials: HTTPAuthorizationCredentials | None, *, read: bool = False
) -> None:
    if not svc.api.tokens and not (read and svc.api.read_tokens):
        raise ApiError(
            403,
            "auth_not_configured",
            "no API tokens are configured (api.tokens or api.tokens_file), so this endpoint is closed",
        )
    if credentials is None:
        raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)", headers=_CHALLENGE)
    role = role_checked(svc, request, credentials)
    if role != "admin" and not read:
        raise ApiError(
            403, "read_only_token", "this token may only read (api.read_tokens); this needs one of api.tokens"
        )


def require_token(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Training, model changes and uploads: an admin token (`api.tokens`)."""
    _check(svc, request, credentials)


def read_access(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Reading model versions: an admin or a read-only token."""
    _check(svc, request, credentials, read=True)


def classify_access(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Classification: any token unless `api.public_classify` opens it to anyone who can reach the port."""
    if not svc.api.public_classify:
        _check(svc, request, credentials, read=True)
