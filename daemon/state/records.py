"""The state's records as plain dataclasses: what callers pass in and get back (no SQLAlchemy here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

MODES = frozenset({"live", "shadow"})
LEDGER_STATES = frozenset({"pending", "applied", "skipped", "shadow", "failed"})


@dataclass(frozen=True)
class LedgerEntry:
    """One routing decision per (connector, ticket_id): the row that makes routing exactly-once."""

    connector: str
    ticket_id: str
    model_version: str | None
    predictions: dict[str, dict[str, Any]]
    decision: dict[str, Any]
    mode: str
    state: str
    detail: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)  # a retrain holds the whole store: no per-row __dict__
class TrainingRow:
    """A closed ticket with the labels the helpdesk's people gave it: harvested, or a row of an uploaded dataset.

    The one training-row record: the training store keeps it, and retrain (daemon/training/champion.py)
    reads it, from the store or from an uploaded dataset (daemon/training/jobs.py, connector "upload").
    """

    connector: str
    ticket_id: str
    text: str
    queue: str
    priority: str | None
    language: str | None
    closed_at: datetime
    harvested_at: datetime
