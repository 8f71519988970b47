"""Classification: one ticket or a batch, with the queue at top level and the priority beside it."""

from __future__ import annotations

import time
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request

from connectors.base import WRITABLE
from daemon.errors import ModelError
from daemon.ml.serving import LoadedModel
from daemon.ml.text import compose
from daemon.ml.thresholds import Thresholds
from daemon.pipeline.routing import LabelRule, decide, explain
from daemon.web.auth import classify_access, services
from daemon.web.errors import ApiError, api_error, responses
from daemon.web.schemas import (
    MAX_BATCH,
    BatchRequest,
    BatchResponse,
    ClassifyRequest,
    ClassifyResponse,
    SubjectBody,
)
from daemon.web.services import Services


def json_content(request: Request) -> None:
    """A body declared as something other than JSON is a 415 naming its type, not a 422 about the body's shape.

    No Content-Type at all is read as JSON (as FastAPI does); `application/json` and `*/*+json` are JSON.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"unsupported content type {media!r}; send the ticket as application/json",
        )


router = APIRouter(prefix="/api/v1", tags=["classify"], dependencies=[Depends(classify_access), Depends(json_content)])
_ERRORS = responses(401, 403, 413, 415, 422, 500, 503)


def _text(ticket: ClassifyRequest) -> str:
    if isinstance(ticket, SubjectBody):
        return compose(ticket.subject, ticket.body)
    return compose(None, ticket.ticket_data)


def _model(svc: Services) -> LoadedModel:
    try:
        return svc.model.get()
    except ModelError as exc:
        raise api_error(
            exc, "no model is loaded yet: upload data and POST /api/v1/train, or run `ticketd bootstrap`"
        ) from None


def _answer(prediction: dict[str, dict[str, Any]], model: LoadedModel) -> ClassifyResponse:
    heads = {name: {"label": str(p["label"]), "confidence": float(p["confidence"])} for name, p in prediction.items()}
    top = heads.get("queue") or next(iter(heads.values()))
    return ClassifyResponse.model_validate(
        {
            "predicted_label": top["label"],
            "confidence": top["confidence"],
            "priority": heads.get("priority"),
            "labels": heads,
            "reasons": _reasons(prediction, model),
            "model_version": model.version,
        }
    )


def _reasons(prediction: dict[str, dict[str, Any]], model: LoadedModel) -> dict[str, dict[str, Any]]:
    """decide() with a target_precision rule at the model's own training target, per routable label."""
    rules: dict[str, LabelRule] = {
        label: LabelRule(target_precision=model.trained_target(label)) for label in WRITABLE if label in prediction
    }
    fitted: dict[str, Thresholds | None] = {
        label: model.thresholds(label, rule.policy(model.classes(label))) for label, rule in rules.items()
    }
    decision = decide(prediction, rules, {}, fitted)
    out: dict[str, dict[str, Any]] = {}
    for label, rule in rules.items():
        words = list(prediction[label].get("words", []))
        out[label] = {
            "predicted": str(prediction[label]["label"]),
            "confidence": float(prediction[label]["confidence"]),
            **decision.basis[label],
            "target_precision": rule.target_precision,
            "routed": decision.routed[label],
            "words": words,
            "text": explain(label, prediction[label], decision, rule, words),
        }
    return out


def _classify(svc: Services, model: LoadedModel, tickets: list[ClassifyRequest]) -> list[ClassifyResponse]:
    """Blocking (HTML to text, onnxruntime, a first threshold fit): runs in a worker thread so the loop goes on."""
    texts = [_text(ticket) for ticket in tickets]
    started = time.perf_counter()
    predictions = model.classifier.predict_texts(texts, explain=True)
    each = (time.perf_counter() - started) / max(len(texts), 1)
    for prediction in predictions:
        svc.metrics.classified(each, prediction)
    return [_answer(p, model) for p in predictions]


@router.post("/classify", response_model=ClassifyResponse, responses=_ERRORS)
async def classify(ticket: ClassifyRequest, svc: Annotated[Services, Depends(services)]) -> ClassifyResponse:
    """Predict the queue and priority of one ticket (`ticket_data`, or `subject` and `body`)."""
    model = _model(svc)
    (answer,) = await anyio.to_thread.run_sync(_classify, svc, model, [ticket])
    return answer


@router.post(
    "/classify/batch",
    response_model=BatchResponse,
    responses=_ERRORS,
    description=f"Classify up to {MAX_BATCH} tickets with one model version; more is a 422.",
)
async def classify_batch(body: BatchRequest, svc: Annotated[Services, Depends(services)]) -> BatchResponse:
    """Classify several tickets at once."""
    model = _model(svc)
    answers = await anyio.to_thread.run_sync(_classify, svc, model, body.tickets)
    return BatchResponse(predictions=answers, model_version=model.version)
