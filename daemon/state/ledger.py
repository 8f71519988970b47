"""The routing ledger (exactly-once per ticket), the connectors' cursors, and the ledger's aggregates for the
dashboard and reports (joined with the training store: what a ticket was routed to against how it closed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from daemon.state.engine import KEYS_PER_QUERY, Database, require_aware, utcnow
from daemon.state.leases import Fence
from daemon.state.records import LEDGER_STATES, MODES, LedgerEntry
from daemon.state.schema import MISSED_TARGET, cursors, ledger, training

# The two writes every routed ticket makes, built once with bound parameters: SQLAlchemy then reuses their cache
# key and compiled form instead of rebuilding both from literal values per call (half their CPU time).
_LEDGER_INSERT = sa.insert(ledger)
_LEDGER_FINISH = (
    sa.update(ledger)
    .where(ledger.c.connector == sa.bindparam("key_connector"), ledger.c.ticket_id == sa.bindparam("key_ticket_id"))
    .values(state=sa.bindparam("state"), detail=sa.bindparam("detail"), updated_at=sa.bindparam("updated_at"))
)


def _check_state(state: str) -> None:
    """Catch typos in ledger states before they reach the database, where nothing would complain."""
    if state not in LEDGER_STATES:
        raise ValueError(f"unknown ledger state {state!r}; expected one of {sorted(LEDGER_STATES)}")


def _agreement_columns(thresholds: Mapping[str, float]) -> list[sa.ColumnElement[Any]]:
    """Per label: the predicted class, the final label, and whether it was routed (recorded, else at threshold)."""
    unknown = [label for label in thresholds if label not in ("queue", "priority")]
    if unknown:
        raise ValueError(f"unknown label {unknown[0]!r}")
    columns: list[sa.ColumnElement[Any]] = []
    for label, threshold in thresholds.items():
        confidence = ledger.c.predictions[(label, "confidence")].as_float()
        routed = ledger.c.decision[("routed", label)].as_boolean()  # recorded since per-class thresholds
        columns += [
            ledger.c.predictions[(label, "label")].as_string(),
            training.c[label],
            sa.func.coalesce(routed, sa.case((confidence >= threshold, True), else_=False)),
        ]
    return columns


def _same_ticket() -> sa.ColumnElement[bool]:
    """The join of a ledger entry with its ticket's training row."""
    return sa.and_(training.c.connector == ledger.c.connector, training.c.ticket_id == ledger.c.ticket_id)


def _entry(row: sa.Row[Any]) -> LedgerEntry:
    """A ledger row as the public dataclass."""
    return LedgerEntry(
        connector=row.connector,
        ticket_id=row.ticket_id,
        model_version=row.model_version,
        predictions=row.predictions,
        decision=row.decision,
        mode=row.mode,
        state=row.state,
        detail=row.detail,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Ledger(Database):
    """The ledger and cursors: what was routed, and where each connector's polling stands."""

    # -- ledger --------------------------------------------------------------------------------------------------

    def ledger_get(self, connector: str, ticket_id: str) -> LedgerEntry | None:
        """The ledger entry for one ticket, if it was ever routed."""
        query = sa.select(ledger).where(ledger.c.connector == connector, ledger.c.ticket_id == ticket_id)
        with self.read() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else _entry(row)

    def ledger_known(self, connector: str, ticket_ids: Sequence[str]) -> set[str]:
        """Which of these tickets have a ledger entry: one query per page instead of one per ticket."""
        found: set[str] = set()
        ids = list(dict.fromkeys(ticket_ids))
        with self.read() as conn:
            for start in range(0, len(ids), KEYS_PER_QUERY):
                query = sa.select(ledger.c.ticket_id).where(
                    ledger.c.connector == connector, ledger.c.ticket_id.in_(ids[start : start + KEYS_PER_QUERY])
                )
                found.update(conn.execute(query).scalars())
        return found

    def ledger_begin(self, entry: LedgerEntry, fence: Fence | None = None) -> bool:
        """Claim a ticket atomically: True if this call inserted it, False if it was already in the ledger."""
        _check_state(entry.state)
        require_aware(entry.created_at, entry.updated_at)
        if entry.mode not in MODES:
            raise ValueError(f"unknown routing mode {entry.mode!r}; expected one of {sorted(MODES)}")
        values = {
            "connector": entry.connector,
            "ticket_id": entry.ticket_id,
            "model_version": entry.model_version,
            "predictions": entry.predictions,
            "decision": entry.decision,
            "mode": entry.mode,
            "state": entry.state,
            "detail": entry.detail,
            "created_at": entry.created_at,
            "updated_at": entry.updated_at,
        }
        try:
            with self.write(fence) as conn:
                conn.execute(_LEDGER_INSERT, values)
        except exc.IntegrityError:
            # Only the unique (connector, ticket_id) key makes this insert fail; anything else is a real bug.
            if self.ledger_get(entry.connector, entry.ticket_id) is None:
                raise
            return False
        return True

    def ledger_finish(
        self, connector: str, ticket_id: str, state: str, detail: str | None = None, fence: Fence | None = None
    ) -> None:
        """Record how routing ended (state and detail replace the previous ones); the entry must exist."""
        _check_state(state)
        params = {
            "key_connector": connector,
            "key_ticket_id": ticket_id,
            "state": state,
            "detail": detail,
            "updated_at": utcnow(),
        }
        with self.write(fence) as conn:
            matched = conn.execute(_LEDGER_FINISH, params).rowcount
        if matched == 0:
            raise KeyError(f"no ledger entry for connector {connector!r} ticket {ticket_id!r}")

    def ledger_pending(self, connector: str | None = None) -> list[LedgerEntry]:
        """Entries claimed but never finished (a crash between begin and finish), oldest first."""
        return self._ledger_query(connector, ledger.c.state == "pending")

    def ledger_entries(self, connector: str | None = None) -> list[LedgerEntry]:
        """All entries, oldest first."""
        return self._ledger_query(connector)

    def ledger_with_missing(self) -> list[LedgerEntry]:
        """Entries whose decision named a queue or priority the helpdesk lacked (few; the report lists them)."""
        indexed = MISSED_TARGET.get(self._engine.dialect.name)
        if indexed is None:  # another backend: the same rows, without the index
            text = sa.cast(ledger.c.decision, sa.Text).contains('"missing"')
            return [e for e in self._ledger_query(None, text) if "missing" in e.decision]
        return self._ledger_query(None, indexed)  # the partial index's own condition, so it is used

    def _ledger_query(
        self, connector: str | None, *conditions: sa.ColumnElement[bool] | sa.TextClause
    ) -> list[LedgerEntry]:
        """Ledger rows filtered by connector and extra conditions, in creation order."""
        query = sa.select(ledger).where(*conditions).order_by(ledger.c.created_at, ledger.c.id)
        if connector is not None:
            query = query.where(ledger.c.connector == connector)
        with self.read() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def ledger_counts(self, since: datetime | None = None) -> dict[tuple[str, str], int]:
        """Number of entries per (connector, state), for reports and metrics; `since`: created from then on."""
        require_aware(since)
        query = sa.select(ledger.c.connector, ledger.c.state, sa.func.count()).group_by(
            ledger.c.connector, ledger.c.state
        )
        if since is not None:
            query = query.where(ledger.c.created_at >= since)
        with self.read() as conn:
            return {(connector, state): int(n) for connector, state, n in conn.execute(query)}

    # -- cursors -------------------------------------------------------------------------------------------------

    def cursor_get(self, connector: str, kind: str) -> str | None:
        """The connector's saved position for `kind` ("new" or "closed"), or None before the first poll."""
        query = sa.select(cursors.c.value).where(cursors.c.connector == connector, cursors.c.kind == kind)
        with self.read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def cursor_set(self, connector: str, kind: str, value: str | None, fence: Fence | None = None) -> None:
        """Save the connector's position (None resets it to "start over")."""
        values = {"connector": connector, "kind": kind, "value": value, "updated_at": utcnow()}
        with self.write(fence) as conn:
            name = conn.dialect.name
            if name in ("sqlite", "postgresql"):
                insert = sqlite_insert(cursors) if name == "sqlite" else postgresql_insert(cursors)
                upsert = insert.values(**values)
                conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[cursors.c.connector, cursors.c.kind],
                        set_={"value": upsert.excluded.value, "updated_at": upsert.excluded.updated_at},
                    )
                )
                return
            key = (cursors.c.connector == connector, cursors.c.kind == kind)
            update = sa.update(cursors).where(*key).values(value=value, updated_at=values["updated_at"])
            if conn.execute(update).rowcount:
                return
            conn.execute(sa.insert(cursors).values(**values))

    # -- aggregates ----------------------------------------------------------------------------------------------

    def agreement_counts(
        self, connector: str, thresholds: Mapping[str, float]
    ) -> dict[str, list[tuple[str, str, bool, int]]]:
        """Classified tickets that have since closed, counted in SQL: per label, (predicted, final, routed, n).

        Routed is what the decision recorded (the threshold that applied then, per class or fixed); an entry
        decided before decisions recorded it counts as routed at or above `thresholds[label]`.

        One pass over the join for every label, as many result rows as label combinations whatever the
        ledger's size: the report and the gauges never load it. The training side is read through a
        covering index, never its text.
        """
        columns = _agreement_columns(thresholds)
        query = (
            sa.select(*columns, sa.func.count())
            .select_from(ledger.join(training, _same_ticket()))
            .where(ledger.c.connector == connector)
            .group_by(*columns)
        )
        counts: dict[str, dict[tuple[str, str, bool], int]] = {label: {} for label in thresholds}
        with self.read() as conn:
            for row in conn.execute(query):
                n = int(row[-1])
                for i, label in enumerate(thresholds):
                    predicted, truth, confident = row[3 * i : 3 * i + 3]
                    if predicted is None or truth is None:
                        continue
                    key = (str(predicted), str(truth), bool(confident))
                    counts[label][key] = counts[label].get(key, 0) + n
        return {label: [(*key, n) for key, n in sorted(cells.items())] for label, cells in counts.items()}

    def routed_counts(self, since: datetime) -> dict[str, int]:
        """Per connector: entries created from `since` whose queue was routed (shadow: would have been)."""
        require_aware(since)
        routed = ledger.c.decision[("routed", "queue")].as_boolean()
        query = (
            sa.select(ledger.c.connector, sa.func.count())
            .where(ledger.c.created_at >= since, routed.is_(True))
            .group_by(ledger.c.connector)
        )
        with self.read() as conn:
            return {str(connector): int(n) for connector, n in conn.execute(query)}

    def agreement_by_day(
        self, connector: str, thresholds: Mapping[str, float], since: datetime
    ) -> dict[str, list[tuple[date, str, str, bool, int]]]:
        """As agreement_counts, per UTC day the ticket closed on (from `since`): the dashboard's weekly agreement."""
        require_aware(since)
        columns = _agreement_columns(thresholds)
        if self._engine.dialect.name == "postgresql":
            day: sa.ColumnElement[Any] = sa.cast(sa.func.timezone("UTC", training.c.closed_at), sa.Date)
        else:  # SQLite keeps UTC text; date() cuts it to the day
            day = sa.func.date(training.c.closed_at)
        query = (
            sa.select(day, *columns, sa.func.count())
            .select_from(ledger.join(training, _same_ticket()))
            .where(ledger.c.connector == connector, training.c.closed_at >= since)
            .group_by(day, *columns)
        )
        out: dict[str, list[tuple[date, str, str, bool, int]]] = {label: [] for label in thresholds}
        with self.read() as conn:
            for row in conn.execute(query):
                when = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0]))
                for i, label in enumerate(thresholds):
                    predicted, truth, routed = row[1 + 3 * i : 4 + 3 * i]
                    if predicted is not None and truth is not None:
                        out[label].append((when, str(predicted), str(truth), bool(routed), int(row[-1])))
        return out

    def ledger_recent(
        self,
        *,
        limit: int = 50,
        connector: str | None = None,
        state: str | None = None,
        label: str | None = None,
        routed: bool | None = None,
    ) -> list[tuple[LedgerEntry, dict[str, str | None] | None]]:
        """The newest entries, each with its ticket's final labels once closed (None before): the dashboard's list.

        `label` with `routed`: only entries whose decision routed (True) or left (False) that label.
        """
        final = (training.c.queue.label("final_queue"), training.c.priority.label("final_priority"))
        query = (
            sa.select(ledger, *final, training.c.closed_at.label("final_closed_at"))
            .select_from(ledger.outerjoin(training, _same_ticket()))
            .order_by(ledger.c.created_at.desc(), ledger.c.id.desc())
            .limit(limit)
        )
        if connector is not None:
            query = query.where(ledger.c.connector == connector)
        if state is not None:
            query = query.where(ledger.c.state == state)
        if label is not None and routed is not None:
            if label not in ("queue", "priority"):
                raise ValueError(f"unknown label {label!r}")
            recorded = ledger.c.decision[("routed", label)].as_boolean()
            query = query.where(recorded.is_(True) if routed else sa.func.coalesce(recorded, False).is_(False))
        with self.read() as conn:
            rows = conn.execute(query).all()
        return [
            (
                _entry(row),
                None if row.final_closed_at is None else {"queue": row.final_queue, "priority": row.final_priority},
            )
            for row in rows
        ]

    def ledger_connectors(self) -> list[str]:
        """Every connector the ledger has entries of (a removed one's still count in the report)."""
        with self.read() as conn:
            return sorted(str(c) for c in conn.execute(sa.select(ledger.c.connector).distinct()).scalars())
