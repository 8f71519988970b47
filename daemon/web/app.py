"""The FastAPI application: routes, error envelope, body limit; OpenAPI at /openapi.json, docs at /docs.

The docs pages load Swagger UI and ReDoc from the API itself (fastapi-offline ships the assets), not from
a CDN: they work on a site with no internet access, and the browser asks nothing outside the network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from daemon import __version__
from daemon.logging import get_logger
from daemon.web import edge, errors
from daemon.web.api import classify, health, hooks, models, train
from daemon.web.limits import BodyLimitMiddleware
from daemon.web.services import Services

log = get_logger(__name__)

DESCRIPTION = """\
On-prem ticket triage: upload labelled tickets, train, classify.

**Auth**: `Authorization: Bearer <token>` with one of the daemon's `api.tokens`. Training, model and upload
endpoints always need one; classification too unless `api.public_classify: true`. With no tokens configured
those endpoints answer 403 `auth_not_configured`. `/healthz`, `/readyz` and `/metrics` are open.
`/api/v1/hooks/{connector}` takes no token: the helpdesk's own signature (Zammad) or shared token (Znuny) is checked.

**Errors** are `{"error": {"code", "message", "details"}}`: 401/403 auth, 404 unknown job/version/path,
409 conflicts (a training job running, nothing to roll back to, no data uploaded), 413 body over
`api.max_body_bytes`, 415 wrong content type, 422 invalid request (types, missing or unknown fields,
more than 100 tickets in a batch), 400 training data that fails validation (with line and column),
503 no model loaded. A 500 carries no internals; the daemon's log has them.
"""


def create_app(services: Services) -> FastAPI:
    """Build the API around `services`; the lifespan cancels a running training job when the server stops."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.note_model()
        try:
            yield
        finally:
            if services.jobs.active() is not None:
                log.info("api_stopping_training")
            await anyio.to_thread.run_sync(services.jobs.shutdown)

    app = FastAPIOffline(
        title="ticketd",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        static_url="/docs/static",
    )
    app.state.services = services
    errors.install(app)
    # Outermost last: forwarded headers (trusted proxies only) -> Host check -> protective headers -> body limit.
    api = services.api
    app.add_middleware(BodyLimitMiddleware, max_bytes=api.max_body_bytes)
    app.add_middleware(edge.SecurityHeaders)
    allowed = api.allowed_hosts if api.allowed_hosts is not None else edge.default_hosts(api.host)
    app.add_middleware(edge.HostCheck, allowed=allowed, metrics=services.metrics)
    if api.trusted_proxies:
        trusted = edge.networks(api.trusted_proxies)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=[str(net) for net in trusted])
        app.add_middleware(edge.ForwardedHost, trusted=trusted)
    for module in (train, classify, models, health, hooks):
        app.include_router(module.router)
    if services.api.dashboard:
        from daemon.web.ui import pages as dashboard

        dashboard.install(app)
    return app
