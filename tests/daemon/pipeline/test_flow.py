"""The ticket flow against the fake Znuny and a real SQLite ledger, with a keyword model (no ML here)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from structlog.testing import capture_logs

from connectors.base import TicketUpdate
from connectors.znuny import ZnunyConnector
from daemon.errors import ModelError
from daemon.pipeline.flow import Pipeline
from daemon.pipeline.report import build_report
from daemon.pipeline.routing import LabelRule
from daemon.state import LedgerEntry, State, TrainingRow
from tests.support.backends.znuny import PASSWORD, URL, config
from tests.support.fakes.znuny import FakeZnuny

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class KeywordModel:
    """Deterministic stand-in for the classifier: 'invoice' -> billing, 'urgent' -> high, else unsure."""

    version = "v-test"

    def thresholds(self, label: str, policy: Any) -> Any:
        return None  # trained before per-class thresholds: a target_precision rule falls back to `threshold`

    def classes(self, label: str) -> list[str]:
        return {"queue": ["billing", "hardware", "misc"], "priority": ["high", "normal"]}.get(label, [])

    def classify(self, text: str, *, subject: str | None = None) -> dict[str, dict[str, Any]]:
        words = f"{subject} {text}".lower()
        if "invoice" in words:
            queue = {"label": "billing", "confidence": 0.93}
        elif "printer" in words:
            queue = {"label": "hardware", "confidence": 0.81}
        else:
            queue = {"label": "misc", "confidence": 0.31}
        priority = {"label": "high" if "urgent" in words else "normal", "confidence": 0.75}
        # as the real classifier's reason: the ticket's own words behind each label
        queue["words"] = [w for w in ("invoice", "printer") if w in words]
        priority["words"] = ["urgent"] if "urgent" in words else []
        return {"queue": queue, "priority": priority}


FACTORIES: dict[str, Any] = {"entry_factory": LedgerEntry, "row_factory": TrainingRow}
RULES = {
    "queue": LabelRule(map={"billing": "Billing", "hardware": "Hardware", "misc": "Misc"}, threshold=0.6),
    "priority": LabelRule(map={"high": "4 high", "normal": "3 normal"}, threshold=0.5),
}


@dataclass
class World:
    fake: FakeZnuny
    state: State
    client: httpx.AsyncClient

    def pipeline(self, **kwargs: Any) -> Pipeline:
        connector = ZnunyConnector.from_config(config(), self.client)
        options: dict[str, Any] = {"entry_factory": LedgerEntry, "row_factory": TrainingRow}
        options.update(kwargs)
        rules = options.pop("rules", RULES)
        model = options.pop("model", None) or KeywordModel()
        return Pipeline("znuny-test", connector, self.state, lambda: model, rules, **options)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    fake = FakeZnuny(passwords={"agent1": PASSWORD})
    fake.agent_update(3, queue="Misc")  # the installation's seeded new ticket: out of the way
    state = State.open(f"sqlite:///{tmp_path / 'state.db'}")
    client = httpx.AsyncClient(transport=fake.transport(), base_url=URL)
    try:
        yield World(fake, state, client)
    finally:
        await client.aclose()
        state.close()


async def test_new_tickets_are_routed_once_with_a_note(world: World) -> None:
    a = world.fake.add_customer_ticket("Invoice 4711 wrong", "URGENT: the invoice is twice the amount.", queue="Raw")
    b = world.fake.add_customer_ticket("Printer jam", "The printer on floor 2 jams.", queue="Raw")
    pipe = world.pipeline()
    assert await pipe.poll() == 2
    assert (world.fake.queue_name(a), world.fake.priority_name(a)) == ("Billing", "4 high")
    assert (world.fake.queue_name(b), world.fake.priority_name(b)) == ("Hardware", "3 normal")
    entry = world.state.ledger_get("znuny-test", str(a))
    assert entry is not None and entry.state == "applied" and entry.model_version == "v-test"
    note = entry.decision["note"]
    assert note.startswith("ticketd v-test: queue set to 'Billing': confidence 0.93 >= 0.60, the configured threshold")
    assert "; words: invoice." in note and "priority set to '4 high'" in note and "words: urgent" in note
    assert entry.decision["routed"] == {"queue": True, "priority": True}
    assert "words" not in entry.decision and "words" not in entry.predictions["queue"]  # ticket text stays out
    assert "subject" not in entry.decision
    writes = world.fake.writes(a)
    assert await pipe.poll() == 0  # nothing new: no second write
    assert world.fake.writes(a) == writes


async def test_a_ticket_a_human_moved_is_not_touched(world: World) -> None:
    tid = world.fake.add_customer_ticket("Invoice question", "About the invoice.", queue="Raw")
    pipe = world.pipeline()
    connector_view = await pipe.connector.fetch_new(None, 10)  # fetched while still in Raw ...
    world.fake.agent_update(tid, queue="Misc")  # ... then an agent moves it first
    await pipe.refresh_taxonomy()
    await pipe.process(next(t for t in connector_view.tickets if t.id == str(tid)))
    assert world.fake.queue_name(tid) == "Misc"
    entry = world.state.ledger_get("znuny-test", str(tid))
    assert entry is not None and entry.state == "skipped" and "Misc" in (entry.detail or "")


async def test_below_threshold_follows_the_fallback(world: World) -> None:
    unsure = world.fake.add_customer_ticket("Hello", "Some question nobody can place.", queue="Raw")
    leave_rules = dict(RULES)
    await world.pipeline(rules=leave_rules).poll()
    assert world.fake.queue_name(unsure) == "Raw"  # queue left as is, priority still routed
    assert world.fake.priority_name(unsure) == "3 normal"

    other = world.fake.add_customer_ticket("Hi", "Another unplaceable one.", queue="Raw")
    fallback_rules = {**RULES, "queue": LabelRule(map=RULES["queue"].map, threshold=0.6, fallback="Postmaster")}
    await world.pipeline(rules=fallback_rules).poll()
    assert world.fake.queue_name(other) == "Postmaster"
    entry = world.state.ledger_get("znuny-test", str(other))
    assert entry is not None and "below 0.60" in entry.decision["reasons"]["queue"]


class ThresholdModel(KeywordModel):
    """KeywordModel trained with per-class thresholds: hardware routes from 0.8, misc never, billing from 0.95."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    def thresholds(self, label: str, policy: Any) -> Any:
        from daemon.ml.thresholds import Thresholds

        self.asked.append((label, policy))
        return Thresholds(policy.target, {"billing": 0.95, "hardware": 0.8, "misc": None}, 0.9, {})


async def test_a_precision_target_routes_by_the_models_threshold_for_the_class(world: World) -> None:
    printer = world.fake.add_customer_ticket("Printer jam", "The printer jams.", queue="Raw")  # hardware 0.81
    invoice = world.fake.add_customer_ticket("Invoice", "invoice", queue="Raw")  # billing 0.93
    other = world.fake.add_customer_ticket("Hello", "nobody knows", queue="Raw")  # misc 0.31
    rules = {"queue": LabelRule(map=RULES["queue"].map, target_precision=0.9, fallback="Postmaster")}
    model = ThresholdModel()
    await world.pipeline(rules=rules, model=model).poll()
    assert model.asked and {(label, policy.target) for label, policy in model.asked} == {("queue", 0.9)}
    assert world.fake.queue_name(printer) == "Hardware"  # 0.81 >= hardware's 0.8 (a fixed 0.9 would not route it)
    assert world.fake.queue_name(invoice) == "Postmaster"  # 0.93 < billing's 0.95
    assert world.fake.queue_name(other) == "Postmaster"  # misc cannot reach the target
    entry = world.state.ledger_get("znuny-test", str(printer))
    assert entry is not None and entry.decision["thresholds"]["queue"] == {"threshold": 0.8, "basis": "target"}
    left = world.state.ledger_get("znuny-test", str(other))
    assert left is not None and "'misc' cannot reach precision 0.90" in left.decision["reasons"]["queue"]


async def test_never_route_leaves_a_queue_to_people_at_any_confidence(world: World) -> None:
    tid = world.fake.add_customer_ticket("Invoice", "invoice", queue="Raw")  # billing 0.93
    rules = {"queue": LabelRule(map=RULES["queue"].map, threshold=0.5, never=frozenset({"Billing"}))}
    await world.pipeline(rules=rules).poll()
    assert world.fake.queue_name(tid) == "Raw"
    entry = world.state.ledger_get("znuny-test", str(tid))
    assert entry is not None and entry.decision["thresholds"]["queue"]["basis"] == "never_route"


async def test_label_that_maps_to_a_missing_queue_falls_back(world: World) -> None:
    tid = world.fake.add_customer_ticket("Invoice", "invoice again", queue="Raw")
    rules = {"queue": LabelRule(map={"billing": "Accounting"}, threshold=0.5, fallback="Misc")}
    await world.pipeline(rules=rules).poll()
    assert world.fake.queue_name(tid) == "Misc"


async def test_a_missing_target_is_warned_once_counted_every_time_and_recorded(world: World) -> None:
    from daemon.metrics import Metrics

    ids = [world.fake.add_customer_ticket("Invoice", f"invoice {i}", queue="Raw") for i in range(3)]
    rules = {"queue": LabelRule(map={"billing": "Accounting"}, threshold=0.5)}
    metrics = Metrics()
    with capture_logs() as logs:
        await world.pipeline(rules=rules, metrics=metrics).poll()
    warned = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["label"], e["model_label"], e["target"]) for e in warned] == [("queue", "billing", "Accounting")]
    assert metrics.missing_targets.labels("znuny-test", "queue", "Accounting")._value.get() == 3
    entries = [world.state.ledger_get("znuny-test", str(t)) for t in ids]
    assert all(e is not None and e.decision["missing"] == {"queue": "Accounting"} for e in entries)
    assert all(world.fake.queue_name(t) == "Raw" for t in ids)


async def test_shadow_mode_writes_nothing_and_reports_agreement(world: World) -> None:
    ids = [
        world.fake.add_customer_ticket("Invoice", "invoice wrong", queue="Raw"),
        world.fake.add_customer_ticket("Printer", "printer broken", queue="Raw"),
        world.fake.add_customer_ticket("Hm", "unclear", queue="Raw"),
    ]
    pipe = world.pipeline(mode="shadow")
    with capture_logs() as logs:
        assert await pipe.poll() == 3
    assert all(world.fake.writes(t) == 0 and world.fake.queue_name(t) == "Raw" for t in ids)
    assert {e.state for e in world.state.ledger_entries()} == {"shadow"}
    assert not [e for e in logs if "body" in e or "text" in e]
    # Agents decide: first two as predicted, the third into Billing.
    world.fake.agent_update(ids[0], queue="Billing", priority="3 normal", state="closed successful")
    world.fake.agent_update(ids[1], queue="Hardware", priority="3 normal", state="closed successful")
    world.fake.agent_update(ids[2], queue="Billing", priority="3 normal", state="closed successful")
    assert await pipe.harvest() >= 3  # ours, plus the installation's closed ticket 1
    report = {r.label: r for r in build_report(world.state, {"znuny-test": RULES})}
    queue = report["queue"]
    assert queue.compared == 3
    assert queue.agreement == pytest.approx(2 / 3)
    assert queue.auto_routed_share == pytest.approx(2 / 3)  # the unsure one is below the threshold
    assert queue.accuracy_at_threshold == 1.0
    assert report["priority"].agreement == 1.0


async def test_write_back_outage_leaves_the_ticket_pending_then_applies_it_once(world: World) -> None:
    tid = world.fake.add_customer_ticket("Invoice", "invoice wrong", queue="Raw")
    pipe = world.pipeline()
    await pipe.refresh_taxonomy()
    page = await pipe.connector.fetch_new(None, 10)
    world.fake.fail_next(1)  # the PATCH fails with a plain-text 500
    from connectors.errors import TransientError

    with pytest.raises(TransientError):
        await pipe.process(page.tickets[0])
    entry = world.state.ledger_get("znuny-test", str(tid))
    assert entry is not None and entry.state == "pending"
    assert world.state.cursor_get("znuny-test", "new") is None  # the cursor did not move past it
    # A restart (new pipeline, same ledger): pending entries are re-applied, the ticket is not classified twice.
    assert await world.pipeline().poll() == 0
    assert world.fake.queue_name(tid) == "Billing"
    assert world.fake.writes(tid) == 2  # one PATCH, once: the queue move and the note (priority already right)
    assert world.state.ledger_get("znuny-test", str(tid)).state == "applied"  # type: ignore[union-attr]


async def test_harvest_stores_final_labels_and_text(world: World) -> None:
    tid = world.fake.add_customer_ticket("Refund", "Please refund order 99.", queue="Raw")
    world.fake.agent_update(tid, queue="Billing", priority="2 low", state="closed successful")
    pipe = world.pipeline()
    assert await pipe.harvest() >= 1  # ours, plus the installation's closed ticket 1
    assert await pipe.harvest() == 0  # cursor moved; nothing new
    row = next(r for r in world.state.training_rows() if r.ticket_id == str(tid))
    assert (row.queue, row.priority) == ("Billing", "2 low")
    assert row.text.startswith("Refund. Please refund order 99")


async def test_harvest_stores_text_without_personal_data_and_logs_only_counts(world: World) -> None:
    from daemon.config import PrivacySection
    from daemon.pipeline.privacy import Scrubber

    body = "Refund to DE89 3704 0044 0532 0130 00, call +49 30 1234567 or mail anna.schmidt@example.de."
    tid = world.fake.add_customer_ticket("Refund", body, queue="Raw")
    world.fake.agent_update(tid, queue="Billing", priority="2 low", state="closed successful")
    pipe = world.pipeline(scrub=Scrubber.configured(PrivacySection()).scrub)
    with capture_logs() as logs:
        assert await pipe.harvest() >= 1
    row = next(r for r in world.state.training_rows() if r.ticket_id == str(tid))
    assert row.text == "Refund. Refund to [iban], call [phone] or mail [email]."
    harvested = [e for e in logs if e["event"] == "closed tickets harvested"]
    assert harvested[0]["scrubbed"] == {"iban": 1, "phone": 1, "email": 1}
    assert "anna.schmidt" not in repr(logs) and "1234567" not in repr(logs)


async def test_mailbox_harvest_ignores_what_ticketd_filed_itself(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """In a Maildir "closed" means "filed": ticketd's own filing is no training evidence, a human's is."""
    from tests.support.backends.maildir import make_harness

    h = await make_harness(tmp_path, request)
    state = State.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        tid = h.add_ticket("Invoice wrong", "The invoice is wrong.")
        connector = await h.connector()
        rules = {"queue": LabelRule(map={"billing": h.target}, threshold=0.5)}
        model = KeywordModel()
        pipe = Pipeline(
            "mail", connector, state, lambda: model, rules, entry_factory=LedgerEntry, row_factory=TrainingRow
        )
        assert await pipe.poll() == 1
        assert h.queue_of(tid) == h.target
        assert await pipe.harvest() == 0  # only ticketd's own move so far
        h.human_move(tid, h.other)  # an agent corrects it
        assert await pipe.harvest() == 1
        assert [(r.ticket_id, r.queue) for r in state.training_rows()] == [(tid, h.other)]
    finally:
        state.close()
        await h.aclose()


class RecordingModel(KeywordModel):
    """KeywordModel that notes which subjects it classified and can fail on one of them."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.started: dict[str, threading.Event] = {}
        self.fail_on = fail_on

    def classify(self, text: str, *, subject: str | None = None) -> dict[str, dict[str, Any]]:
        self.started.setdefault(str(subject), threading.Event()).set()
        if subject == self.fail_on:
            raise ModelError("the model broke on this ticket")
        return super().classify(text, subject=subject)


async def test_the_next_ticket_is_classified_while_the_current_one_is_written_back(world: World) -> None:
    first = world.fake.add_customer_ticket("Invoice one", "invoice", queue="Raw")
    second = world.fake.add_customer_ticket("Invoice two", "invoice", queue="Raw")
    model = RecordingModel()
    pipe = Pipeline("znuny-test", world.pipeline().connector, world.state, lambda: model, RULES, **FACTORIES)
    apply = pipe.connector.apply
    overlapped: list[bool] = []

    async def slow_apply(update: TicketUpdate) -> Any:
        if update.ticket_id == str(first):  # the write-back of the first waits until the second is being classified
            event = model.started.setdefault("Invoice two", threading.Event())
            overlapped.append(await anyio.to_thread.run_sync(event.wait, 10))
        return await apply(update)

    pipe.connector.apply = slow_apply  # type: ignore[method-assign]
    assert await pipe.poll() == 2
    assert overlapped == [True]
    assert [e.ticket_id for e in world.state.ledger_entries()] == [str(first), str(second)]
    assert {e.state for e in world.state.ledger_entries()} == {"applied"}


async def test_stopping_mid_page_drops_the_look_ahead_and_routes_it_once_later(world: World) -> None:
    ids = [world.fake.add_customer_ticket(f"Invoice {i}", "invoice", queue="Raw") for i in range(3)]
    stop = False
    pipe = world.pipeline(stopping=lambda: stop)
    apply = pipe.connector.apply

    async def apply_then_stop(update: TicketUpdate) -> Any:
        nonlocal stop
        stop = True  # SIGTERM arrives while the first ticket is written back (the second is classified meanwhile)
        return await apply(update)

    pipe.connector.apply = apply_then_stop  # type: ignore[method-assign]
    # Znuny allows two write-backs in flight: the second ticket's may have started before the stop (state calls
    # run in worker threads, so which one wins is timing). The look-ahead (the third) is never claimed.
    recorded = await pipe.poll()
    assert recorded in (1, 2)
    assert [e.ticket_id for e in world.state.ledger_entries()] == [str(t) for t in ids[:recorded]]
    assert world.fake.queue_name(ids[2]) == "Raw" and world.fake.writes(ids[2]) == 0
    assert world.state.cursor_get("znuny-test", "new") is None  # the page comes again
    assert await world.pipeline().poll() == 3 - recorded
    assert all(world.fake.queue_name(t) == "Billing" for t in ids)
    assert [world.fake.writes(t) for t in ids] == [2, 2, 2]  # one queue move + one note each, none twice


async def test_a_model_error_surfaces_at_its_own_ticket_and_leaves_the_rest_for_later(world: World) -> None:
    ok = world.fake.add_customer_ticket("Invoice fine", "invoice", queue="Raw")
    bad = world.fake.add_customer_ticket("Invoice boom", "invoice", queue="Raw")
    model = RecordingModel(fail_on="Invoice boom")
    pipe = Pipeline("znuny-test", world.pipeline().connector, world.state, lambda: model, RULES, **FACTORIES)
    with pytest.raises(ModelError, match="broke"):  # the error itself, not wrapped in a group
        await pipe.poll()
    assert [e.ticket_id for e in world.state.ledger_entries()] == [str(ok)]  # the one before it is done
    assert world.fake.writes(bad) == 0
    assert world.state.cursor_get("znuny-test", "new") is None
    assert await world.pipeline().poll() == 1  # a working model routes the rest, the first is not touched again
    assert world.fake.queue_name(bad) == "Billing"
    assert world.fake.writes(ok) == 2


def _gated_apply(pipe: Pipeline, first: int, second: int, timeout: float) -> list[bool]:
    """Make the first ticket's write-back wait (up to `timeout`) for the second's to start; returns what it saw."""
    apply = pipe.connector.apply
    second_started = threading.Event()
    saw: list[bool] = []

    async def gated(update: TicketUpdate) -> Any:
        if update.ticket_id == str(second):
            second_started.set()
        if update.ticket_id == str(first):
            saw.append(await anyio.to_thread.run_sync(second_started.wait, timeout))
        return await apply(update)

    pipe.connector.apply = gated  # type: ignore[method-assign]
    return saw


async def test_znuny_write_backs_of_two_tickets_overlap(world: World) -> None:
    first = world.fake.add_customer_ticket("Invoice one", "invoice", queue="Raw")
    second = world.fake.add_customer_ticket("Invoice two", "invoice", queue="Raw")
    pipe = world.pipeline()
    assert pipe.connector.concurrent_apply
    saw = _gated_apply(pipe, first, second, timeout=10)
    assert await pipe.poll() == 2
    assert saw == [True]
    assert [world.fake.writes(t) for t in (first, second)] == [2, 2]
    assert {e.state for e in world.state.ledger_entries()} == {"applied"}


async def test_a_connector_without_concurrent_apply_gets_one_write_back_at_a_time(world: World) -> None:
    first = world.fake.add_customer_ticket("Invoice one", "invoice", queue="Raw")
    second = world.fake.add_customer_ticket("Invoice two", "invoice", queue="Raw")
    pipe = world.pipeline()
    pipe.connector.concurrent_apply = False  # type: ignore[misc]  # as IMAP and Maildir declare it
    saw = _gated_apply(pipe, first, second, timeout=0.3)
    assert await pipe.poll() == 2
    assert saw == [False]  # the second write-back only started after the first had ended


async def test_a_failed_write_back_lets_the_one_in_flight_end_and_both_are_applied_once(world: World) -> None:
    from connectors.errors import TransientError

    first = world.fake.add_customer_ticket("Invoice one", "invoice", queue="Raw")
    second = world.fake.add_customer_ticket("Invoice two", "invoice", queue="Raw")
    pipe = world.pipeline()
    apply = pipe.connector.apply
    second_started = threading.Event()

    async def first_fails(update: TicketUpdate) -> Any:
        if update.ticket_id == str(second):
            second_started.set()
            return await apply(update)
        assert await anyio.to_thread.run_sync(second_started.wait, 10)
        raise TransientError("the helpdesk went away")

    pipe.connector.apply = first_fails  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        await pipe.poll()
    states = {e.ticket_id: e.state for e in world.state.ledger_entries()}
    assert states == {str(first): "pending", str(second): "applied"}
    assert world.state.cursor_get("znuny-test", "new") is None
    assert await world.pipeline().poll() == 0  # the pending one is re-applied; nothing is new
    assert [world.fake.writes(t) for t in (first, second)] == [2, 2]
    assert {e.state for e in world.state.ledger_entries()} == {"applied"}


def test_a_ticket_without_text_is_never_routed_on_the_models_prior() -> None:
    from daemon.pipeline.routing import decide

    empty = {"queue": {"label": "billing", "confidence": 0.0}, "priority": {"label": "high", "confidence": 0.0}}
    rules = {
        "queue": LabelRule(map={"billing": "Billing"}, threshold=0.0, fallback="Postmaster"),
        "priority": LabelRule(map={"high": "4 high"}, threshold=0.0),
    }
    decision = decide(empty, rules, {})
    assert (decision.queue, decision.priority) == ("Postmaster", None)
    assert decision.reasons == {
        "queue": "no text to classify: fallback 'Postmaster'",
        "priority": "no text to classify: left as is",
    }
    placed = {"queue": {"label": "billing", "confidence": 0.01}, "priority": {"label": "high", "confidence": 0.01}}
    assert decide(placed, rules, {}).queue == "Billing"  # threshold 0 routes any real prediction


async def test_while_the_helpdesk_fails_pages_shrink_to_one_ticket(world: World) -> None:
    ids = [world.fake.add_customer_ticket(f"Invoice {i}", "invoice", queue="Raw") for i in range(3)]
    failing = [True]
    pipe = world.pipeline(batch_limit=10, degraded=lambda: failing[0])
    limits: list[int] = []
    fetch = pipe.connector.fetch_new

    async def spy(cursor: str | None, limit: int) -> Any:
        limits.append(limit)
        return await fetch(cursor, limit)

    pipe.connector.fetch_new = spy  # type: ignore[method-assign]
    assert await pipe.poll() == 3
    assert limits == [1, 1, 1]  # one ticket per page, each page's cursor saved before the next
    assert all(world.fake.queue_name(t) == "Billing" for t in ids)
    failing[0] = False
    world.fake.add_customer_ticket("Invoice 4", "invoice", queue="Raw")
    limits.clear()
    assert await pipe.poll() == 1 and limits == [10]


async def test_the_reason_words_are_kept_only_where_ticket_text_may_be(world: World) -> None:
    tid = world.fake.add_customer_ticket("Invoice", "The invoice is wrong.", queue="Raw")
    unsure = world.fake.add_customer_ticket("Hello", "Some question nobody can place.", queue="Raw")
    await world.pipeline(include_ticket_text=True).poll()
    entry = world.state.ledger_get("znuny-test", str(tid))
    assert entry is not None and entry.decision["words"] == {"queue": ["invoice"], "priority": []}
    assert entry.decision["subject"] == "Invoice"  # the dashboard names the ticket by it
    left = world.state.ledger_get("znuny-test", str(unsure))
    assert left is not None and left.decision["routed"]["queue"] is False
    assert "queue confidence 0.31 below 0.60: left as is (model said 'misc', confidence 0.31)" in left.decision["note"]
