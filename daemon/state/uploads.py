"""What one replica's API accepted or runs, kept in PostgreSQL so that any replica answers about it.

A client's upload, training request, status poll and cancel may each reach another replica behind a
Service or an Ingress: uploaded datasets, training jobs' descriptions and the training running now live
here, beside the shared model store (daemon/state/model_versions.py). A job runs on the replica that accepted it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from daemon.state.schema import datasets, training_jobs, training_now

if TYPE_CHECKING:
    from daemon.state.engine import Database

_DATASET_LOCK = 0x7469636E  # transaction advisory lock: dataset numbers never collide ("ticn")
KEEP_JOBS = 50  # training jobs kept, newest first: here (shared) and in memory (daemon/training/jobs.py)


class DatabaseDatasets:
    """Numbered dataset versions: the normalised CSV and its summary."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def versions(self) -> list[str]:
        """Stored versions, oldest first."""
        with self._db.read() as conn:
            return list(conn.execute(sa.select(datasets.c.version).order_by(datasets.c.number)).scalars())

    def summary(self, version: str) -> dict[str, Any] | None:
        """A version's summary, or None if unknown."""
        with self._db.read() as conn:
            found = conn.execute(sa.select(datasets.c.summary).where(datasets.c.version == version)).scalar()
        return None if found is None else dict(found)

    def csv(self, version: str) -> bytes | None:
        """A version's normalised rows, or None if unknown."""
        with self._db.read() as conn:
            found = conn.execute(sa.select(datasets.c.csv).where(datasets.c.version == version)).scalar()
        return None if found is None else bytes(found)

    def add(self, csv: bytes, summary: dict[str, Any]) -> dict[str, Any]:
        """Store as the next version; returns the summary with its `version`."""
        with self._db.write() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_DATASET_LOCK)))
            number = (conn.execute(sa.select(sa.func.max(datasets.c.number))).scalar() or 0) + 1
            stored = {"version": f"v{number}", **summary}
            conn.execute(
                sa.insert(datasets).values(
                    version=f"v{number}", number=number, csv=csv, summary=stored, created_at=datetime.now(UTC)
                )
            )
        return stored


class DatabaseJobs:
    """Training jobs' last known description, written by the replica that runs the job."""

    def __init__(self, db: Database, replica: str) -> None:
        self._db = db
        self.replica = replica

    def publish(self, job_id: str, description: dict[str, Any]) -> None:
        """Insert or update a job's description; the oldest beyond KEEP_JOBS are forgotten."""
        now = datetime.now(UTC)
        with self._db.write() as conn:
            updated = conn.execute(
                sa.update(training_jobs)
                .where(training_jobs.c.id == job_id)
                .values(description=description, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    sa.insert(training_jobs).values(
                        id=job_id, replica=self.replica, description=description, created_at=now, updated_at=now
                    )
                )
                kept = sa.select(training_jobs.c.id).order_by(training_jobs.c.created_at.desc()).limit(KEEP_JOBS)
                conn.execute(sa.delete(training_jobs).where(training_jobs.c.id.not_in(kept.scalar_subquery())))

    def get(self, job_id: str) -> tuple[str, dict[str, Any], datetime] | None:
        """(replica, description, when it was written), if the job is known."""
        query = sa.select(training_jobs).where(training_jobs.c.id == job_id)
        with self._db.read() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else (row.replica, dict(row.description), row.updated_at)


@dataclass(frozen=True)
class Running:
    """The training that holds the cluster's lock, as any replica sees it."""

    who: str
    replica: str
    started_at: datetime
    cancel: bool
    progress: dict[str, Any] | None


class DatabaseTraining:
    """The row that says which training holds the cluster's one training lock (daemon/training/lock.py)."""

    def __init__(self, db: Database, key: int) -> None:
        self._db = db
        self._key = key

    def started(self, who: str, replica: str) -> None:
        """The lock holder's row, replacing one a dead holder left."""
        with self._db.write() as conn:
            conn.execute(sa.delete(training_now))
            conn.execute(
                sa.insert(training_now).values(
                    id=1, who=who, replica=replica, started_at=datetime.now(UTC), cancel=False, progress=None
                )
            )

    def note(self, progress: dict[str, Any] | None) -> None:
        """The holder's latest progress, for every replica's `GET /api/v1/training`."""
        with self._db.write() as conn:
            conn.execute(sa.update(training_now).values(progress=progress))

    def cancel_requested(self) -> bool:
        """Whether a replica asked the holder to stop."""
        with self._db.read() as conn:
            return bool(conn.execute(sa.select(training_now.c.cancel)).scalar())

    def ended(self) -> None:
        with self._db.write() as conn:
            conn.execute(sa.delete(training_now))

    def running(self) -> Running | None:
        """The training holding the lock now; a row whose holder's session is gone (it died) is none."""
        with self._db.read() as conn:
            locked = conn.exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = %(hi)s "
                "AND objid::bigint = %(lo)s AND objsubid = 1 AND granted)",
                {"hi": self._key >> 32, "lo": self._key & 0xFFFFFFFF},
            ).scalar()
            row = conn.execute(sa.select(training_now)).one_or_none()
        if row is None or not locked:
            return None
        return Running(row.who, row.replica, row.started_at, row.cancel, row.progress)

    def request_cancel(self) -> bool:
        """Ask the holder to stop (it looks every second); False when no training runs."""
        if self.running() is None:
            return False
        with self._db.write() as conn:
            return bool(conn.execute(sa.update(training_now).values(cancel=True)).rowcount)
