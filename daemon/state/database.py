"""The daemon's persistent state (routing ledger, cursors, training store, retrain runs) behind a small sync API."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine, make_url

from connectors.secrets import redact_url
from daemon.errors import StateError
from daemon.logging import get_logger
from daemon.state import leases as leasing
from daemon.state.leases import Fence
from daemon.state.schema import (
    MISSED_TARGET,
    VERSION_TABLE,
    cursors,
    forgotten,
    ledger,
    retrain_runs,
    training,
    ui_sessions,
)

if TYPE_CHECKING:
    from daemon.state.model_versions import DatabaseVersions

log = get_logger(__name__)
_YIELD_ROWS = 2000  # training rows fetched per round trip when the store is read

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MODES = frozenset({"live", "shadow"})
LEDGER_STATES = frozenset({"pending", "applied", "skipped", "shadow", "failed"})
_BUSY_TIMEOUT_MS = 30_000
_CHUNK = 500  # keys per IN (...) lookup, far below any backend's bound-parameter limit
_PG_MIGRATION_LOCK = 0x7469636B  # "tick": serialises concurrent State.open migrations on one PostgreSQL database

# The two writes every routed ticket makes, built once with bound parameters: SQLAlchemy then reuses their cache
# key and compiled form instead of rebuilding both from literal values per call (half their CPU time).
_LEDGER_INSERT = sa.insert(ledger)
_LEDGER_FINISH = (
    sa.update(ledger)
    .where(ledger.c.connector == sa.bindparam("key_connector"), ledger.c.ticket_id == sa.bindparam("key_ticket_id"))
    .values(state=sa.bindparam("state"), detail=sa.bindparam("detail"), updated_at=sa.bindparam("updated_at"))
)


@dataclass(frozen=True)
class LedgerEntry:
    """One routing decision per (connector, ticket_id): the row that makes routing exactly-once."""

    connector: str
    ticket_id: str
    model_version: str | None
    predictions: dict[str, dict[str, Any]]
    decision: dict[str, Any]
    mode: str
    state: str
    detail: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)  # a retrain holds the whole store: no per-row __dict__
class TrainingRow:
    """A harvested closed ticket with the labels the helpdesk's people gave it."""

    connector: str
    ticket_id: str
    text: str
    queue: str
    priority: str | None
    language: str | None
    closed_at: datetime
    harvested_at: datetime


def _dbapi_message(error: exc.SQLAlchemyError) -> str:
    """The driver's own message only: str(error) appends the SQL parameters, which may hold ticket text."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        return " ".join(str(error.orig).split()) or type(error.orig).__name__
    return str(error).split("\n", 1)[0]


def _now() -> datetime:
    """Current time, aware UTC."""
    return datetime.now(UTC)


def session_digest(session_id: str) -> str:
    """What a dashboard session is stored under: its SHA-256, so a copy of the database logs nobody in."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def _check_state(state: str) -> None:
    """Catch typos in ledger states before they reach the database, where nothing would complain."""
    if state not in LEDGER_STATES:
        raise ValueError(f"unknown ledger state {state!r}; expected one of {sorted(LEDGER_STATES)}")


def _aware(*values: datetime | None) -> None:
    """Refuse naive datetimes up front (the column type would too, but wrapped in a SQLAlchemy StatementError)."""
    for value in values:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError(f"naive datetime {value.isoformat()} given to the state store; pass a tz-aware one")


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


def _prepare_sqlite(url: URL, shown: str) -> None:
    """Create the database file's parent directories, so a fresh state directory just works."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StateError(f"state database {shown}: cannot create its directory: {error.strerror or error}") from error


def _wal(cursor: Any) -> None:
    """Switch a new database to WAL; the switch needs an exclusive lock and SQLite does not wait for it.

    WAL is persistent, so only the first opens of a new file race for it: they retry within the busy timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL, busy timeout and our own BEGIN, so writers queue up instead of failing with 'database is locked'."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            _wal(cursor)
            # With WAL, NORMAL only risks the last commits on power loss (never corruption); FULL fsyncs every commit.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # A deleted row's bytes are overwritten, not left in a free page: `ticketd forget` really erases.
            cursor.execute("PRAGMA secure_delete = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred read-then-write transaction could otherwise hit
        # SQLITE_BUSY on upgrade, which the busy timeout does not retry.
        immediate = conn.get_execution_options().get("ticketd_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class State:
    """Sync access to the state database; every write commits before it returns."""

    def __init__(self, engine: Engine, shown_url: str) -> None:
        """Use State.open, which also migrates; this only wires an engine that is already at head."""
        self._engine = engine
        self._url = shown_url
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> State:
        """Connect (creating a SQLite file and its directories if needed) and migrate to the newest schema."""
        shown = redact_url(url)
        try:
            parsed = make_url(url)
        except (exc.ArgumentError, ValueError) as error:
            raise StateError(
                f"state database {shown}: not a valid database URL (expected sqlite:///PATH or "
                "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB)"
            ) from error
        if parsed.drivername in ("postgresql", "postgres"):  # e.g. CloudNativePG's `uri`: psycopg 3 is installed
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_backend_name() == "sqlite":
            _prepare_sqlite(parsed, shown)
        try:
            engine = sa.create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
        except exc.NoSuchModuleError as error:
            raise StateError(
                f"state database {shown}: unsupported database type {parsed.drivername!r} (use sqlite:/// or "
                "postgresql+psycopg://)"
            ) from error
        except ImportError as error:
            raise StateError(
                f"state database {shown}: the driver for {parsed.drivername!r} is not installed ({error.name})"
            ) from error
        except (exc.ArgumentError, TypeError, ValueError) as error:
            raise StateError(f"state database {shown}: {error}") from error
        if parsed.get_backend_name() == "sqlite":
            _install_sqlite_hooks(engine)
        state = cls(engine, shown)
        try:
            state._migrate()
        except BaseException:
            engine.dispose()
            raise
        return state

    def _migrate(self) -> None:
        """Bring the schema to head in one transaction; refuse a database written by a newer ticketd."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        script = ScriptDirectory.from_config(config)
        heads = set(script.get_heads())
        try:
            with self._write() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
                unknown = [rev for rev in current if not self._known(script, rev)]
                if unknown:
                    raise StateError(
                        f"state database {self._url}: schema revision {', '.join(unknown)} is newer than this "
                        f"ticketd knows (latest {', '.join(sorted(heads))}); upgrade ticketd or point state.url "
                        "at another database"
                    )
                if set(current) != heads:
                    config.attributes["connection"] = conn
                    command.upgrade(config, "heads")
                    log.info(
                        "state.migrated",
                        url=self._url,
                        from_revision=",".join(current) or None,
                        to_revision=",".join(sorted(heads)),
                    )
        except StateError:
            raise
        except exc.SQLAlchemyError as error:
            raise StateError(f"state database {self._url}: cannot open: {_dbapi_message(error)}") from error
        log.info("state.opened", url=self._url, revision=",".join(sorted(heads)))

    @staticmethod
    def _known(script: ScriptDirectory, revision: str) -> bool:
        """Whether our migration scripts contain `revision`."""
        try:
            return script.get_revision(revision) is not None
        except Exception:
            return False

    def close(self) -> None:
        """Release all connections; the State cannot be used afterwards."""
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> State:
        """Allow `with State.open(url) as state:`."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close on leaving the with-block."""
        self.close()

    def schema_version(self) -> str:
        """The database's current schema revision (the Alembic revision id)."""
        with self._read() as conn:
            heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
        return ",".join(sorted(heads))

    # -- connections ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn operational failures (locked, disk full, server gone) into StateError without SQL parameters."""
        if self._closed:
            raise RuntimeError("State is closed")
        try:
            yield
        except exc.IntegrityError:
            raise
        except (exc.OperationalError, exc.DatabaseError, exc.InterfaceError) as error:
            raise StateError(f"state database {self._url}: {_dbapi_message(error)}") from error

    @contextlib.contextmanager
    def _write(self, fence: Fence | None = None) -> Iterator[Connection]:
        """One committed write transaction (BEGIN IMMEDIATE on SQLite); with `fence`, only while it holds."""
        with self._errors(), self._engine.connect() as conn:
            conn.execution_options(ticketd_write=True)
            with conn.begin():
                if fence is not None:
                    leasing.check(conn, fence)
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A short read transaction."""
        with self._errors(), self._engine.connect() as conn, conn.begin():
            yield conn

    # -- ledger --------------------------------------------------------------------------------------------------

    def ledger_get(self, connector: str, ticket_id: str) -> LedgerEntry | None:
        """The ledger entry for one ticket, if it was ever routed."""
        query = sa.select(ledger).where(ledger.c.connector == connector, ledger.c.ticket_id == ticket_id)
        with self._read() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else _entry(row)

    def ledger_known(self, connector: str, ticket_ids: Sequence[str]) -> set[str]:
        """Which of these tickets have a ledger entry: one query per page instead of one per ticket."""
        found: set[str] = set()
        ids = list(dict.fromkeys(ticket_ids))
        with self._read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = sa.select(ledger.c.ticket_id).where(
                    ledger.c.connector == connector, ledger.c.ticket_id.in_(ids[start : start + _CHUNK])
                )
                found.update(conn.execute(query).scalars())
        return found

    def ledger_begin(self, entry: LedgerEntry, fence: Fence | None = None) -> bool:
        """Claim a ticket atomically: True if this call inserted it, False if it was already in the ledger."""
        _check_state(entry.state)
        _aware(entry.created_at, entry.updated_at)
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
            with self._write(fence) as conn:
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
            "updated_at": _now(),
        }
        with self._write(fence) as conn:
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
        with self._read() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def ledger_counts(self, since: datetime | None = None) -> dict[tuple[str, str], int]:
        """Number of entries per (connector, state), for reports and metrics; `since`: created from then on."""
        _aware(since)
        query = sa.select(ledger.c.connector, ledger.c.state, sa.func.count()).group_by(
            ledger.c.connector, ledger.c.state
        )
        if since is not None:
            query = query.where(ledger.c.created_at >= since)
        with self._read() as conn:
            return {(connector, state): int(n) for connector, state, n in conn.execute(query)}

    # -- cursors -------------------------------------------------------------------------------------------------

    def cursor_get(self, connector: str, kind: str) -> str | None:
        """The connector's saved position for `kind` ("new" or "closed"), or None before the first poll."""
        query = sa.select(cursors.c.value).where(cursors.c.connector == connector, cursors.c.kind == kind)
        with self._read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def cursor_set(self, connector: str, kind: str, value: str | None, fence: Fence | None = None) -> None:
        """Save the connector's position (None resets it to "start over")."""
        values = {"connector": connector, "kind": kind, "value": value, "updated_at": _now()}
        with self._write(fence) as conn:
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

    # -- leases (several replicas on PostgreSQL; daemon/runtime/leadership.py) ---------------------------------------

    @staticmethod
    def is_shared_url(url: str) -> bool:
        """Whether a state URL names PostgreSQL, which several replicas share (without connecting)."""
        try:
            return make_url(url).get_backend_name() in ("postgresql", "postgres")
        except (exc.ArgumentError, ValueError):
            return False

    @property
    def url(self) -> str:
        """The database URL with its password masked, for messages."""
        return self._url

    def model_versions(self, who: str) -> DatabaseVersions | None:
        """The model store's database side on PostgreSQL (several replicas share it); None on SQLite."""
        from daemon.state.model_versions import DatabaseVersions

        return DatabaseVersions(self, who) if self.shared else None

    @property
    def shared(self) -> bool:
        """Whether several processes may share this database as replicas (PostgreSQL; SQLite is one process)."""
        return self._engine.dialect.name == "postgresql"

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
        with self._write(fence):
            pass

    def lease_take(self, name: str, owner: str, ttl: float, *, seen: int, force: bool = False) -> Fence | None:
        """Compare-and-set: owner at `seen` + 1 if the lease is still at epoch `seen` and may be taken."""
        try:
            with self._write() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")  # a stalled writer holds the row: next round
                leasing.ensure(conn, name)
                return leasing.take(conn, name, owner, ttl, seen=seen, force=force)
        except StateError as error:
            if getattr(getattr(error.__cause__, "orig", None), "sqlstate", None) == "55P03":  # lock_not_available
                return None
            raise

    def lease_renew(self, fence: Fence, ttl: float) -> bool:
        with self._write() as conn:
            return leasing.renew(conn, fence, ttl)

    def lease_release(self, fence: Fence) -> None:
        with self._write() as conn:
            leasing.release(conn, fence)

    def leases(self) -> list[leasing.Lease]:
        with self._read() as conn:
            return leasing.listed(conn)

    def replica_beat(self, owner: str, ttl: float) -> int:
        with self._write() as conn:
            return leasing.beat(conn, owner, ttl)

    def replica_gone(self, owner: str) -> None:
        with self._write() as conn:
            leasing.gone(conn, owner)

    def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL NOTIFY on `channel` (sent when the transaction commits)."""
        with self._write() as conn:
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

    # -- training store ------------------------------------------------------------------------------------------

    def training_add(self, rows: Sequence[TrainingRow]) -> int:
        """Store harvested tickets, one row per (connector, ticket_id) where the later close wins; count changes."""
        latest: dict[tuple[str, str], TrainingRow] = {}
        for row in rows:
            _aware(row.closed_at, row.harvested_at)
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
        with self._write() as conn:
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
            for start in range(0, len(ids), _CHUNK):
                query = sa.select(training).where(
                    training.c.connector == connector, training.c.ticket_id.in_(ids[start : start + _CHUNK])
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
        with self._read() as conn:
            for row in conn.execution_options(yield_per=_YIELD_ROWS).execute(query):
                yield _training_row(row)

    def training_count_since(self, when: datetime | None) -> int:
        """Rows harvested (new or relabelled) strictly after `when`; all rows for None."""
        _aware(when)
        query = sa.select(sa.func.count()).select_from(training)
        if when is not None:
            query = query.where(training.c.harvested_at > when)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

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
        with self._read() as conn:
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
        _aware(since)
        routed = ledger.c.decision[("routed", "queue")].as_boolean()
        query = (
            sa.select(ledger.c.connector, sa.func.count())
            .where(ledger.c.created_at >= since, routed.is_(True))
            .group_by(ledger.c.connector)
        )
        with self._read() as conn:
            return {str(connector): int(n) for connector, n in conn.execute(query)}

    def agreement_by_day(
        self, connector: str, thresholds: Mapping[str, float], since: datetime
    ) -> dict[str, list[tuple[date, str, str, bool, int]]]:
        """As agreement_counts, per UTC day the ticket closed on (from `since`): the dashboard's weekly agreement."""
        _aware(since)
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
        with self._read() as conn:
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
        with self._read() as conn:
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
        with self._read() as conn:
            return sorted(str(c) for c in conn.execute(sa.select(ledger.c.connector).distinct()).scalars())

    # -- retention -----------------------------------------------------------------------------------------------

    def purge(self, *, training_before: datetime | None, ledger_before: datetime | None) -> tuple[int, int]:
        """Delete training rows closed before `training_before`; strip finished ledger entries last updated before
        `ledger_before` of their predictions, decision and detail (the entry stays: never routed twice).

        Returns (training rows deleted, ledger entries stripped); None for a bound purges nothing of that kind.
        """
        _aware(training_before, ledger_before)
        deleted = stripped = 0
        with self._write() as conn:
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
        with self._write() as conn:
            n_training = conn.execute(sa.delete(training).where(*where_t)).rowcount
            n_ledger = conn.execute(sa.update(ledger).where(*where_l).values(detail=None)).rowcount
            conn.execute(
                sa.insert(forgotten).values(
                    at=_now(),
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
        with self._write() as conn:
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
                    at=_now(), kind="address", digest=digest, training_rows=n_training, ledger_rows=n_ledger
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
        with self._read() as conn:
            rows = conn.execute(
                sa.select(forgotten.c.kind, forgotten.c.connector, forgotten.c.ticket_id, forgotten.c.digest)
            ).all()
        tickets = {(r.connector, str(r.ticket_id)) for r in rows if r.kind == "ticket"}
        digests = {str(r.digest) for r in rows if r.kind == "address"}
        return tickets, digests

    # -- retrain runs --------------------------------------------------------------------------------------------

    def retrain_record(self, started_at: datetime, finished_at: datetime, outcome: str, detail: dict[str, Any]) -> None:
        """Remember one retrain attempt for reports and metrics."""
        _aware(started_at, finished_at)
        with self._write() as conn:
            conn.execute(
                sa.insert(retrain_runs).values(
                    started_at=started_at, finished_at=finished_at, outcome=outcome, detail=detail
                )
            )

    def retrain_history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest recorded retrain attempts first (champion against challenger, for the dashboard)."""
        query = sa.select(retrain_runs).order_by(retrain_runs.c.id.desc()).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            {"started_at": r.started_at, "finished_at": r.finished_at, "outcome": r.outcome, "detail": r.detail}
            for r in rows
        ]

    def retrain_last(self) -> dict[str, Any] | None:
        """The most recently recorded retrain attempt, or None if there was none."""
        query = sa.select(retrain_runs).order_by(retrain_runs.c.id.desc()).limit(1)
        with self._read() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        return {
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "outcome": row.outcome,
            "detail": row.detail,
        }

    # -- dashboard sessions (daemon/web/ui/session.py) ---------------------------------------------------------------

    def ui_session_add(self, session_id: str, role: str, fingerprint: str, expires_at: datetime) -> None:
        """Record a new dashboard session (by its id's SHA-256 only); sessions already expired are pruned."""
        _aware(expires_at)
        now = _now()
        with self._write() as conn:
            conn.execute(sa.delete(ui_sessions).where(ui_sessions.c.expires_at <= now))
            conn.execute(
                sa.insert(ui_sessions).values(
                    digest=session_digest(session_id),
                    role=role,
                    fingerprint=fingerprint,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    def ui_session_valid(self, session_id: str, role: str, fingerprint: str) -> bool:
        """Whether this session was issued for this role and token and has neither ended nor expired."""
        query = sa.select(ui_sessions.c.role, ui_sessions.c.fingerprint, ui_sessions.c.expires_at).where(
            ui_sessions.c.digest == session_digest(session_id)
        )
        with self._read() as conn:
            row = conn.execute(query).one_or_none()
        return row is not None and row.role == role and row.fingerprint == fingerprint and row.expires_at > _now()

    def ui_session_end(self, session_id: str) -> bool:
        """End a session (logout) for every replica at once; False if it had already ended or never existed."""
        with self._write() as conn:
            deleted = conn.execute(sa.delete(ui_sessions).where(ui_sessions.c.digest == session_digest(session_id)))
        return bool(deleted.rowcount)
