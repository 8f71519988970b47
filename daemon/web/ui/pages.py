"""The dashboard's pages under /ui: login, Overview, Quality, Decisions, Models (promote, roll back), Thresholds.

Pages are rendered on the server (Jinja2); the only script is ours plus the vendored uPlot, both served
from /ui/static, and the Content-Security-Policy allows nothing else, so the browser asks nothing
outside this server. Without a session (and without `api.public_dashboard`) every page leads to the login.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from daemon import __version__
from daemon.errors import StateError, answer
from daemon.logging import get_logger
from daemon.ml import serving
from daemon.ml.serving import LoadedModel
from daemon.ml.thresholds import DEFAULT_TARGET, Evidence
from daemon.web.auth import client_address, services
from daemon.web.errors import ApiError
from daemon.web.schemas import VERSION_PATTERN
from daemon.web.services import Services
from daemon.web.ui import data
from daemon.web.ui.session import COOKIE, MAX_AGE_S, Viewer, csrf_ok, issue, role_for, same_site, viewer

log = get_logger(__name__)
HERE = Path(__file__).resolve().parent
PAGES: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("quality", "Quality"),
    ("decisions", "Decisions"),
    ("models", "Models"),
    ("advisor", "Threshold advisor"),
)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The pages' own policy; the rest of the protective headers every answer gets (daemon/web/headers.py).
_HEADERS = {"Content-Security-Policy": CSP}


def _percent(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value) * 100:.{digits}f}%"


def _number(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
_env.filters["pct"] = _percent
_env.filters["num"] = _number
_env.filters["ticket"] = data.ticket_name  # every page names a ticket through this one rule
templates = Jinja2Templates(env=_env)
router = APIRouter(prefix="/ui", include_in_schema=False)


class _Login(Exception):
    """No session: the page answers with the login instead."""


def _who(request: Request, svc: Annotated[Services, Depends(services)]) -> Viewer:
    """Sync on purpose: FastAPI runs it in its thread pool, so the session's database read never blocks the loop."""
    found = viewer(svc.api, request, svc.sessions)
    if found is None:
        raise _Login()
    return found


Who = Annotated[Viewer, Depends(_who)]
Svc = Annotated[Services, Depends(services)]


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and the login redirect on the API's app."""
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.include_router(router)

    @app.exception_handler(_Login)
    async def _to_login(request: Request, _: _Login) -> Response:
        return RedirectResponse(f"/ui/login?next={request.url.path}", status_code=303, headers=_HEADERS)


def _page(request: Request, name: str, who: Viewer | None, status: int = 200, **context: Any) -> HTMLResponse:
    context |= {"who": who, "pages": PAGES, "page": name, "version": __version__}
    response = templates.TemplateResponse(request, f"{name}.html", context, status_code=status)
    response.headers.update(_HEADERS)
    return response


def _refused(request: Request, who: Viewer | None, message: str, status: int = 403) -> HTMLResponse:
    return _page(request, "message", who, status, title="Not allowed", message=message)


def _models(svc: Services) -> list[dict[str, Any]]:
    """Every stored version, newest first, with what the pages show of its metadata."""
    infos = svc.store.list()
    return [data.model_summary(i.version, i.current, i.metadata) for i in reversed(infos)]


def _loaded(svc: Services) -> LoadedModel | None:
    """The served model, read once per page so a promotion meanwhile never mixes two versions on it."""
    return svc.model.get() if svc.model.loaded else None


def _evidence(model: LoadedModel | None) -> dict[str, Evidence]:
    """The model's validation evidence per head (empty without a model, or for one trained without it)."""
    heads = model.classifier.heads if model is not None else {}
    return {name: head.evidence for name, head in heads.items() if head.evidence is not None}


def _rules(svc: Services) -> data.Rules:
    """Every connector's routing rules (none under `ticketd serve`)."""
    return svc.dashboard.rules() if svc.dashboard is not None else {}


def _model_section(svc: Services) -> dict[str, Any]:
    """The model's evidence, the fits it is served with and what it was judged on, per head (the Quality page's)."""
    model = _loaded(svc)
    judged = data.judged_per_head(model.classifier.metadata) if model is not None else {}
    return {"evidence": _evidence(model), "served": data.served_fits(model, _rules(svc)), "judged": judged}


@router.get("", response_class=HTMLResponse)
async def home(_: Who) -> Response:
    return RedirectResponse("/ui/overview", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, svc: Svc, next: str = "/ui/overview") -> HTMLResponse:
    configured = bool(svc.api.tokens or svc.api.read_tokens)
    return _page(request, "login", None, next=_local(next), configured=configured, error=None)


def _local(path: str) -> str:
    """Only a page of this dashboard to go on to after login (never another site)."""
    return path if path.startswith("/ui/") and not path.startswith("//") and "\\" not in path else "/ui/overview"


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request, svc: Svc, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/ui/overview"
) -> Response:
    configured = bool(svc.api.tokens or svc.api.read_tokens)
    if not same_site(request):
        return _refused(request, None, "a login from another site is refused")
    client = client_address(request)
    wait = svc.throttle.refuse(client, "login")
    if wait is not None:  # guessing: the token is not even looked at until the client's minute is over
        message = f"Too many wrong tokens from this address; try again in {wait} s."
        page = _page(request, "login", None, 429, next=_local(next), configured=configured, error=message)
        page.headers["Retry-After"] = str(wait)
        return page
    role = role_for(svc.api, token.strip()) if token.strip() else None
    if role is None:
        svc.throttle.failed(client, "login", "dashboard login with a token that is not valid")
        return _page(
            request, "login", None, 401, next=_local(next), configured=configured, error="That token is not valid."
        )
    try:
        cookie = await anyio.to_thread.run_sync(issue, svc.api, token.strip(), role, svc.sessions)
    except StateError as exc:
        log.error("dashboard_login_not_stored", role=role, error=str(exc))
        return _page(
            request,
            "message",
            None,
            answer(exc).status,
            title="Not logged in",
            message="the session could not be stored; try again",
        )
    log.info("dashboard_login", role=role)
    response = RedirectResponse(_local(next), status_code=303, headers=_HEADERS)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=MAX_AGE_S,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, who: Who, svc: Svc, csrf: Annotated[str, Form()] = "") -> Response:
    if not same_site(request) or not csrf_ok(who, csrf):
        return _refused(request, who, "this logout did not come from the dashboard's own form")
    try:
        await anyio.to_thread.run_sync(svc.sessions.end, who.session)  # ends it for every copy of the cookie
    except StateError as exc:
        log.error("dashboard_logout_not_stored", error=str(exc))
        response: Response = _page(
            request,
            "message",
            None,
            answer(exc).status,
            title="Not logged out everywhere",
            message="this browser forgot the session, but the server could not end it (its state database did not "
            "answer): a copy of the cookie stays valid until it expires or its token is removed from the config",
        )
    else:
        log.info("dashboard_logout", role=who.role)
        response = RedirectResponse("/ui/login", status_code=303, headers=_HEADERS)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.get("/overview", response_class=HTMLResponse)
async def overview(request: Request, who: Who, svc: Svc) -> HTMLResponse:
    models = await anyio.to_thread.run_sync(_models, svc)
    page = await anyio.to_thread.run_sync(data.overview, svc.dashboard, models)
    served = svc.model.get().version if svc.model.loaded else None
    return _page(request, "overview", who, served=served, **page)


@router.get("/quality", response_class=HTMLResponse)
async def quality(request: Request, who: Who, svc: Svc) -> HTMLResponse:
    model = await anyio.to_thread.run_sync(_model_section, svc)  # a fit not yet cached is computed here
    source = svc.dashboard
    if source is None:
        page: dict[str, Any] = {
            "sections": [],
            "heads": data.model_curves(model["evidence"], model["served"], model["judged"]),
        }
    else:
        page = await anyio.to_thread.run_sync(data.quality, source, model["evidence"], model["served"], model["judged"])
    return _page(request, "quality", who, has_daemon=source is not None, **page)


@router.get("/decisions", response_class=HTMLResponse)
async def decisions(
    request: Request,
    who: Who,
    svc: Svc,
    connector: Annotated[str | None, Query(max_length=255)] = None,
    label: Annotated[str | None, Query(pattern="^(queue|priority)$")] = None,
    outcome: Annotated[str | None, Query(pattern="^(routed|left|applied|skipped|shadow|failed|pending)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HTMLResponse:
    source = svc.dashboard
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    if source is not None:
        connector = connector or None
        rows = await anyio.to_thread.run_sync(
            lambda: data.decisions(source, connector=connector, label=label, outcome=outcome, limit=limit)
        )
        names = [c["name"] for c in source.connectors()]
    filters = {"connector": connector, "label": label, "outcome": outcome}
    text_allowed = source is not None and source.include_ticket_text()
    return _page(
        request,
        "decisions",
        who,
        rows=rows,
        names=names,
        filters=filters,
        has_daemon=source is not None,
        text_allowed=text_allowed,
    )


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request, who: Who, svc: Svc) -> HTMLResponse:
    versions = await anyio.to_thread.run_sync(_models, svc)
    history = []
    if svc.dashboard is not None:
        history = await anyio.to_thread.run_sync(svc.dashboard.state.retrain_history)
    served = svc.model.get().version if svc.model.loaded else None
    done = request.query_params.get("done")
    has_daemon = svc.dashboard is not None
    return _page(
        request, "models", who, versions=versions, history=history, served=served, done=done, has_daemon=has_daemon
    )


@router.get("/models/{version}/promote", response_class=HTMLResponse)
async def confirm_promote(request: Request, who: Who, version: str) -> HTMLResponse:
    if not who.admin:
        return _refused(request, who, "promoting a model needs an admin token (api.tokens)")
    return _page(
        request,
        "confirm",
        who,
        action=f"/ui/models/{version}/promote",
        what=f"Promote {version}?",
        detail=f"{version} becomes the current model and is served at once.",
    )


@router.get("/models/rollback", response_class=HTMLResponse)
async def confirm_rollback(request: Request, who: Who) -> HTMLResponse:
    if not who.admin:
        return _refused(request, who, "rolling back needs an admin token (api.tokens)")
    return _page(
        request,
        "confirm",
        who,
        action="/ui/models/rollback",
        what="Roll back?",
        detail="The version promoted before the current one becomes current and is served at once.",
    )


async def _change(request: Request, who: Viewer, csrf: str, change: Any) -> Response:
    if not who.admin:
        return _refused(request, who, "changing the served model needs an admin token (api.tokens)")
    if not same_site(request) or not csrf_ok(who, csrf):
        return _refused(request, who, "this change did not come from the dashboard's own confirmation form")
    try:
        result = await change()
    except ApiError as exc:  # every model error, answered from the one table (Services.switch_model)
        return _page(request, "message", who, exc.status, title="Not done", message=exc.message)
    log.info("dashboard_model_changed", current=result["current"], previous=result["previous"])
    return RedirectResponse(f"/ui/models?done={result['current']}", status_code=303, headers=_HEADERS)


@router.post("/models/{version}/promote")
async def promote(request: Request, who: Who, svc: Svc, version: str, csrf: Annotated[str, Form()] = "") -> Response:
    if not re.fullmatch(VERSION_PATTERN, version):
        return _page(request, "message", who, 404, title="Not done", message=f"no stored version {version!r}")
    return await _change(request, who, csrf, lambda: svc.switch_model(serving.promote(svc.model, version)))


@router.post("/models/rollback")
async def rollback(request: Request, who: Who, svc: Svc, csrf: Annotated[str, Form()] = "") -> Response:
    return await _change(request, who, csrf, lambda: svc.switch_model(serving.rollback(svc.model)))


@router.get("/advisor", response_class=HTMLResponse)
async def advisor(
    request: Request,
    who: Who,
    svc: Svc,
    target: Annotated[float, Query(ge=0.5, le=0.999)] = DEFAULT_TARGET,
    connector: Annotated[str | None, Query(max_length=255)] = None,
) -> HTMLResponse:
    all_rules = _rules(svc)
    connector = connector or None  # the form's "none" option sends an empty value
    if connector is not None and connector not in all_rules:
        return _page(request, "message", who, 404, title="Not shown", message=f"no configured connector {connector!r}")
    rules = all_rules[connector] if connector is not None else None
    model = _loaded(svc)
    heads = await anyio.to_thread.run_sync(data.advisor, _evidence(model), target, rules)
    served = model.version if model is not None else None
    return _page(
        request, "advisor", who, heads=heads, target=target, served=served, connector=connector, names=list(all_rules)
    )
