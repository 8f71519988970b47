"""A dashboard over real parts: a model store of the session's tiny model, a SQLite state with decisions,
closed tickets and retrain runs, and the connectors' health as `ticketd run` reports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from daemon.config import ApiSection
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder
from daemon.ml.store import ModelStore
from daemon.pipeline.routing import LabelRule
from daemon.state import LedgerEntry, State, TrainingRow
from daemon.training.champion import RetrainPolicy
from daemon.web import Services
from daemon.web.services import DashboardSource
from tests.support.web import linked_store

ADMIN = "admin-token-0123456789-abcdef"
READER = "reader-token-0123456789-abcdef"
NOW = datetime.now(UTC)


@dataclass
class World:
    services: Services
    state: State
    rules: dict[str, dict[str, LabelRule]]
    text_allowed: list[bool] = field(default_factory=lambda: [False])

    @property
    def store(self) -> ModelStore:
        return self.services.store


def _decided(tid: str, queue: str, confidence: float, routed: bool, at: datetime, words: list[str]) -> LedgerEntry:
    basis = {"threshold": 0.42, "basis": "target"}
    return LedgerEntry(
        connector="helpdesk",
        ticket_id=tid,
        model_version="v2",
        predictions={
            "queue": {"label": queue, "confidence": confidence},
            "priority": {"label": "3", "confidence": 0.7},
        },
        decision={
            "queue": queue if routed else None,
            "priority": "3 normal",
            "note": None,
            "expected_queue": "Raw",
            "reasons": {"queue": "confidence ok" if routed else "confidence below: left as is", "priority": "ok"},
            "thresholds": {"queue": basis, "priority": {"threshold": 0.6, "basis": "fixed"}},
            "routed": {"queue": routed, "priority": True},
            "words": {"queue": words, "priority": []},
        },
        mode="live",
        state="applied",
        detail=None,
        created_at=at,
        updated_at=at,
    )


def populate(state: State, classes: list[str]) -> None:
    """Twelve weeks of decisions; some closed where the model said, some corrected by the agents."""
    entries, rows = [], []
    for i in range(60):
        at = NOW - timedelta(days=84 - i * 1.4)
        predicted = classes[i % len(classes)]
        routed = i % 4 != 0
        final = predicted if i % 5 else classes[(i + 1) % len(classes)]
        entries.append(_decided(str(1000 + i), predicted, 0.5 + (i % 5) / 10, routed, at, ["invoice", "refund"]))
        if i < 50:  # the newest ten are still open
            rows.append(
                TrainingRow("helpdesk", str(1000 + i), "text", final, "3 normal", "en", at + timedelta(hours=5), at)
            )
    for e in entries:
        state.ledger_begin(e)
    state.training_add(rows)
    state.retrain_record(
        NOW - timedelta(days=2),
        NOW - timedelta(days=2) + timedelta(minutes=20),
        "promoted",
        {
            "outcome": "promoted",
            "version": "v2",
            "champion": "v1",
            "reason": "the challenger is not worse on the newest tickets",
            "champion_metrics": {"queue": {"macro_f1": 0.41, "accuracy": 0.5, "n": 40}},
            "challenger_metrics": {"queue": {"macro_f1": 0.44, "accuracy": 0.52, "n": 40}},
        },
    )


def make_world(tmp_path: Path, model: Path, *, populate_state: bool = True, **api: Any) -> World:
    api.setdefault("tokens", [SecretStr(ADMIN)])
    api.setdefault("read_tokens", [SecretStr(READER)])
    root = linked_store(tmp_path / "models", model, 2)
    holder = ModelHolder(root, threads=1)
    holder.load()
    state = State.open(f"sqlite:///{tmp_path / 'state.db'}")
    classes = holder.get().labels["queue"]
    if populate_state:
        populate(state, classes)
    rules = {"helpdesk": {"queue": LabelRule(target_precision=0.9), "priority": LabelRule(threshold=0.6)}}
    text_allowed = [False]
    source = DashboardSource(
        state=state,
        connectors=lambda: [
            {
                "name": "helpdesk",
                "type": "znuny",
                "mode": "live",
                "state": "failing",
                "failure": "transient",
                "reason": "the helpdesk did not answer (timeout)",
                "last_success": "2026-12-04 08:00:00 UTC",
            }
        ],
        rules=lambda: rules,
        include_ticket_text=lambda: text_allowed[0],
        ticket_url=lambda connector, tid: f"http://127.0.0.1:9/znuny/index.pl?Action=AgentTicketZoom;TicketID={tid}",
    )
    services = Services(
        api=ApiSection(**api),
        model=holder,
        datasets_dir=tmp_path / "datasets",
        workdir=tmp_path / "work",
        metrics=Metrics(),
        policy=RetrainPolicy(),
        dashboard=source,
    )
    return World(services, state, rules, text_allowed)
