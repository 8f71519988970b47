"""Model versions: what is served, what is stored, promote and roll back (both hot-reload the served model)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path

from daemon.logging import get_logger
from daemon.ml import serving
from daemon.ml.store import VersionInfo
from daemon.web.auth import read_access, require_token, services
from daemon.web.errors import ApiError, responses
from daemon.web.schemas import VERSION_PATTERN, CurrentModel, ModelList, ModelVersion, PromoteResponse
from daemon.web.services import Services

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1", tags=["models"])
_READ = [Depends(read_access)]
_ADMIN = [Depends(require_token)]


def _summary(info: VersionInfo) -> dict[str, Any]:
    """The parts of metadata.json an integrator cares about (never training data paths)."""
    meta = info.metadata
    heads: dict[str, Any] = meta["heads"] if isinstance(meta.get("heads"), dict) else {}
    labels: dict[str, list[str]] = {}
    validation: dict[str, dict[str, float]] = {}
    for name, head in heads.items():
        if not isinstance(head, dict):
            continue
        labels[str(name)] = [str(c) for c in head.get("classes", [])]
        scores: dict[str, Any] = head["validation"] if isinstance(head.get("validation"), dict) else {}
        validation[str(name)] = {k: float(v) for k, v in scores.items() if isinstance(v, int | float)}
    data: dict[str, Any] = meta["data"] if isinstance(meta.get("data"), dict) else {}
    rows = data.get("rows")
    return {
        "version": info.version,
        "current": info.current,
        "created_at": str(meta["created_at"]) if meta.get("created_at") else None,
        "labels": labels,
        "validation": validation,
        "training_rows": rows if isinstance(rows, int) else None,
    }


def _served(svc: Services) -> str | None:
    return svc.model.get().version if svc.model.loaded else None


@router.get("/model", response_model=CurrentModel, responses=responses(401, 403, 404, 500), dependencies=_READ)
async def current_model(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """The store's current version with a metadata summary, and the version this process serves."""
    infos = await anyio.to_thread.run_sync(svc.store.list)
    current = next((i for i in infos if i.current), None)
    if current is None:
        raise ApiError(404, "no_model", "the model store has no current version yet")
    return {**_summary(current), "served_version": _served(svc)}


@router.get("/models", response_model=ModelList, responses=responses(401, 403, 500), dependencies=_READ)
async def list_models(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Every stored version, oldest first."""
    infos = await anyio.to_thread.run_sync(svc.store.list)
    return {"current": svc.store.current(), "versions": [ModelVersion.model_validate(_summary(i)) for i in infos]}


@router.post(
    "/models/{version}/promote",
    response_model=PromoteResponse,
    responses=responses(401, 403, 404, 422, 500),
    dependencies=_ADMIN,
)
async def promote(
    version: Annotated[str, Path(pattern=VERSION_PATTERN, description="a stored version such as v3")],
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    """Make a stored version current and serve it."""
    return await svc.switch_model(serving.promote(svc.model, version))


@router.post(
    "/models/rollback",
    response_model=PromoteResponse,
    responses=responses(401, 403, 409, 422, 500),
    dependencies=_ADMIN,
)
async def rollback(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Return to the version promoted before the current one, and serve it."""
    return await svc.switch_model(serving.rollback(svc.model))
