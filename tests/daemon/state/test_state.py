"""The State API on every backend: ledger (exactly-once), cursors, training store, retrain runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from daemon.state import LedgerEntry, State, TrainingRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(
    ticket_id: str, *, connector: str = "helpdesk", state: str = "pending", mode: str = "live", at: datetime = T0
) -> LedgerEntry:
    return LedgerEntry(
        connector=connector,
        ticket_id=ticket_id,
        model_version="v3",
        predictions={
            "queue": {"label": "Billing", "confidence": 0.91},
            "priority": {"label": "high", "confidence": 0.5},
        },
        decision={
            "queue": "Billing",
            "priority": None,
            "note": "ticketd: Billing (0.91)",
            "expected_queue": "Raw",
            "reasons": {"priority": "below threshold 0.60"},
        },
        mode=mode,
        state=state,
        detail=None,
        created_at=at,
        updated_at=at,
    )


def row(
    ticket_id: str,
    *,
    queue: str = "Billing",
    closed: datetime = T0,
    harvested: datetime = T0,
    connector: str = "helpdesk",
    priority: str | None = "3 normal",
    text: str = "Rechnung doppelt",
) -> TrainingRow:
    return TrainingRow(
        connector=connector,
        ticket_id=ticket_id,
        text=text,
        queue=queue,
        priority=priority,
        language="de",
        closed_at=closed,
        harvested_at=harvested,
    )


# -- ledger ------------------------------------------------------------------------------------------------------


def test_ledger_begin_and_get_round_trip(state: State) -> None:
    assert state.ledger_get("helpdesk", "42") is None
    assert state.ledger_begin(entry("42")) is True
    got = state.ledger_get("helpdesk", "42")
    assert got == entry("42")
    assert got is not None and got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)
    assert state.ledger_get("other", "42") is None


def test_ledger_begin_twice_returns_false_and_changes_nothing(state: State) -> None:
    first = entry("42")
    assert state.ledger_begin(first) is True
    second = LedgerEntry(
        **{
            **first.__dict__,
            "model_version": "v9",
            "state": "shadow",
            "mode": "shadow",
            "detail": "again",
            "created_at": T0 + timedelta(hours=1),
        }
    )
    assert state.ledger_begin(second) is False
    assert state.ledger_get("helpdesk", "42") == first
    assert state.ledger_entries() == [first]
    # The same ticket id on another connector is a different ticket.
    assert state.ledger_begin(entry("42", connector="mail")) is True


def test_ledger_known_lists_the_ids_in_the_ledger_for_one_connector(state: State) -> None:
    assert state.ledger_known("helpdesk", []) == set()
    state.ledger_begin(entry("1"))
    state.ledger_begin(entry("3", state="shadow", mode="shadow"))
    state.ledger_begin(entry("2", connector="mail"))
    assert state.ledger_known("helpdesk", ["1", "2", "3", "4", "1"]) == {"1", "3"}
    assert state.ledger_known("mail", ["1", "2"]) == {"2"}
    # More ids than one IN (...) chunk holds.
    many = [str(i) for i in range(1200)]
    assert state.ledger_known("helpdesk", many) == {"1", "3"}


def test_ledger_finish(state: State) -> None:
    state.ledger_begin(entry("7"))
    state.ledger_finish("helpdesk", "7", "failed", "connector timeout")
    got = state.ledger_get("helpdesk", "7")
    assert got is not None
    assert (got.state, got.detail, got.created_at) == ("failed", "connector timeout", T0)
    assert got.updated_at > T0 and got.updated_at.tzinfo is not None
    state.ledger_finish("helpdesk", "7", "applied")
    got = state.ledger_get("helpdesk", "7")
    assert got is not None and (got.state, got.detail) == ("applied", None)
    with pytest.raises(KeyError):
        state.ledger_finish("helpdesk", "missing", "applied")
    with pytest.raises(ValueError, match="unknown ledger state"):
        state.ledger_finish("helpdesk", "7", "done")


def test_ledger_begin_validates_state_and_mode(state: State) -> None:
    with pytest.raises(ValueError, match="state"):
        state.ledger_begin(entry("1", state="bogus"))
    with pytest.raises(ValueError, match="mode"):
        state.ledger_begin(entry("1", mode="dry"))
    assert state.ledger_entries() == []


def test_ledger_pending_entries_and_counts(state: State) -> None:
    state.ledger_begin(entry("3", at=T0 + timedelta(minutes=3)))
    state.ledger_begin(entry("1", at=T0 + timedelta(minutes=1)))
    state.ledger_begin(entry("2", at=T0 + timedelta(minutes=2)))
    state.ledger_begin(entry("s", connector="mail", state="shadow", mode="shadow"))
    state.ledger_begin(entry("p", connector="mail"))
    state.ledger_finish("helpdesk", "2", "applied")

    assert [e.ticket_id for e in state.ledger_pending()] == ["p", "1", "3"]
    assert [e.ticket_id for e in state.ledger_pending("helpdesk")] == ["1", "3"]
    assert [e.ticket_id for e in state.ledger_pending("nobody")] == []
    assert [e.ticket_id for e in state.ledger_entries()] == ["s", "p", "1", "2", "3"]
    assert [e.ticket_id for e in state.ledger_entries("mail")] == ["s", "p"]
    assert state.ledger_counts() == {
        ("helpdesk", "pending"): 2,
        ("helpdesk", "applied"): 1,
        ("mail", "shadow"): 1,
        ("mail", "pending"): 1,
    }


def test_timestamps_are_normalised_to_utc_and_naive_ones_refused(state: State) -> None:
    cest = timezone(timedelta(hours=2))
    state.ledger_begin(entry("tz", at=datetime(2026, 6, 1, 14, 0, tzinfo=cest)))
    got = state.ledger_get("helpdesk", "tz")
    assert got is not None
    assert got.created_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert got.created_at.tzinfo == UTC
    with pytest.raises(ValueError, match="naive"):
        state.ledger_begin(entry("naive", at=datetime(2026, 6, 1, 12, 0)))
    assert state.ledger_get("helpdesk", "naive") is None


# -- cursors -----------------------------------------------------------------------------------------------------


def test_cursors(state: State) -> None:
    assert state.cursor_get("helpdesk", "new") is None
    state.cursor_set("helpdesk", "new", "2026-03-01T12:00:00Z|41")
    state.cursor_set("helpdesk", "closed", "c1")
    state.cursor_set("mail", "new", "uidvalidity=7;uid=12")
    assert state.cursor_get("helpdesk", "new") == "2026-03-01T12:00:00Z|41"
    state.cursor_set("helpdesk", "new", "2026-03-01T12:05:00Z|44")
    assert state.cursor_get("helpdesk", "new") == "2026-03-01T12:05:00Z|44"
    assert state.cursor_get("helpdesk", "closed") == "c1"
    assert state.cursor_get("mail", "new") == "uidvalidity=7;uid=12"
    assert state.cursor_get("mail", "closed") is None
    state.cursor_set("helpdesk", "closed", None)
    assert state.cursor_get("helpdesk", "closed") is None
    state.cursor_set("helpdesk", "closed", "c2")
    assert state.cursor_get("helpdesk", "closed") == "c2"


# -- training store ----------------------------------------------------------------------------------------------


def test_training_add_counts_new_rows_and_ignores_repeats(state: State) -> None:
    rows = [row("1", closed=T0 + timedelta(hours=2)), row("2", closed=T0), row("3", connector="mail", closed=T0)]
    assert state.training_add(rows) == 3
    assert state.training_add(rows) == 0
    assert state.training_add([]) == 0
    assert [(r.connector, r.ticket_id) for r in state.training_rows()] == [
        ("helpdesk", "2"),
        ("mail", "3"),
        ("helpdesk", "1"),
    ]
    assert [r.ticket_id for r in state.training_rows("helpdesk")] == ["2", "1"]
    got = state.training_rows("mail")[0]
    assert got == rows[2]
    assert got.closed_at.tzinfo == UTC


def test_training_later_close_wins(state: State) -> None:
    later = T0 + timedelta(days=2)
    state.training_add([row("1", queue="Billing"), row("2", queue="Sales")])
    # Re-closed later with another queue: the label is updated and counts as changed.
    relabelled = row("1", queue="IT Support", closed=later, harvested=later)
    # An older close of ticket 2 (e.g. from a stale page) never overrides the stored newer one.
    stale = row("2", queue="HR", closed=T0 - timedelta(days=1), harvested=later)
    assert state.training_add([relabelled, stale]) == 1
    by_id = {r.ticket_id: r for r in state.training_rows()}
    assert by_id["1"] == relabelled
    assert by_id["2"].queue == "Sales" and by_id["2"].harvested_at == T0
    # Within one batch the later close wins too, whatever the order.
    batch = [row("9", queue="HR", closed=later), row("9", queue="Sales", closed=T0)]
    assert state.training_add(batch) == 1
    assert {r.ticket_id: r.queue for r in state.training_rows()}["9"] == "HR"
    # Same close time but a changed priority counts as changed.
    assert state.training_add([row("2", queue="Sales", priority="1 very low")]) == 1
    assert {r.ticket_id: r.priority for r in state.training_rows()}["2"] == "1 very low"


def test_training_count_since(state: State) -> None:
    assert state.training_count_since(None) == 0
    state.training_add([row(str(i), harvested=T0 + timedelta(hours=i)) for i in range(5)])
    assert state.training_count_since(None) == 5
    assert state.training_count_since(T0 + timedelta(hours=2)) == 2  # strictly after
    assert state.training_count_since(T0 + timedelta(days=1)) == 0
    # An unchanged re-harvest keeps its first harvest time, so it does not count as new data.
    state.training_add([row("0", harvested=T0 + timedelta(days=3))])
    assert state.training_count_since(T0 + timedelta(days=1)) == 0


def test_training_many_rows_in_one_call(state: State) -> None:
    rows = [row(f"t{i:05d}", closed=T0 + timedelta(seconds=i)) for i in range(1200)]
    assert state.training_add(rows) == 1200
    assert state.training_add(rows) == 0
    assert len(state.training_rows()) == 1200


# -- retrain runs ------------------------------------------------------------------------------------------------


def test_retrain_record_and_last(state: State) -> None:
    assert state.retrain_last() is None
    state.retrain_record(T0, T0 + timedelta(minutes=5), "rejected", {"reason": "macro-F1 0.61 < 0.64"})
    state.retrain_record(
        T0 + timedelta(days=7),
        T0 + timedelta(days=7, minutes=6),
        "promoted",
        {"version": "v4", "metrics": {"queue": {"macro_f1": 0.7}}},
    )
    last = state.retrain_last()
    assert last == {
        "started_at": T0 + timedelta(days=7),
        "finished_at": T0 + timedelta(days=7, minutes=6),
        "outcome": "promoted",
        "detail": {"version": "v4", "metrics": {"queue": {"macro_f1": 0.7}}},
    }
    assert last["started_at"].tzinfo == UTC


def test_closed_state_refuses_use(url: str) -> None:
    with State.open(url) as state:
        state.cursor_set("a", "new", "1")
    with pytest.raises(RuntimeError, match="closed"):
        state.cursor_get("a", "new")


def test_forget_a_ticket_on_one_connector_or_on_all(state: State) -> None:
    state.training_add([row("7"), row("7", connector="mail"), row("8")])
    for connector in ("helpdesk", "mail"):
        state.ledger_begin(entry("7", connector=connector))
        state.ledger_finish(connector, "7", "failed", "write-back answered 500")
    assert state.forget_ticket("7", "mail") == (1, 1)
    assert sorted((r.connector, r.ticket_id) for r in state.training_rows()) == [("helpdesk", "7"), ("helpdesk", "8")]
    assert state.forget_ticket("7") == (1, 2)  # both connectors' ledger entries (mail's was cleared already)
    assert [r.ticket_id for r in state.training_rows()] == ["8"]
    kept = state.ledger_get("helpdesk", "7")  # never routed twice: the entry stays, without its detail
    assert kept is not None and kept.state == "failed" and kept.detail is None
    assert state.forget_ticket("nope") == (0, 0)  # recorded all the same: a later harvest must not store it
    assert state.forgotten() == ({("mail", "7"), (None, "7"), (None, "nope")}, set())


def test_forget_an_address_in_any_case_and_only_that_address(state: State) -> None:
    state.training_add(
        [
            row("1", text="Bitte an Anna.Schmidt@Example.de antworten"),
            row("2", text="cc anna.schmidt@example.de"),
            row("3", text="anna.schmidt@example.dev is someone else"),
            row("4", text="mail annaXschmidt@example.de"),  # `_` and `%` are no wildcards either
        ]
    )
    state.ledger_begin(entry("1"))
    assert state.forget_address("anna.schmidt@example.de", "d1") == (3, 1)
    assert [r.ticket_id for r in state.training_rows()] == ["4"]
    assert state.forgotten() == (set(), {"d1"})
    state.training_add([row("5", text="100%_done")])
    assert state.forget_address("0%_d", "d2") == (1, 0)


def test_agreement_is_counted_by_the_database(state: State) -> None:
    """(predicted, final, at threshold) counts: joined on the ticket, unlabelled and unclosed tickets left out."""
    from dataclasses import replace

    from daemon.pipeline.report import build_report
    from daemon.pipeline.routing import LabelRule

    def classified(tid: str, queue: str, confidence: float) -> LedgerEntry:
        e = entry(tid, state="applied")
        return replace(e, predictions={"queue": {"label": queue, "confidence": confidence}})

    for e in (classified("1", "Billing", 0.9), classified("2", "Billing", 0.5), classified("3", "IT", 0.6)):
        state.ledger_begin(e)
    state.ledger_begin(classified("4", "IT", 0.99))  # never closed: no final label to compare with
    state.training_add([row("1"), row("2", queue="Sales"), row("3", queue="Hardware", priority=None), row("9")])
    counts = state.agreement_counts("helpdesk", {"queue": 0.6, "priority": 0.6})
    assert counts["queue"] == [
        ("Billing", "Billing", True, 1),
        ("Billing", "Sales", False, 1),
        ("IT", "Hardware", True, 1),
    ]
    assert counts["priority"] == []  # no priority predictions recorded
    assert state.agreement_counts("mail", {"queue": 0.6}) == {"queue": []}
    with pytest.raises(ValueError, match="unknown label 'language'"):
        state.agreement_counts("helpdesk", {"language": 0.5})
    rules = {"helpdesk": {"queue": LabelRule(map={"IT": "Hardware"}, threshold=0.6)}}
    (report,) = build_report(state, rules)
    assert (report.connector, report.label, report.compared) == ("helpdesk", "queue", 3)
    assert report.agreement == pytest.approx(2 / 3)  # IT maps to Hardware: agreed
    assert report.auto_routed_share == pytest.approx(2 / 3) and report.accuracy_at_threshold == 1.0


def test_agreement_counts_what_the_decision_recorded_as_routed(state: State) -> None:
    """A decision's `routed` (per-class thresholds, never_route) wins over the fixed threshold's what-if."""
    from dataclasses import replace

    def decided(tid: str, confidence: float, routed: bool) -> LedgerEntry:
        e = entry(tid, state="applied")
        decision = {**e.decision, "routed": {"queue": routed, "priority": False}}
        return replace(e, predictions={"queue": {"label": "Billing", "confidence": confidence}}, decision=decision)

    state.ledger_begin(decided("1", 0.95, False))  # above 0.6, but never_route (or its class's threshold) held it
    state.ledger_begin(decided("2", 0.40, True))  # below 0.6, routed by its class's lower threshold
    state.training_add([row("1"), row("2", queue="Sales")])
    assert state.agreement_counts("helpdesk", {"queue": 0.6})["queue"] == [
        ("Billing", "Billing", False, 1),
        ("Billing", "Sales", True, 1),
    ]


def test_retention_deletes_old_training_rows_and_strips_old_finished_ledger_entries(state: State) -> None:
    day = timedelta(days=1)
    state.training_add([row("old", closed=T0 - 400 * day), row("new", closed=T0 - 10 * day)])
    for tid, at, final in (
        ("done", T0 - 100 * day, "applied"),
        ("stuck", T0 - 100 * day, None),
        ("recent", T0, "applied"),
    ):
        state.ledger_begin(entry(tid, at=at))
        if final is not None:
            state.ledger_finish("helpdesk", tid, final, "ok")
    # ledger_finish stamps updated_at with the wall clock: age the finished ones by hand, as months would.
    with state.write() as conn:
        import sqlalchemy as sa

        from daemon.state.schema import ledger

        conn.execute(sa.update(ledger).where(ledger.c.ticket_id == "done").values(updated_at=T0 - 100 * day))
        conn.execute(sa.update(ledger).where(ledger.c.ticket_id == "recent").values(updated_at=T0))
    assert state.purge(training_before=T0 - 365 * day, ledger_before=T0 - 90 * day) == (1, 1)
    assert [r.ticket_id for r in state.training_rows()] == ["new"]
    done = state.ledger_get("helpdesk", "done")
    assert done is not None and done.state == "applied"  # still known: never routed twice
    assert (done.predictions, done.decision, done.detail) == ({}, {}, None)
    stuck, recent = state.ledger_get("helpdesk", "stuck"), state.ledger_get("helpdesk", "recent")
    assert stuck is not None and stuck.predictions and stuck.state == "pending"  # a write-back to finish: kept
    assert recent is not None and recent.predictions and recent.detail == "ok"
    assert state.purge(training_before=T0 - 365 * day, ledger_before=T0 - 90 * day) == (0, 0)  # already done
    assert state.purge(training_before=None, ledger_before=None) == (0, 0)


def test_only_entries_that_missed_a_target_are_loaded_for_the_report(state: State) -> None:
    from dataclasses import replace

    plain = entry("1")
    missed = replace(entry("2"), decision={**plain.decision, "missing": {"queue": "Accounting"}})
    state.ledger_begin(plain)
    state.ledger_begin(missed)
    assert [e.ticket_id for e in state.ledger_with_missing()] == ["2"]


def test_dashboard_queries_recent_decisions_days_and_retrain_history(state: State) -> None:
    """Newest first with final labels once closed; agreement per closing day; filters; today's counts."""
    from dataclasses import replace

    day = timedelta(days=1)

    def decided(tid: str, at: datetime, routed: bool, queue: str = "Billing") -> LedgerEntry:
        e = entry(tid, state="applied", at=at)
        decision = {**e.decision, "routed": {"queue": routed, "priority": False}}
        return replace(e, predictions={"queue": {"label": queue, "confidence": 0.8}}, decision=decision)

    state.ledger_begin(decided("1", T0 - 9 * day, True))
    state.ledger_begin(decided("2", T0 - 8 * day, False, queue="IT"))
    state.ledger_begin(decided("3", T0, True))
    state.training_add([row("1", closed=T0 - 8 * day), row("2", queue="IT", closed=T0 - 1 * day)])
    recent = state.ledger_recent(limit=10)
    assert [(e.ticket_id, final) for e, final in recent] == [
        ("3", None),
        ("2", {"queue": "IT", "priority": "3 normal"}),
        ("1", {"queue": "Billing", "priority": "3 normal"}),
    ]
    assert [e.ticket_id for e, _ in state.ledger_recent(limit=2)] == ["3", "2"]
    assert [e.ticket_id for e, _ in state.ledger_recent(label="queue", routed=False)] == ["2"]
    assert [e.ticket_id for e, _ in state.ledger_recent(label="queue", routed=True)] == ["3", "1"]
    assert state.ledger_recent(connector="mail") == [] and state.ledger_recent(state="failed") == []
    with pytest.raises(ValueError, match="unknown label"):
        state.ledger_recent(label="language", routed=True)

    days = state.agreement_by_day("helpdesk", {"queue": 0.6}, since=T0 - 30 * day)
    assert days["queue"] == sorted(
        [((T0 - 8 * day).date(), "Billing", "Billing", True, 1), ((T0 - 1 * day).date(), "IT", "IT", False, 1)]
    )
    assert state.agreement_by_day("helpdesk", {"queue": 0.6}, since=T0 - 2 * day)["queue"] == [
        ((T0 - 1 * day).date(), "IT", "IT", False, 1)
    ]
    assert state.ledger_counts(since=T0 - day) == {("helpdesk", "applied"): 1}
    assert state.routed_counts(since=T0 - 30 * day) == {"helpdesk": 2} and state.routed_counts(T0 + day) == {}

    state.retrain_record(T0, T0 + day, "rejected", {"reason": "worse"})
    state.retrain_record(T0 + day, T0 + 2 * day, "promoted", {"version": "v4"})
    history = state.retrain_history()
    assert [h["outcome"] for h in history] == ["promoted", "rejected"] and history[1]["detail"] == {"reason": "worse"}
