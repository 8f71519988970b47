"""One connector's ticket flow: ledger check -> classify -> decide -> write back -> record.

The ledger row is written `pending` before `apply` and finished after it, and a page's cursor moves
only once every ticket of the page is in the ledger. So after any crash a ticket is either not in
the ledger (fetched again, routed once) or pending (re-applied; `apply` is idempotent).

Within a page the next ticket is classified (in a worker thread) while the current one is written
back, so the model and the helpdesk round trips overlap instead of adding up; where the connector
allows it (`concurrent_apply`), the write-backs of two consecutive tickets overlap too. That changes
no promise above: every ticket still goes pending -> apply -> finished on its own, a ticket that is
classified but not yet claimed is not in the ledger (a crash or SIGTERM then only means it is
fetched and classified again), and SIGTERM lets the write-backs in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio.to_thread

from connectors.base import Applied, Connector, Ticket, TicketUpdate
from connectors.errors import TicketError
from daemon.logging import get_logger
from daemon.metrics import Metrics
from daemon.ml.text import MAX_SUBJECT_CHARS
from daemon.pipeline import routing
from daemon.pipeline.privacy import Kind, addresses, digest
from daemon.pipeline.routing import Decision, LabelRule, decide

T = TypeVar("T")

if TYPE_CHECKING:
    from daemon.ml.thresholds import Policy, Thresholds
    from daemon.state import LedgerEntry, TrainingRow
    from daemon.state.leases import Fence


class Predictor(Protocol):
    """The loaded model as the pipeline needs it (daemon.ml.serving.LoadedModel, held by ModelHolder)."""

    version: str | None

    def classify(self, text: str, *, subject: str | None = None) -> dict[str, dict[str, Any]]: ...
    def thresholds(self, label: str, policy: Policy) -> Thresholds | None: ...
    def classes(self, label: str) -> list[str]: ...


class LedgerState(Protocol):
    """The part of daemon.state.State the pipeline uses."""

    def ledger_get(self, connector: str, ticket_id: str) -> LedgerEntry | None: ...
    def ledger_known(self, connector: str, ticket_ids: Sequence[str]) -> set[str]: ...
    def ledger_begin(self, entry: LedgerEntry, fence: Fence | None = None) -> bool: ...
    def ledger_finish(
        self, connector: str, ticket_id: str, state: str, detail: str | None = None, fence: Fence | None = None
    ) -> None: ...
    def ledger_pending(self, connector: str | None = None) -> list[LedgerEntry]: ...
    def cursor_get(self, connector: str, kind: str) -> str | None: ...
    def cursor_set(self, connector: str, kind: str, value: str | None, fence: Fence | None = None) -> None: ...
    def fence_check(self, fence: Fence) -> None: ...
    def training_add(self, rows: Sequence[TrainingRow]) -> int: ...
    def forgotten(self) -> tuple[set[tuple[str | None, str]], set[str]]: ...


@dataclass
class Counters:
    """Tickets per ledger state since start, forwarded to the Prometheus counter (`report` reads the ledger)."""

    by_state: dict[str, int] = field(default_factory=dict)
    connector: str = ""
    metrics: Metrics | None = None

    def add(self, state: str) -> None:
        self.by_state[state] = self.by_state.get(state, 0) + 1
        if self.metrics is not None:
            self.metrics.ticket(self.connector, state)


class Pipeline:
    """Routes one connector's new tickets and harvests its closed ones."""

    def __init__(
        self,
        name: str,
        connector: Connector,
        state: LedgerState,
        model: Callable[[], Predictor],
        rules: Mapping[str, LabelRule],
        *,
        mode: str = "live",
        note: bool = True,
        batch_limit: int = 50,
        include_ticket_text: bool = False,
        entry_factory: Callable[..., Any],
        row_factory: Callable[..., Any],
        stopping: Callable[[], bool] = lambda: False,
        degraded: Callable[[], bool] = lambda: False,
        metrics: Metrics | None = None,
        fence: Callable[[], Fence | None] = lambda: None,
        scrub: Callable[[str], tuple[str, Mapping[Kind, int]]] | None = None,
    ) -> None:
        self.name = name
        self.connector = connector
        self.state = state
        self.model = model
        self.rules = rules
        self.mode = mode
        self.note = note
        self.batch_limit = batch_limit
        self.include_ticket_text = include_ticket_text
        self._entry = entry_factory
        self._row = row_factory
        self._stopping = stopping
        self._degraded = degraded
        self.metrics = metrics
        self.fence = fence  # this replica's proof of ownership for every write (None: one process, no leases)
        self._scrub = scrub  # personal data out of the training store (daemon/pipeline/privacy.py); None keeps the text
        self.live: dict[str, set[str]] = {}
        self._warned: set[tuple[str, str]] = set()  # (label, target) already warned about; a reload starts afresh
        self._seen_again: set[str] = set()  # ticket ids already in the ledger that came again, said once each
        self.counters = Counters(connector=name, metrics=metrics)
        self.log = get_logger(__name__).bind(connector=name)

    async def refresh_taxonomy(self) -> None:
        """Live queue and priority names, so a label that maps to a deleted queue falls back."""
        self.live = {
            "queue": {q.name for q in await self.connector.list_queues()},
            "priority": {p.name for p in await self.connector.list_priorities()},
        }

    async def poll(self) -> int:
        """Finish pending write-backs, then route new tickets page by page; returns tickets recorded."""
        await self.replay_pending()
        if not self.live:
            await self.refresh_taxonomy()
        done = 0
        cursor = await self._db(self.state.cursor_get, self.name, "new")
        while not self._stopping():
            # While the helpdesk fails now and then, one ticket per page: a page needs all its calls to
            # succeed (Zammad reads each ticket's articles), so a full page might never get through.
            page = await self.connector.fetch_new(cursor, 1 if self._degraded() else self.batch_limit)
            routed, finished = await self._route_page(page.tickets)
            done += routed
            if not finished:
                return done  # cursor not advanced: the rest of the page comes again
            if page.cursor != cursor:
                await self._db(self.state.cursor_set, self.name, "new", page.cursor, self.fence())
                cursor = page.cursor
            if not page.more or not page.tickets:
                break
        return done

    async def _route_page(self, tickets: Sequence[Ticket]) -> tuple[int, bool]:
        """Route a page in order, classifying ticket k+1 while ticket k is written back.

        Returns the tickets recorded and whether the whole page was gone through (False: stopping).
        At most one classification runs ahead, so memory and model threads stay as for one ticket, and
        at most two write-backs are in flight (one unless the connector declares `concurrent_apply`).
        """
        done = 0
        # Tickets already in the ledger are skipped unclassified. The lookup is a snapshot: a ticket another
        # process claims meanwhile is classified for nothing, but ledger_begin still refuses the second claim.
        known = await self._db(self.state.ledger_known, self.name, [t.id for t in tickets]) if tickets else set()
        fresh = [t for t in tickets if t.id not in known]
        self._say_known(t for t in tickets if t.id in known)
        overlap_writes = self.connector.concurrent_apply
        # The daemon runs on asyncio: these tasks wait for the model's worker thread and the helpdesk.
        ahead: asyncio.Task[_Classified] | None = None
        writing: asyncio.Task[int] | None = None  # the previous ticket's write-back, still in flight
        previous: asyncio.Task[int] | None = None
        finished = True
        try:
            for i, ticket in enumerate(fresh):
                if self._stopping():
                    finished = False
                    break
                classified = await ahead if ahead is not None else await self._classify(ticket)
                ahead = None
                if self._stopping():  # asked to stop meanwhile: this ticket is not claimed, it comes again
                    finished = False
                    break
                if i + 1 < len(fresh):
                    ahead = asyncio.create_task(self._classify(fresh[i + 1]))
                if not overlap_writes:
                    done += await self._record(ticket, classified)
                    continue
                previous, writing = writing, asyncio.create_task(self._record(ticket, classified))
                if previous is not None:
                    done += await previous
            if writing is not None:  # the last write-back in flight finishes, also when stopping
                previous, writing = writing, None
                done += await previous
            return done, finished
        finally:
            if ahead is not None:
                await _discard(ahead)
            if writing is not None:  # an earlier write-back failed: let this one end (applied, or left pending)
                await _settle(writing)

    def _say_known(self, tickets: Iterable[Ticket]) -> None:
        """A new ticket whose id the ledger already has is not routed again; say so once, never silently.

        The rule for mail (a Message-ID is a ticket id): a second mail with a Message-ID already routed is
        taken for a copy of the first (a resend, a duplicate delivery) and left where it is. After a
        crash the same page comes again and its routed tickets are said here too, as they should be.
        """
        for ticket in tickets:
            if ticket.id in self._seen_again:
                continue
            if len(self._seen_again) >= 10_000:
                self._seen_again.clear()
            self._seen_again.add(ticket.id)
            self.log.info("ticket already in the ledger; not routed again", ticket_id=ticket.id, number=ticket.number)

    async def route_pushed(self, ticket_id: str) -> int:
        """A pushed id: routed now if the ledger does not know it and the helpdesk still has it as new work.

        An id whose write-back failed (a put-back push) is still pending in the ledger: it is written back
        now, not left to the next poll's replay.
        """
        entry = await self._db(self.state.ledger_get, self.name, ticket_id)
        if entry is not None:
            if entry.state != "pending" or self._stopping():
                return 0  # a replayed or late push, or a poll got there first
            await self._apply(entry)
            return 1
        if not self.live:
            await self.refresh_taxonomy()
        ticket = await self.connector.fetch_ticket(ticket_id)
        if ticket is None or self._stopping():
            return 0
        return await self.process(ticket)

    async def process(self, ticket: Ticket) -> int:
        """Route one ticket exactly once; returns 1 if it was new to the ledger."""
        if await self._db(self.state.ledger_get, self.name, ticket.id) is not None:
            return 0
        return await self._record(ticket, await self._classify(ticket))

    async def _classify(self, ticket: Ticket) -> _Classified:
        """Both heads' predictions, computed in a worker thread so the event loop goes on meanwhile."""
        model = self.model()

        def run() -> tuple[dict[str, dict[str, Any]], float]:
            started = time.perf_counter()
            predictions = model.classify(ticket.body, subject=ticket.subject)
            return predictions, time.perf_counter() - started

        predictions, seconds = await anyio.to_thread.run_sync(run)
        if self.metrics is not None:
            self.metrics.classified(seconds, predictions)
        return _Classified(model, predictions)

    async def _record(self, ticket: Ticket, classified: _Classified) -> int:
        """Decide, claim the ledger row (pending), write back, finish the row; returns 1 if newly claimed."""
        model, predictions = classified.model, classified.predictions
        words = {label: list(p.pop("words", None) or []) for label, p in predictions.items()}  # text-derived
        fitted = {
            label: model.thresholds(label, rule.policy(model.classes(label)))
            for label, rule in self.rules.items()
            if rule.target_precision is not None
        }
        decision = decide(predictions, self.rules, self.live, fitted)
        self._missing_targets(decision, predictions)
        note = (
            routing.note(model.version, predictions, decision, self.rules, words)
            if self.note and decision.writes
            else None
        )
        shadow = self.mode == "shadow"
        now = datetime.now(UTC)
        entry = self._entry(
            connector=self.name,
            ticket_id=ticket.id,
            model_version=model.version,
            predictions=predictions,
            decision={
                "queue": decision.queue,
                "priority": decision.priority,
                "note": note,
                "expected_queue": ticket.queue,
                "reasons": decision.reasons,
                "thresholds": decision.basis,
                "routed": decision.routed,
                **({"words": words} if self.include_ticket_text else {}),  # words come from the ticket's text
                # Ticket text too: the dashboard names the ticket by it (retention and `forget` clear it with the rest).
                **({"subject": ticket.subject[:MAX_SUBJECT_CHARS]} if self.include_ticket_text else {}),
                **({"missing": decision.missing} if decision.missing else {}),
            },
            mode=self.mode,
            state="shadow" if shadow else "pending",
            detail=None,
            created_at=now,
            updated_at=now,
        )
        if not await self._db(self.state.ledger_begin, entry, self.fence()):
            return 0
        fields: dict[str, Any] = {"ticket_id": ticket.id, "mode": self.mode, "reasons": decision.reasons}
        fields.update({f"{k}_predicted": v["label"] for k, v in predictions.items()})
        fields.update({f"{k}_confidence": v["confidence"] for k, v in predictions.items()})
        if self.include_ticket_text:
            fields["subject"] = ticket.subject
        if shadow:
            self.counters.add("shadow")
            self.log.info("ticket classified (shadow mode, nothing written)", **fields)
            return 1
        await self._apply(entry)
        return 1

    def _missing_targets(self, decision: Decision, predictions: Mapping[str, Mapping[str, Any]]) -> None:
        """A label mapped to a name the helpdesk lacks: counted every time, warned about once per target."""
        for label, target in decision.missing.items():
            if self.metrics is not None:
                self.metrics.missing_target(self.name, label, target)
            if (label, target) in self._warned:
                continue
            self._warned.add((label, target))
            self.log.warning(
                "model label maps to a name the helpdesk does not have; that field is left as is",
                label=label,
                model_label=str(predictions[label]["label"]),
                target=target,
                hint=f"run `ticketd check`; fix routing.labels.{label}.map or the connector's {label} names",
            )

    async def replay_pending(self) -> int:
        """Re-apply entries a crash or an outage left pending; apply is idempotent."""
        pending = await self._db(self.state.ledger_pending, self.name)
        for entry in pending:
            if self._stopping():
                break
            await self._apply(entry)
        return len(pending)

    async def _apply(self, entry: Any) -> None:
        """Write one decision back; TransientError and AuthError leave it pending for the coordinator."""
        decision = entry.decision
        tid = entry.ticket_id
        if decision.get("queue") is None and decision.get("priority") is None:
            why = "below threshold everywhere: left as is"
            await self._db(self.state.ledger_finish, self.name, tid, "skipped", why, self.fence())
            self.counters.add("left")
            self.log.info("ticket left as is", ticket_id=tid, reasons=decision.get("reasons"))
            return
        fence = self.fence()

        async def still_owner() -> None:  # the database refuses a replica that lost the connector (Fenced)
            if fence is not None:
                await self._db(self.state.fence_check, fence)
                self.fence()  # and, last, without a thread hop: the lease was renewed lately (not paused since)

        update = TicketUpdate(
            tid,
            expected_queue=decision["expected_queue"],
            queue=decision.get("queue"),
            priority=decision.get("priority"),
            note=decision.get("note"),
            guard=still_owner if fence is not None else None,
        )
        try:
            outcome = await self.connector.apply(update)
        except TicketError as exc:
            await self._db(self.state.ledger_finish, self.name, tid, "failed", str(exc), self.fence())
            self.counters.add("failed")
            self.log.warning("ticket could not be updated; skipped", ticket_id=tid, error=str(exc))
            return
        if isinstance(outcome, Applied):
            changed = ",".join(outcome.changed) or "already applied"
            await self._db(self.state.ledger_finish, self.name, tid, "applied", changed, self.fence())
            self.counters.add("applied")
            self.log.info(
                "ticket routed",
                ticket_id=tid,
                queue=update.queue,
                priority=update.priority,
                changed=list(outcome.changed),
            )
        else:
            await self._db(self.state.ledger_finish, self.name, tid, "skipped", outcome.reason, self.fence())
            self.counters.add("skipped")
            self.log.info("ticket skipped", ticket_id=tid, reason=outcome.reason)

    async def harvest(self) -> int:
        """Closed tickets with their final labels go to the training store; returns rows new or changed."""
        added = 0
        scrubbed: Counter[str] = Counter()
        forgotten_tickets, forgotten_people = await self._db(self.state.forgotten)
        cursor = await self._db(self.state.cursor_get, self.name, "closed")
        while not self._stopping():
            page = await self.connector.fetch_closed(cursor, self.batch_limit)
            now = datetime.now(UTC)
            own = await self._db(self._own_filings, page.tickets)
            texts = {t.id: _training_text(t) for t in page.tickets}
            for tid, text in list(texts.items()):  # `ticketd forget` is for good: never stored again
                forgotten = (self.name, tid) in forgotten_tickets or (None, tid) in forgotten_tickets
                if forgotten or (forgotten_people and forgotten_people & {digest(a) for a in addresses(text)}):
                    del texts[tid]
            if self._scrub is not None:
                done = await anyio.to_thread.run_sync(functools.partial(_scrub_all, self._scrub, texts))
                for tid, (text, found) in done.items():
                    texts[tid] = text
                    scrubbed.update(found)
            rows = [
                self._row(
                    connector=self.name,
                    ticket_id=t.id,
                    text=texts[t.id],
                    queue=t.queue,
                    priority=t.priority,
                    language=t.language,
                    closed_at=t.closed_at or now,
                    harvested_at=now,
                )
                for t in page.tickets
                if (t.body.strip() or t.subject.strip()) and t.id not in own and t.id in texts
            ]
            if rows:
                added += await self._db(self.state.training_add, rows)
            if page.cursor != cursor:
                await self._db(self.state.cursor_set, self.name, "closed", page.cursor, self.fence())
                cursor = page.cursor
            if not page.more or not page.tickets:
                break
        if added:
            self.log.info("closed tickets harvested", rows=added, scrubbed=dict(scrubbed))
        return added

    def _own_filings(self, tickets: Sequence[Ticket]) -> set[str]:
        """Mails ticketd filed itself that nobody moved since are no evidence: training on them would echo the model."""
        if self.connector.closed_means_confirmed:
            return set()
        own = set()
        for ticket in tickets:
            entry = self.state.ledger_get(self.name, ticket.id)
            if entry is not None and entry.state == "applied" and entry.decision.get("queue") == ticket.queue:
                own.add(ticket.id)
        return own

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """A state call in a worker thread: a locked or slow database never stalls the event loop (API, watchdog)."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))


@dataclass(frozen=True)
class _Classified:
    """One ticket's predictions and the model version that made them (held for the whole ticket)."""

    model: Predictor
    predictions: dict[str, dict[str, Any]]


async def _discard(task: asyncio.Task[Any]) -> None:
    """Drop a look-ahead classification nobody will use (stopping, or the page failed).

    Nothing of it reached the ledger, so the ticket simply comes again. The task is awaited so its
    worker thread is finished and an error it may hold is not reported as never retrieved.
    """
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _settle(task: asyncio.Task[Any]) -> None:
    """Wait for a write-back in flight while another error propagates; its own outcome is in the ledger."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _scrub_all(
    scrub: Callable[[str], tuple[str, Mapping[Kind, int]]], texts: Mapping[str, str]
) -> dict[str, tuple[str, Mapping[Kind, int]]]:
    """A page's texts scrubbed in one worker-thread call (the phone matcher is CPU work)."""
    return {tid: scrub(text) for tid, text in texts.items()}


def _training_text(ticket: Ticket) -> str:
    """The same composition serving uses, so training and serving see tickets alike."""
    from daemon.ml.text import compose

    return compose(ticket.subject, ticket.body)
