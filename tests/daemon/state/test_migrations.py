"""Opening a state database: Alembic migrations, SQLite settings and the errors a user can run into."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from structlog.testing import capture_logs

from daemon.errors import StateError, TicketdError
from daemon.state import State
from daemon.state import engine as store_module
from daemon.state.schema import VERSION_TABLE, metadata

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(store_module.MIGRATIONS))
    return config


def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1
    return heads[0]


def test_fresh_database_reaches_head_and_reopen_is_a_no_op(url: str) -> None:
    with capture_logs() as logs, State.open(url) as state:
        assert state.schema_version() == head() == "0005"
        state.cursor_set("helpdesk", "new", "41")
    assert [e["event"] for e in logs] == ["state.migrated", "state.opened"]
    assert logs[0]["from_revision"] is None and logs[0]["to_revision"] == "0005"

    with capture_logs() as logs, State.open(url) as state:
        assert state.schema_version() == "0005"
        assert state.cursor_get("helpdesk", "new") == "41"
    assert [e["event"] for e in logs] == ["state.opened"]


def test_migrations_match_schema_module(url: str) -> None:
    State.open(url).close()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def _downgraded(url: str, revision: str) -> sa.Engine:
    """A database at head, migrated down to `revision`; the caller disposes of the engine."""
    State.open(url).close()
    engine = sa.create_engine(url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
    return engine


def test_downgrade_to_base_and_upgrade_again(url: str) -> None:
    engine = _downgraded(url, "base")
    try:
        assert set(sa.inspect(engine).get_table_names()) <= {VERSION_TABLE}
    finally:
        engine.dispose()
    with State.open(url) as state:
        assert state.schema_version() == head()
        assert state.ledger_entries() == []


def _left_by(url: str, revision: str) -> set[str]:
    """A database as a release at `revision` left it, with one cursor row written; its tables."""
    engine = _downgraded(url, revision)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO cursors (connector, kind, value, updated_at) VALUES ('a', 'new', '7', :t)"),
                {"t": T0},
            )
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_database_of_the_first_release_upgrades_with_its_data(url: str) -> None:
    """0001 -> 0002 adds the `forgotten` table and keeps every row."""
    assert "forgotten" not in _left_by(url, "0001")  # what the first release left on disk
    with capture_logs() as logs, State.open(url) as state:
        assert state.schema_version() == "0005"
        assert state.cursor_get("a", "new") == "7"
        assert state.forgotten() == (set(), set())
    assert logs[0]["from_revision"] == "0001" and logs[0]["to_revision"] == "0005"


def test_0005_only_adds_the_dashboard_sessions_table(url: str) -> None:
    """Expand-only: a 0004 database keeps every table and row, and gains `ui_sessions` (replicas still on 0004
    never notice it)."""
    before = _left_by(url, "0004")
    assert "ui_sessions" not in before
    with State.open(url) as state:
        assert state.schema_version() == "0005"
        assert state.cursor_get("a", "new") == "7"
        with state.read() as conn:
            assert set(sa.inspect(conn).get_table_names()) == before | {"ui_sessions"}


def test_database_from_a_newer_ticketd_is_refused(url: str) -> None:
    State.open(url).close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff0042'"))
    finally:
        engine.dispose()
    with pytest.raises(StateError, match="ffff0042 is newer than this ticketd") as caught:
        State.open(url)
    assert isinstance(caught.value, TicketdError)
    assert head() in str(caught.value)


def test_sqlite_settings(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with State.open(f"sqlite:///{path}") as state, state.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == store_module._BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1  # whatever the build's default
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_failed_write_is_rolled_back(tmp_path: Path) -> None:
    with State.open(f"sqlite:///{tmp_path / 'state.db'}") as state:
        with pytest.raises(RuntimeError), state.write() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO cursors (connector, kind, value, updated_at) VALUES ('a', 'new', 'x', '2026-01-01')"
                )
            )
            raise RuntimeError("boom")
        assert state.cursor_get("a", "new") is None


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(StateError, match="not a database") as caught:
        State.open(f"sqlite:///{path}")
    assert str(path) in str(caught.value)


def test_directory_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot create its directory") as caught:
        State.open(f"sqlite:///{blocker}/sub/state.db")
    assert str(blocker) in str(caught.value)


def test_database_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="unable to open database file") as caught:
        State.open(f"sqlite:///{tmp_path}")
    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a valid database URL"),
        ("nosuchdb://user:s3cret@host/db", "unsupported database type 'nosuchdb'"),
        ("mysql+nosuchdriver://user:s3cret@host/db", "unsupported database type"),
        ("postgresql+psycopg://user:s3cret@host:notaport/db", "not a valid database URL"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StateError, match=message) as caught:
        State.open(url)
    assert "s3cret" not in str(caught.value)


def test_unreachable_server_message_hides_the_password() -> None:
    pytest.importorskip("psycopg", reason="needs the psycopg driver")
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with capture_logs() as logs, pytest.raises(StateError) as caught:
        State.open(f"postgresql+psycopg://ticketd:s3cret@127.0.0.1:{port}/state?connect_timeout=5")
    message = str(caught.value)
    assert f"postgresql+psycopg://ticketd:***@127.0.0.1:{port}/state" in message
    assert "s3cret" not in message and "s3cret" not in repr(logs)


def test_locked_database_raises_state_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "state.db"
    url = f"sqlite:///{path}"
    state = State.open(url)
    try:
        state.cursor_get("warm", "up")
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StateError, match="database is locked") as caught:
                state.cursor_set("helpdesk", "new", "1")
            assert str(path) in str(caught.value)
            with pytest.raises(StateError, match="locked"):
                State.open(url)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        state.cursor_set("helpdesk", "new", "1")
        assert state.cursor_get("helpdesk", "new") == "1"
    finally:
        state.close()


def test_memory_database(tmp_path: Path) -> None:
    with State.open("sqlite://") as state:
        assert state.schema_version() == "0005"
        state.retrain_record(T0, T0, "skipped", {"reason": "too few examples"})
        last = state.retrain_last()
        assert last is not None and last["outcome"] == "skipped"


def test_the_report_and_the_pipeline_queries_use_indexes(tmp_path: Path) -> None:
    """SQLite's query plans at a year's scale: lookups search an index, the report never reads the ticket text."""
    from daemon.state.schema import ledger, training

    with State.open(f"sqlite:///{tmp_path / 'state.db'}") as state, state.write() as conn:
        conn.exec_driver_sql("ANALYZE")

        def plan(query: Any) -> str:
            sql = str(query.compile(conn.engine, compile_kwargs={"literal_binds": True}))
            return " | ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))

        joined = ledger.join(
            training, sa.and_(training.c.connector == ledger.c.connector, training.c.ticket_id == ledger.c.ticket_id)
        )
        agreement = (
            sa.select(ledger.c.predictions[("queue", "label")].as_string(), training.c.queue, sa.func.count())
            .select_from(joined)
            .where(ledger.c.connector == "helpdesk")
            .group_by(ledger.c.predictions[("queue", "label")].as_string(), training.c.queue)
        )
        text_free = plan(agreement)
        assert "COVERING INDEX ix_training_connector_ticket_id_queue_priority" in text_free, text_free
        lookup = plan(sa.select(ledger).where(ledger.c.connector == "helpdesk", ledger.c.ticket_id == "7"))
        assert "USING INDEX" in lookup, lookup
        from daemon.state.schema import MISSED_TARGET

        missed = plan(sa.select(ledger).where(MISSED_TARGET["sqlite"]))
        assert "ix_ledger_missed_target" in missed, missed
        purge = plan(sa.delete(training).where(training.c.closed_at < T0))
        assert "ix_training_closed_at" in purge, purge
