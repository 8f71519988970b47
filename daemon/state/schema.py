"""Table definitions for the daemon's state; the migrations in migrations/versions must produce exactly these."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# Alembic's bookkeeping table, named after us so a shared PostgreSQL database cannot confuse it with another app's.
VERSION_TABLE = "ticketd_schema_version"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Store aware UTC timestamps on every backend (SQLite drops the offset, so normalise on the way in and out)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes: a guessed timezone would silently shift ordering and harvest windows."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the state store; pass a tz-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Hand back aware UTC whether the backend kept the offset (PostgreSQL) or not (SQLite)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(255), nullable=False),
    sa.Column("ticket_id", sa.String(1000), nullable=False),
    sa.Column("model_version", sa.String(255), nullable=True),
    sa.Column("predictions", sa.JSON(), nullable=False),
    sa.Column("decision", sa.JSON(), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("connector", "ticket_id"),
    sa.Index(None, "state", "connector"),
)
# The few entries whose decision missed a target (the report lists them), found without reading the rest.
# Literal SQL per backend: a partial index serves only a query whose condition is the same text, no parameter.
MISSED_TARGET = {
    "sqlite": sa.text("json_extract(decision, '$.\"missing\"') IS NOT NULL"),
    "postgresql": sa.text("(decision ->> 'missing') IS NOT NULL"),
}
sa.Index(
    "ix_ledger_missed_target",
    ledger.c.connector,
    sqlite_where=MISSED_TARGET["sqlite"],
    postgresql_where=MISSED_TARGET["postgresql"],
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("connector", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

training = sa.Table(
    "training",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(255), nullable=False),
    sa.Column("ticket_id", sa.String(1000), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("queue", sa.String(255), nullable=False),
    sa.Column("priority", sa.String(255), nullable=True),
    sa.Column("language", sa.String(32), nullable=True),
    sa.Column("closed_at", UTCDateTime(), nullable=False),
    sa.Column("harvested_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("connector", "ticket_id"),
    sa.Index(None, "closed_at"),
    sa.Index(None, "harvested_at"),
    # Covers the report's join (agreement): the final labels are read without touching the ticket text.
    sa.Index(None, "connector", "ticket_id", "queue", "priority"),
)

retrain_runs = sa.Table(
    "retrain_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
)

# What `ticketd forget` erased, so it can be shown that it was done and a later harvest does not bring it
# back: a ticket by its key, a person by the SHA-256 of their lower-cased address (never the address).
forgotten = sa.Table(
    "forgotten",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("connector", sa.String(255), nullable=True),
    sa.Column("ticket_id", sa.String(1000), nullable=True),
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Column("training_rows", sa.Integer, nullable=False),
    sa.Column("ledger_rows", sa.Integer, nullable=False),
)

# Several replicas on one PostgreSQL (daemon/runtime/leadership.py): who owns each connector (and the scheduler's
# jobs) now. `epoch` grows by one at every change of owner; every fenced write checks it in its own
# transaction, so a replica that lost a lease (paused past it, cut off) has its writes refused.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=True),
)

# Replicas alive now (a heartbeat each renewal), so leases spread: each takes its share, no more.
replicas = sa.Table(
    "replicas",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("seen_at", UTCDateTime(), nullable=False),
)

# The model store that several replicas share (daemon/state/model_versions.py): each version as a tar archive in
# chunks (bounded memory on both ends), and one `current` pointer row with its promotion stack. A replica's
# `model.store` directory is only a cache of these. SQLite gets the tables too and leaves them empty.
model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("number", sa.Integer, nullable=False, unique=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("model_metadata", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
)

model_chunks = sa.Table(
    "model_chunks",
    metadata,
    sa.Column("version", sa.String(32), sa.ForeignKey("model_versions.version", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

model_pointer = sa.Table(
    "model_pointer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("stack", sa.JSON(), nullable=False),
    sa.Column("serial", sa.BigInteger, nullable=False),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
    sa.Column("changed_by", sa.String(255), nullable=False),
)

# What the API of one replica accepted, for every replica to answer about (several replicas only):
# uploaded datasets (the normalised CSV and its summary) and training jobs' last known description.
datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("number", sa.Integer, nullable=False, unique=True),
    sa.Column("csv", sa.LargeBinary, nullable=False),
    sa.Column("summary", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

training_jobs = sa.Table(
    "training_jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("replica", sa.String(255), nullable=False),
    sa.Column("description", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The one training running in the cluster now (its holder also holds the session advisory lock), so any
# replica can say who trains, how far it got, and ask it to stop.
training_now = sa.Table(
    "training_now",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("who", sa.String(32), nullable=False),
    sa.Column("replica", sa.String(255), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("cancel", sa.Boolean, nullable=False),
    sa.Column("progress", sa.JSON(), nullable=True),
)

# Dashboard sessions (daemon/web/ui/session.py), so logging out ends a session on every replica and a restart keeps
# it: a session by the SHA-256 of its id (the id itself is only in the browser's signed cookie), the role and
# token fingerprint it was issued for, and when it ends.
ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Index(None, "expires_at"),
)
