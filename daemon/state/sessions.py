"""Dashboard sessions (daemon/web/ui/session.py), kept in the database so that every replica knows them."""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa

from daemon.state.engine import Database, require_aware, utcnow
from daemon.state.schema import ui_sessions


def session_digest(session_id: str) -> str:
    """What a dashboard session is stored under: its SHA-256, so a copy of the database logs nobody in."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class DashboardSessions(Database):
    """Sessions by their id's digest: issued at login, checked per request, ended at logout."""

    def ui_session_add(self, session_id: str, role: str, fingerprint: str, expires_at: datetime) -> None:
        """Record a new dashboard session (by its id's SHA-256 only); sessions already expired are pruned."""
        require_aware(expires_at)
        now = utcnow()
        with self.write() as conn:
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
        with self.read() as conn:
            row = conn.execute(query).one_or_none()
        return row is not None and row.role == role and row.fingerprint == fingerprint and row.expires_at > utcnow()

    def ui_session_end(self, session_id: str) -> bool:
        """End a session (logout) for every replica at once; False if it had already ended or never existed."""
        with self.write() as conn:
            deleted = conn.execute(sa.delete(ui_sessions).where(ui_sessions.c.digest == session_digest(session_id)))
        return bool(deleted.rowcount)
