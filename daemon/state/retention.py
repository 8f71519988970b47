"""Retention and forgetting: purging old training rows and ledger details, and erasing one ticket or address."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from daemon.state.engine import Database, require_aware, utcnow
from daemon.state.schema import forgotten, ledger, training


class Retention(Database):
    """What the state lets go of: by age (`purge`) or on request (`ticketd forget`), and what not to store again."""

    # -- retention -----------------------------------------------------------------------------------------------

    def purge(self, *, training_before: datetime | None, ledger_before: datetime | None) -> tuple[int, int]:
        """Delete training rows closed before `training_before`; strip finished ledger entries last updated before
        `ledger_before` of their predictions, decision and detail (the entry stays: never routed twice).

        Returns (training rows deleted, ledger entries stripped); None for a bound purges nothing of that kind.
        """
        require_aware(training_before, ledger_before)
        deleted = stripped = 0
        with self.write() as conn:
            if training_before is not None:
                deleted = conn.execute(sa.delete(training).where(training.c.closed_at < training_before)).rowcount
            if ledger_before is not None:
                query = (
                    sa.update(ledger)
                    .where(
                        ledger.c.updated_at < ledger_before,
                        ledger.c.state != "pending",
                        sa.or_(sa.cast(ledger.c.predictions, sa.Text) != "{}", ledger.c.detail.isnot(None)),
                    )
                    .values(predictions={}, decision={}, detail=None)
                )
                stripped = conn.execute(query).rowcount
        return deleted, stripped

    # -- forgetting ----------------------------------------------------------------------------------------------

    def forget_ticket(self, ticket_id: str, connector: str | None = None) -> tuple[int, int]:
        """Erase a ticket's text from the training store and its detail from the ledger; (rows, entries)."""
        where_t = [training.c.ticket_id == ticket_id]
        where_l = [ledger.c.ticket_id == ticket_id]
        if connector is not None:
            where_t.append(training.c.connector == connector)
            where_l.append(ledger.c.connector == connector)
        with self.write() as conn:
            n_training = conn.execute(sa.delete(training).where(*where_t)).rowcount
            n_ledger = conn.execute(sa.update(ledger).where(*where_l).values(detail=None)).rowcount
            conn.execute(
                sa.insert(forgotten).values(
                    at=utcnow(),
                    kind="ticket",
                    connector=connector,
                    ticket_id=ticket_id,
                    training_rows=n_training,
                    ledger_rows=n_ledger,
                )
            )
        self._flush_erased()
        return n_training, n_ledger

    def forget_address(self, address: str, digest: str) -> tuple[int, int]:
        """Erase every stored ticket whose text holds the address (any case); (rows, ledger entries)."""
        needle = address.strip().lower()
        with self.write() as conn:
            match = sa.func.lower(training.c.text).contains(needle, autoescape=True)
            keys = [
                (r.connector, r.ticket_id)
                for r in conn.execute(sa.select(training.c.connector, training.c.ticket_id).where(match))
            ]
            n_training = conn.execute(sa.delete(training).where(match)).rowcount
            n_ledger = 0
            for connector, ticket_id in keys:
                key = (ledger.c.connector == connector, ledger.c.ticket_id == ticket_id)
                n_ledger += conn.execute(sa.update(ledger).where(*key).values(detail=None)).rowcount
            conn.execute(
                sa.insert(forgotten).values(
                    at=utcnow(), kind="address", digest=digest, training_rows=n_training, ledger_rows=n_ledger
                )
            )
        self._flush_erased()
        return n_training, n_ledger

    def _flush_erased(self) -> None:
        """SQLite: fold the WAL into the database file and truncate it, so no old copy of an erased page remains.

        PostgreSQL keeps dead rows until VACUUM (autovacuum, or `VACUUM training` by the operator).
        """
        if self._engine.dialect.name != "sqlite":
            return
        with self._errors(), self._engine.connect() as conn:
            raw = conn.connection.driver_connection  # outside any transaction, which a checkpoint needs
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def forgotten(self) -> tuple[set[tuple[str | None, str]], set[str]]:
        """What a harvest must not store again: (connector or None, ticket id) keys and address digests."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(forgotten.c.kind, forgotten.c.connector, forgotten.c.ticket_id, forgotten.c.digest)
            ).all()
        tickets = {(r.connector, str(r.ticket_id)) for r in rows if r.kind == "ticket"}
        digests = {str(r.digest) for r in rows if r.kind == "address"}
        return tickets, digests
