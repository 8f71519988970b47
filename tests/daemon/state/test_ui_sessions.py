"""Dashboard sessions in the state database: only a digest of the id is stored, logout ends them for every
process on the database, and expired ones neither count nor linger."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from daemon.state import State
from daemon.state.schema import ui_sessions

SID = "s3ssion-id-that-only-the-cookie-holds-0123456789"
LATER = datetime.now(UTC) + timedelta(hours=12)


def rows(state: State) -> list[sa.Row[Any]]:
    with state.read() as conn:
        return list(conn.execute(sa.select(ui_sessions.c.digest, ui_sessions.c.role, ui_sessions.c.fingerprint)))


def test_a_session_is_stored_by_its_digest_and_valid_only_for_its_role_and_token(state: State) -> None:
    state.ui_session_add(SID, "admin", "fp-admin", LATER)
    assert rows(state) == [(hashlib.sha256(SID.encode()).hexdigest(), "admin", "fp-admin")]  # never the id
    assert state.ui_session_valid(SID, "admin", "fp-admin")
    assert not state.ui_session_valid(SID, "read-only", "fp-admin")  # a cookie whose role was changed
    assert not state.ui_session_valid(SID, "admin", "fp-other")  # or whose token was
    assert not state.ui_session_valid("another-id", "admin", "fp-admin")


def test_logout_ends_it_for_every_process_on_the_database(state: State, url: str) -> None:
    state.ui_session_add(SID, "read-only", "fp", LATER)
    with State.open(url) as other:  # another replica, or the same one after a restart
        assert other.ui_session_valid(SID, "read-only", "fp")
        assert other.ui_session_end(SID) is True
        assert other.ui_session_end(SID) is False  # already ended
    assert not state.ui_session_valid(SID, "read-only", "fp")
    assert rows(state) == []


def test_expired_sessions_do_not_count_and_are_pruned_by_the_next_login(state: State) -> None:
    state.ui_session_add("old", "admin", "fp", datetime.now(UTC) - timedelta(seconds=1))
    assert not state.ui_session_valid("old", "admin", "fp")
    assert len(rows(state)) == 1
    state.ui_session_add(SID, "admin", "fp", LATER)
    assert [r.digest for r in rows(state)] == [hashlib.sha256(SID.encode()).hexdigest()]


def test_naive_expiry_is_refused(state: State) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        state.ui_session_add(SID, "admin", "fp", datetime.now() + timedelta(hours=1))
