"""Several State objects on one database: what one writes the other reads, and each ticket is claimed once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from daemon.state import LedgerEntry, State, TrainingRow

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def entry(ticket_id: str, claimer: int) -> LedgerEntry:
    return LedgerEntry(
        connector="helpdesk",
        ticket_id=ticket_id,
        model_version=f"claimer-{claimer}",
        predictions={"queue": {"label": "Billing", "confidence": 0.9}},
        decision={"queue": "Billing", "priority": None, "note": None, "expected_queue": "Raw", "reasons": {}},
        mode="live",
        state="pending",
        detail=None,
        created_at=T0,
        updated_at=T0,
    )


def test_one_writes_the_other_reads(url: str) -> None:
    with State.open(url) as writer, State.open(url) as reader:
        assert reader.ledger_get("helpdesk", "1") is None
        assert writer.ledger_begin(entry("1", 0)) is True
        assert reader.ledger_get("helpdesk", "1") == entry("1", 0)
        assert reader.ledger_begin(entry("1", 1)) is False
        writer.cursor_set("helpdesk", "new", "after-1")
        assert reader.cursor_get("helpdesk", "new") == "after-1"
        reader.ledger_finish("helpdesk", "1", "applied")
        got = writer.ledger_get("helpdesk", "1")
        assert got is not None and got.state == "applied"
        row = TrainingRow("helpdesk", "9", "text", "Sales", None, None, T0, T0)
        assert writer.training_add([row]) == 1
        assert reader.training_rows() == [row]
        assert reader.training_add([row]) == 0


def test_each_ticket_is_claimed_exactly_once_across_states(url: str) -> None:
    State.open(url).close()  # migrate once, so the racing threads measure the ledger, not the first open
    tickets = [str(i) for i in range(40)]
    claimed: dict[int, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def claim(claimer: int) -> None:
        try:
            with State.open(url) as state:
                start.wait()
                claimed[claimer] = [t for t in tickets if state.ledger_begin(entry(t, claimer))]
                state.training_add([TrainingRow("helpdesk", t, "x", "IT", None, None, T0, T0) for t in tickets])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    won = sorted(t for ids in claimed.values() for t in ids)
    assert won == sorted(tickets)  # every ticket claimed, none twice
    with State.open(url) as state:
        entries = state.ledger_entries()
        assert len(entries) == len(tickets)
        for e in entries:  # the stored row is the winner's
            assert e.ticket_id in claimed[int(e.model_version.split("-")[1])]  # type: ignore[union-attr]
        assert state.training_count_since(None) == len(tickets)


def test_concurrent_first_open_migrates_once(url: str) -> None:
    errors: list[BaseException] = []
    versions: list[str] = []
    start = threading.Barrier(3)

    def open_it() -> None:
        try:
            start.wait()
            with State.open(url) as state:
                versions.append(state.schema_version())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert versions == ["0005"] * 3
