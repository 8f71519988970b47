"""Training data upload and training jobs."""

from __future__ import annotations

import time
from pathlib import PurePath
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from starlette.datastructures import UploadFile

from daemon.errors import DatasetError, TrainingBusy
from daemon.logging import get_logger
from daemon.ml.dataset import Columns
from daemon.training.datasets import dataset_error_details
from daemon.training.jobs import JobConflict
from daemon.web.auth import require_token, services
from daemon.web.errors import ApiError, api_error, responses
from daemon.web.schemas import DatasetResponse, JobAccepted, JobStatus, TrainingNow, TrainRequest
from daemon.web.services import Services

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1", tags=["training"], dependencies=[Depends(require_token)])

# Media type -> the file suffix load_dataset reads it as.
_MEDIA = {
    "text/csv": ".csv",
    "application/csv": ".csv",
    "application/x-ndjson": ".jsonl",
    "application/jsonl": ".jsonl",
    "application/json-lines": ".jsonl",
    "application/json": ".json",
}
_SUFFIXES = {".csv", ".json", ".jsonl", ".ndjson"}
_TEXT_BODY = {"schema": {"type": "string"}}
_UPLOAD_BODY = {
    "required": True,
    "description": (
        "Labelled tickets with the columns of `ticketd train`: `text` (or `subject`/`body`), `queue` and/or "
        "`priority`, optional `id` and `language`. As a CSV body, JSON lines, or a multipart form with a `file`."
    ),
    "content": {
        "text/csv": _TEXT_BODY,
        "application/x-ndjson": _TEXT_BODY,
        "application/jsonl": _TEXT_BODY,
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}


async def _payload(request: Request) -> tuple[bytes, str]:
    """The uploaded bytes and the suffix that tells load_dataset their format."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=10)
        except ApiError:
            raise
        except Exception as exc:  # python-multipart's parse errors have no common base class
            raise ApiError(400, "bad_multipart", f"cannot parse the multipart body: {type(exc).__name__}") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(
                422,
                "validation_error",
                "the multipart form needs a `file` field holding the data",
                [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}],
            )
        suffix = PurePath(upload.filename or "").suffix.lower()
        if suffix not in _SUFFIXES:
            file_media = (upload.content_type or "").split(";")[0].strip().lower()
            suffix = _MEDIA.get(file_media, ".csv")
        raw = await upload.read()
        return raw, ".jsonl" if suffix == ".ndjson" else suffix
    if media not in _MEDIA:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"unsupported content type {media or '(none)'!r}; send text/csv, application/x-ndjson "
            "(JSON lines) or multipart/form-data with a `file` field",
        )
    return await request.body(), _MEDIA[media]


@router.post(
    "/train-data",
    status_code=201,
    response_model=DatasetResponse,
    responses=responses(400, 401, 403, 413, 415, 422, 500),
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def upload_train_data(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    column: Annotated[
        list[str],
        Query(description="column override KEY=COLUMN, e.g. queue=category (as `ticketd train --column`)"),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
) -> DatasetResponse:
    """Validate labelled tickets like `ticketd train` and store them as the next dataset version."""
    raw, suffix = await _payload(request)
    try:
        columns = Columns.parse(column)
        summary = await anyio.to_thread.run_sync(svc.datasets.add, raw, suffix, columns)
    except DatasetError as exc:
        message, details = dataset_error_details(exc)
        raise api_error(exc, message, details) from None
    log.info("api_dataset_stored", version=summary["version"], rows=summary["rows"])
    return DatasetResponse.model_validate(summary)


@router.post(
    "/train",
    status_code=202,
    response_model=JobAccepted,
    responses=responses(401, 403, 404, 409, 413, 422, 500),
)
async def start_training(
    svc: Annotated[Services, Depends(services)],
    response: Response,
    body: Annotated[TrainRequest | None, Body()] = None,
) -> JobAccepted:
    """Start training on a dataset version (default: the newest) in a separate process; one job at a time."""
    request = body or TrainRequest()
    version = request.dataset_version or svc.datasets.latest()
    if version is None:
        raise ApiError(409, "no_dataset", "no training data uploaded yet: POST /api/v1/train-data first")
    if svc.datasets.summary(version) is None:
        known = ", ".join(svc.datasets.versions()) or "none"
        raise ApiError(404, "unknown_dataset", f"no dataset version {version!r} (known: {known})")
    try:
        job = svc.jobs.start(
            version,
            promote=request.promote,
            labels=tuple(dict.fromkeys(request.labels)) if request.labels else None,
            epochs=request.epochs,
        )
    except JobConflict as exc:
        raise ApiError(
            409,
            "training_in_progress",
            f"training job {exc.job.id} is still {exc.job.state}; one job runs at a time",
            [{"job_id": exc.job.id, "state": exc.job.state}],
        ) from None
    except TrainingBusy as exc:
        raise api_error(exc, f"busy: {exc.holder}; one training runs at a time") from None
    response.headers["Location"] = f"/api/v1/train/{job.id}"
    return JobAccepted(job_id=job.id, state=job.state, dataset_version=version)


@router.get("/train/{job_id}", response_model=JobStatus, responses=responses(401, 403, 404, 422, 500))
async def training_status(job_id: str, svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """State, progress, holdout metrics and the promoted version of a training job."""
    found = await anyio.to_thread.run_sync(svc.jobs.lookup, job_id)
    if found is None:
        kept = "the newest 50 are kept" if svc.jobs.shared is not None else "jobs are kept in memory until a restart"
        raise ApiError(404, "unknown_job", f"no training job {job_id!r} ({kept})")
    return found


def _now(svc: Services) -> TrainingNow:
    holder, cancelling, progress = svc.retraining.status()  # several replicas: wherever it runs
    if holder is None:
        return TrainingNow(running=False, started_by=None, running_s=None, cancelling=False)
    running = round(time.monotonic() - holder.since, 1)
    return TrainingNow(
        running=True,
        started_by=holder.who,
        running_s=running,
        cancelling=cancelling,
        progress=progress,
    )


@router.get("/training", response_model=TrainingNow, responses=responses(401, 403, 500))
async def training_now(svc: Annotated[Services, Depends(services)]) -> TrainingNow:
    """Whether a training runs now, who started it (schedule or API), for how long and how far it got."""
    return await anyio.to_thread.run_sync(_now, svc)


@router.post("/training/cancel", status_code=202, response_model=TrainingNow, responses=responses(401, 403, 409, 500))
async def cancel_training(svc: Annotated[Services, Depends(services)]) -> TrainingNow:
    """Stop the running training, scheduled or not: its process is killed and the current model keeps serving."""
    holder = await anyio.to_thread.run_sync(svc.retraining.running)
    if holder is None or not await anyio.to_thread.run_sync(svc.retraining.stop):
        raise ApiError(409, "no_training", "no training is running")
    log.info("api_training_cancelled", started_by=holder.who, replica=holder.replica)
    return await anyio.to_thread.run_sync(_now, svc)
