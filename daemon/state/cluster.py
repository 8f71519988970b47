"""Several replicas on one PostgreSQL database (daemon/runtime/leadership.py): leases and the fences they give,
replica heartbeats, NOTIFY, and connections of their own for session advisory locks.

The lease rules and their SQL are in daemon/state/leases.py; this is the State's side that runs them in a
transaction of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection

from daemon.errors import StateError
from daemon.state import leases as leasing
from daemon.state.engine import Database
from daemon.state.leases import Fence


class Cluster(Database):
    """What replicas sharing the database coordinate through; PostgreSQL only, apart from `fence_check`."""

    def end_stalled_transactions(self, seconds: float) -> None:
        """PostgreSQL ends a session idle inside a transaction this long (`idle_in_transaction_session_timeout`).

        A replica paused mid-write (SIGSTOP, a stalled node) would otherwise keep its share lock on a lease row
        for as long as it is paused, and no other replica could take the lease over.
        """
        millis = max(1, int(seconds * 1000))

        @event.listens_for(self._engine, "connect")
        def _limit(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"SET idle_in_transaction_session_timeout = {millis}")
            cursor.close()
            dbapi_connection.commit()

        self._engine.dispose()  # pooled connections opened before this get replaced by limited ones

    def fence_check(self, fence: Fence) -> None:
        """Fenced unless the lease still holds: checked right before a write-back to the helpdesk."""
        with self.write(fence):
            pass

    def lease_take(self, name: str, owner: str, ttl: float, *, seen: int, force: bool = False) -> Fence | None:
        """Compare-and-set: owner at `seen` + 1 if the lease is still at epoch `seen` and may be taken."""
        try:
            with self.write() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")  # a stalled writer holds the row: next round
                leasing.ensure(conn, name)
                return leasing.take(conn, name, owner, ttl, seen=seen, force=force)
        except StateError as error:
            if getattr(getattr(error.__cause__, "orig", None), "sqlstate", None) == "55P03":  # lock_not_available
                return None
            raise

    def lease_renew(self, fence: Fence, ttl: float) -> bool:
        with self.write() as conn:
            return leasing.renew(conn, fence, ttl)

    def lease_release(self, fence: Fence) -> None:
        with self.write() as conn:
            leasing.release(conn, fence)

    def leases(self) -> list[leasing.Lease]:
        with self.read() as conn:
            return leasing.listed(conn)

    def replica_beat(self, owner: str, ttl: float) -> int:
        with self.write() as conn:
            return leasing.beat(conn, owner, ttl)

    def replica_gone(self, owner: str) -> None:
        with self.write() as conn:
            leasing.gone(conn, owner)

    def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL NOTIFY on `channel` (sent when the transaction commits)."""
        with self.write() as conn:
            conn.execute(sa.select(sa.func.pg_notify(channel, payload)))

    def try_session_lock(self, key: int) -> Connection | None:
        """A connection of its own holding session advisory lock `key`, or None while another session holds it.

        The caller ends it with `invalidate()` and `close()`; PostgreSQL frees the lock when the session ends,
        also when its process dies.
        """
        with self._errors():
            conn = self._engine.connect()
            try:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                if conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one():
                    return conn
            except BaseException:
                conn.invalidate()
                conn.close()
                raise
            conn.invalidate()
            conn.close()
            return None

    @contextlib.contextmanager
    def session(self) -> Iterator[Connection]:
        """A connection of its own outside any transaction, for session advisory locks; closed on leaving.

        Closed for real, not handed back to the pool: its session, and every advisory lock it holds, ends.
        """
        with self._errors(), self._engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                yield conn
            finally:
                conn.invalidate()
