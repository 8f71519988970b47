"""Where the dashboard's sessions live, so logout ends one for good: the state database, or memory without one."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

from daemon.state import session_digest  # by digest, as in the database: nothing kept is a usable id

if TYPE_CHECKING:
    from daemon.state import State

Role = Literal["read-only", "admin"]


class Sessions(Protocol):
    """Where sessions live, so logout ends one for good: the state database, or memory without one."""

    def add(self, session_id: str, role: Role, fingerprint: str, expires_at: datetime) -> None: ...

    def valid(self, session_id: str, role: Role, fingerprint: str) -> bool: ...

    def end(self, session_id: str) -> bool: ...


class DatabaseSessions:
    """Sessions in the state database: shared by every replica on it and kept across restarts."""

    def __init__(self, state: State) -> None:
        self.state = state

    def add(self, session_id: str, role: Role, fingerprint: str, expires_at: datetime) -> None:
        """Store a new session (the database prunes the expired ones)."""
        self.state.ui_session_add(session_id, role, fingerprint, expires_at)

    def valid(self, session_id: str, role: Role, fingerprint: str) -> bool:
        """Whether the session still exists, unexpired, for this role and token."""
        return self.state.ui_session_valid(session_id, role, fingerprint)

    def end(self, session_id: str) -> bool:
        """Delete the session; False if it was already gone."""
        return self.state.ui_session_end(session_id)


class MemorySessions:
    """Sessions of one process with no state database (Services built by hand): lost at exit, never shared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[Role, str, datetime]] = {}

    def add(self, session_id: str, role: Role, fingerprint: str, expires_at: datetime) -> None:
        """Keep a new session; drop the expired ones."""
        now = datetime.now(UTC)
        with self._lock:
            self._sessions = {k: v for k, v in self._sessions.items() if v[2] > now}
            self._sessions[session_digest(session_id)] = (role, fingerprint, expires_at)

    def valid(self, session_id: str, role: Role, fingerprint: str) -> bool:
        """Whether the session still exists, unexpired, for this role and token."""
        with self._lock:
            found = self._sessions.get(session_digest(session_id))
        return found is not None and found[:2] == (role, fingerprint) and found[2] > datetime.now(UTC)

    def end(self, session_id: str) -> bool:
        """Forget the session; False if it was already gone."""
        with self._lock:
            return self._sessions.pop(session_digest(session_id), None) is not None
