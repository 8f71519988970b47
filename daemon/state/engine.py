"""Opening the state database (SQLite or PostgreSQL, migrated by Alembic) and its public read/write transactions.

`Database` is the engine every part of the state builds on: daemon/state/store.py composes the topic classes
(ledger, training store, retention, dashboard sessions, cluster) that derive from it into `State`, and the
repositories beside them (daemon/state/model_versions.py, daemon/state/uploads.py) take a `Database` and use
only its public `read()` and `write(fence)`. Operational failures come out as StateError without SQL parameters.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from connectors.secrets import redact_url
from daemon.errors import StateError
from daemon.logging import get_logger
from daemon.state import leases as leasing
from daemon.state.leases import Fence
from daemon.state.schema import VERSION_TABLE

log = get_logger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
KEYS_PER_QUERY = 500  # keys per IN (...) lookup, far below any backend's bound-parameter limit
_BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 0x7469636B  # "tick": serialises concurrent State.open migrations on one PostgreSQL database


def utcnow() -> datetime:
    """Current time, aware UTC."""
    return datetime.now(UTC)


def require_aware(*values: datetime | None) -> None:
    """Refuse naive datetimes up front (the column type would too, but wrapped in a SQLAlchemy StatementError)."""
    for value in values:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError(f"naive datetime {value.isoformat()} given to the state store; pass a tz-aware one")


def _dbapi_message(error: exc.SQLAlchemyError) -> str:
    """The driver's own message only: str(error) appends the SQL parameters, which may hold ticket text."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        return " ".join(str(error.orig).split()) or type(error.orig).__name__
    return str(error).split("\n", 1)[0]


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


class Database:
    """Sync access to the state database; every write commits before it returns."""

    def __init__(self, engine: Engine, shown_url: str) -> None:
        """Use State.open, which also migrates; this only wires an engine that is already at head."""
        self._engine = engine
        self._url = shown_url
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> Self:
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
            with self.write() as conn:
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

    def __enter__(self) -> Self:
        """Allow `with State.open(url) as state:`."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close on leaving the with-block."""
        self.close()

    def schema_version(self) -> str:
        """The database's current schema revision (the Alembic revision id)."""
        with self.read() as conn:
            heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
        return ",".join(sorted(heads))

    # -- what it is ----------------------------------------------------------------------------------------------

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

    @property
    def shared(self) -> bool:
        """Whether several processes may share this database as replicas (PostgreSQL; SQLite is one process)."""
        return self._engine.dialect.name == "postgresql"

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
    def write(self, fence: Fence | None = None) -> Iterator[Connection]:
        """One committed write transaction (BEGIN IMMEDIATE on SQLite); with `fence`, only while it holds."""
        with self._errors(), self._engine.connect() as conn:
            conn.execution_options(ticketd_write=True)
            with conn.begin():
                if fence is not None:
                    leasing.check(conn, fence)
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A short read transaction."""
        with self._errors(), self._engine.connect() as conn, conn.begin():
            yield conn
