"""The training store (harvested closed tickets with their final labels) and the history of retrain attempts."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from daemon.state.engine import KEYS_PER_QUERY, Database, require_aware
from daemon.state.records import TrainingRow
from daemon.state.schema import retrain_runs, training

_YIELD_ROWS = 2000  # training rows fetched per round trip when the store is read


def _training_row(row: sa.Row[Any]) -> TrainingRow:
    """A training-store row as the public dataclass; the few distinct names shared, not one copy per row."""
    return TrainingRow(
        connector=sys.intern(row.connector),
        ticket_id=row.ticket_id,
        text=row.text,
        queue=sys.intern(row.queue),
        priority=None if row.priority is None else sys.intern(row.priority),
        language=None if row.language is None else sys.intern(row.language),
        closed_at=row.closed_at,
        harvested_at=row.harvested_at,
    )


def _same_content(row: TrainingRow, stored: sa.Row[Any]) -> bool:
    """Whether re-harvesting `row` would change nothing the trainer sees."""
    return bool(
        row.text == stored.text
        and row.queue == stored.queue
        and row.priority == stored.priority
        and row.language == stored.language
        and row.closed_at == stored.closed_at
    )


class TrainingStore(Database):
    """What retrain trains on, one row per (connector, ticket_id), and what each retrain attempt came to."""

    # -- training store ------------------------------------------------------------------------------------------

    def training_add(self, rows: Sequence[TrainingRow]) -> int:
        """Store harvested tickets, one row per (connector, ticket_id) where the later close wins; count changes."""
        latest: dict[tuple[str, str], TrainingRow] = {}
        for row in rows:
            require_aware(row.closed_at, row.harvested_at)
            key = (row.connector, row.ticket_id)
            if key not in latest or row.closed_at >= latest[key].closed_at:
                latest[key] = row
        if not latest:
            return 0
        for attempt in range(3):
            try:
                return self._training_upsert(latest)
            except exc.IntegrityError:
                # A concurrent writer inserted one of our new keys first (PostgreSQL); the retry sees it as stored.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _training_upsert(self, latest: dict[tuple[str, str], TrainingRow]) -> int:
        """Insert new keys and update those whose close is at least as recent and whose content differs."""
        changed = 0
        with self.write() as conn:
            stored = self._training_existing(conn, list(latest))
            for key, row in latest.items():
                values = {
                    "text": row.text,
                    "queue": row.queue,
                    "priority": row.priority,
                    "language": row.language,
                    "closed_at": row.closed_at,
                    "harvested_at": row.harvested_at,
                }
                old = stored.get(key)
                if old is None:
                    conn.execute(sa.insert(training).values(connector=key[0], ticket_id=key[1], **values))
                elif row.closed_at >= old.closed_at and not _same_content(row, old):
                    conn.execute(sa.update(training).where(training.c.id == old.id).values(**values))
                else:
                    continue
                changed += 1
        return changed

    @staticmethod
    def _training_existing(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], sa.Row[Any]]:
        """Stored rows for the given keys, looked up per connector in bounded chunks."""
        by_connector: dict[str, list[str]] = {}
        for connector, ticket_id in keys:
            by_connector.setdefault(connector, []).append(ticket_id)
        found: dict[tuple[str, str], sa.Row[Any]] = {}
        for connector, ids in by_connector.items():
            for start in range(0, len(ids), KEYS_PER_QUERY):
                query = sa.select(training).where(
                    training.c.connector == connector, training.c.ticket_id.in_(ids[start : start + KEYS_PER_QUERY])
                )
                for row in conn.execute(query):
                    found[(row.connector, row.ticket_id)] = row
        return found

    def training_rows(self, connector: str | None = None) -> list[TrainingRow]:
        """The training store, ordered by close time (then ticket id) for time-ordered holdouts."""
        return list(self.iter_training_rows(connector))

    def iter_training_rows(self, connector: str | None = None) -> Iterator[TrainingRow]:
        """The training store in the same order, read in batches (a server-side cursor on PostgreSQL).

        A retrain passes over it a few times instead of holding it: memory stays flat however large it grows.
        """
        query = sa.select(training).order_by(training.c.closed_at, training.c.ticket_id, training.c.connector)
        if connector is not None:
            query = query.where(training.c.connector == connector)
        with self.read() as conn:
            for row in conn.execution_options(yield_per=_YIELD_ROWS).execute(query):
                yield _training_row(row)

    def training_count_since(self, when: datetime | None) -> int:
        """Rows harvested (new or relabelled) strictly after `when`; all rows for None."""
        require_aware(when)
        query = sa.select(sa.func.count()).select_from(training)
        if when is not None:
            query = query.where(training.c.harvested_at > when)
        with self.read() as conn:
            return int(conn.execute(query).scalar_one())

    # -- retrain runs --------------------------------------------------------------------------------------------

    def retrain_record(self, started_at: datetime, finished_at: datetime, outcome: str, detail: dict[str, Any]) -> None:
        """Remember one retrain attempt for reports and metrics."""
        require_aware(started_at, finished_at)
        with self.write() as conn:
            conn.execute(
                sa.insert(retrain_runs).values(
                    started_at=started_at, finished_at=finished_at, outcome=outcome, detail=detail
                )
            )

    def retrain_history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest recorded retrain attempts first (champion against challenger, for the dashboard)."""
        query = sa.select(retrain_runs).order_by(retrain_runs.c.id.desc()).limit(limit)
        with self.read() as conn:
            rows = conn.execute(query).all()
        return [
            {"started_at": r.started_at, "finished_at": r.finished_at, "outcome": r.outcome, "detail": r.detail}
            for r in rows
        ]

    def retrain_last(self) -> dict[str, Any] | None:
        """The most recently recorded retrain attempt, or None if there was none."""
        query = sa.select(retrain_runs).order_by(retrain_runs.c.id.desc()).limit(1)
        with self.read() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        return {
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "outcome": row.outcome,
            "detail": row.detail,
        }
