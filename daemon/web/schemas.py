"""Request and response models, so /openapi.json describes every body precisely (schemathesis checks it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.base import Label

MAX_BATCH = 100  # tickets per /classify/batch request; more is a 422 (the schema's maxItems)
VERSION_PATTERN = r"^v[0-9]+$"  # model and dataset versions; also keeps path segments out of the store


class _Strict(BaseModel):
    """Unknown keys are a 422, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """One error: a stable machine-readable code, a human message, and located details where there are any."""

    code: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every non-2xx answer of the API has this shape."""

    error: ErrorBody


class TicketData(_Strict):
    """A ticket as one text (HTML allowed)."""

    ticket_data: str = Field(min_length=1, description="the ticket text; HTML is reduced to text")


class SubjectBody(_Strict):
    """A ticket as subject and body; the subject is kept ahead of the body when text is truncated."""

    subject: str | None = Field(default=None, description="the ticket subject")
    body: str = Field(min_length=1, description="the ticket body; HTML is reduced to text")


ClassifyRequest = TicketData | SubjectBody


class HeadPrediction(BaseModel):
    """One label's top class and its calibrated confidence."""

    label: str
    confidence: float = Field(ge=0, le=1)


class Reason(BaseModel):
    """Why a label would be routed or left, under the model's own per-class thresholds (no connector's rules)."""

    predicted: str
    confidence: float = Field(ge=0, le=1)
    threshold: float | None = Field(description="the threshold that applies; null: the class is never routed")
    basis: Literal["target", "fallback"] = Field(
        description="target: the class's threshold for the model's precision target; fallback: the model has no "
        "per-class thresholds, the default fixed threshold applies"
    )
    target_precision: float
    routed: bool = Field(description="whether the daemon would route this label with a target_precision rule")
    words: list[str] = Field(description="the ticket's words that pushed the TF-IDF part most toward the class")
    text: str = Field(description="the same in one sentence, as in the daemon's internal note")


class ClassifyResponse(BaseModel):
    """The queue prediction at top level (the on-prem API's shape), the priority, and every head."""

    predicted_label: str
    confidence: float = Field(ge=0, le=1)
    priority: HeadPrediction | None = Field(description="null when the model has no priority head")
    labels: dict[str, HeadPrediction] = Field(description="every head of the model, by label name")
    reasons: dict[str, Reason] = Field(description="per routable label (queue, priority): the decision and why")
    model_version: str | None


class BatchRequest(_Strict):
    """Up to MAX_BATCH tickets, each as in /classify."""

    tickets: list[ClassifyRequest] = Field(min_length=1, max_length=MAX_BATCH)


class BatchResponse(BaseModel):
    """Predictions in request order, all from one model version."""

    predictions: list[ClassifyResponse]
    model_version: str | None


class DatasetResponse(BaseModel):
    """A stored dataset version: row count and per-label class counts."""

    version: str
    rows: int
    labels: dict[str, dict[str, int]]
    sha256: str
    created_at: str


class TrainRequest(_Strict):
    """All optional: the newest dataset, the configured labels and epochs, and the daemon's promotion rule."""

    dataset_version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    labels: list[Label] | None = Field(default=None, min_length=1, max_length=2)
    epochs: int | None = Field(default=None, ge=1, le=100)
    promote: Literal["rule", "always"] = "rule"


JobState = Literal["queued", "running", "succeeded", "failed"]


class JobAccepted(BaseModel):
    """A training job was queued; poll GET /api/v1/train/{job_id}."""

    job_id: str
    state: JobState
    dataset_version: str


class Progress(BaseModel):
    """Where the job is and how long it has been at it."""

    phase: str
    elapsed_s: float


class JobStatus(BaseModel):
    """A training job: `state` says whether it ran; `outcome` whether the new model was promoted."""

    job_id: str
    state: JobState
    progress: Progress
    dataset_version: str
    promote: Literal["rule", "always"]
    outcome: Literal["promoted", "rejected", "skipped", "failed"] | None
    version: str | None = Field(description="the promoted version; null unless promoted")
    champion: str | None = Field(description="the version that was current when the job started")
    metrics: dict[str, dict[str, dict[str, Any]]] = Field(
        description="holdout scores per label: {'challenger': {...}, 'champion': {...}}"
    )
    reason: str | None


class TrainingNow(BaseModel):
    """Whichever training runs now (the daemon's scheduled retrain or an API job): one at a time."""

    running: bool
    started_by: Literal["schedule", "api"] | None = Field(description="who holds the one training slot")
    running_s: float | None
    cancelling: bool = Field(description="a cancel was asked for; its training process is being stopped")
    progress: dict[str, Any] | None = Field(
        default=None,
        description="the training process's latest event, e.g. fine-tuning step, steps, elapsed_s, eta_s",
    )


class ModelVersion(BaseModel):
    """A stored model version with a summary of its metadata."""

    version: str
    current: bool
    created_at: str | None
    labels: dict[str, list[str]]
    validation: dict[str, dict[str, float]]
    training_rows: int | None


class CurrentModel(ModelVersion):
    """The store's current version, and the version this process actually serves."""

    served_version: str | None


class ModelList(BaseModel):
    """Every stored version, oldest first."""

    current: str | None
    versions: list[ModelVersion]


class PromoteResponse(BaseModel):
    """The version now current (and served), and the one before it."""

    current: str
    previous: str | None
    served_version: str | None


class Health(BaseModel):
    """The process answers, and says which ticketd it runs (what a rolling upgrade waits for)."""

    status: Literal["ok"]
    version: str = Field(description="this ticketd's version (pyproject.toml's, as installed)")


class Readiness(BaseModel):
    """Whether to route traffic here; `details` names what is not ready."""

    ready: bool
    details: dict[str, Any]


class PushAccepted(BaseModel):
    """A push taken: its ticket queued for routing now, already waiting (a retry of the same push), or handed
    to the replica that owns the connector (several replicas)."""

    result: Literal["accepted", "duplicate", "relayed"]
    queued: int = Field(description="ticket ids newly queued by this push")
