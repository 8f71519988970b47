"""Who is looking: a token exchanged for a session the server can end, its role, and the form token against CSRF.

A login creates a session: a random id (`secrets`) stored in the state database by its SHA-256 only (never the
id), with the role, the token's fingerprint and when it expires (12 h). The browser gets an HttpOnly,
SameSite=Strict cookie holding no token, only the session id, the token's fingerprint, the role and a
per-session CSRF value, signed with a key derived from every configured token. A request is a session only
while the signature holds, the token is still configured for that role (removing or adding a token, a SIGHUP
reload, ends its sessions) and the session's row still exists and has not expired. Logout deletes the row, so
a cookie copied before it is worth nothing, on every replica sharing the database and after restarts alike.
If the database cannot be read, there is no session (one log line says why). Without any state (Services built
by hand in tests) the sessions live in memory instead. Every state-changing form repeats the CSRF value, and a
request a browser marks as cross-site is refused before it is looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from daemon.config import ApiSection
from daemon.errors import StateError
from daemon.logging import get_logger
from daemon.web.sessions import Role, Sessions

log = get_logger(__name__)

COOKIE = "ticketd_session"
MAX_AGE_S = 12 * 3600  # a working day; then the login page again
_SALT = "ticketd-dashboard-session"


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: their role and the CSRF value their forms must carry."""

    role: Role
    csrf: str  # empty for the public read-only view: it cannot post anything
    public: bool = False
    session: str = field(default="", repr=False)  # the server-side session's id, for logout; empty when public

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def _tokens(api: ApiSection) -> dict[str, Role]:
    tokens: dict[str, Role] = {t.get_secret_value(): "read-only" for t in api.read_tokens}
    tokens.update({t.get_secret_value(): "admin" for t in api.tokens})
    return tokens


def fingerprint(token: str) -> str:
    """What the cookie names a token by (never the token itself)."""
    return hashlib.sha256(b"ticketd-dashboard\0" + token.encode()).hexdigest()[:32]


def _serializer(api: ApiSection) -> URLSafeTimedSerializer:
    material = b"\0".join(sorted(t.encode() for t in _tokens(api)))
    return URLSafeTimedSerializer(hashlib.sha256(b"ticketd-dashboard-key\0" + material).digest(), salt=_SALT)


def role_for(api: ApiSection, token: str) -> Role | None:
    """The role of a token typed into the login page; constant time over every configured token."""
    found: Role | None = None
    for known, role in _tokens(api).items():
        if hmac.compare_digest(token.encode(), known.encode()):
            found = role
    return found


def issue(api: ApiSection, token: str, role: Role, sessions: Sessions) -> str:
    """Start a session for a successful login and return its cookie value; StateError if it cannot be stored.

    Blocking (a database write): call it off the event loop.
    """
    session_id = secrets.token_urlsafe(32)
    marked = fingerprint(token)
    sessions.add(session_id, role, marked, datetime.now(UTC) + timedelta(seconds=MAX_AGE_S))
    return str(_serializer(api).dumps({"f": marked, "r": role, "c": secrets.token_urlsafe(24), "s": session_id}))


def _live(sessions: Sessions, session_id: str, role: Role, marked: str) -> bool:
    """The session's row still exists; an unreadable database means no session (fail closed), logged once here."""
    try:
        return sessions.valid(session_id, role, marked)
    except StateError as exc:
        log.error("dashboard_session_unverifiable", error=str(exc), outcome="treated as logged out")
        return False


def viewer(api: ApiSection, request: Request, sessions: Sessions) -> Viewer | None:
    """The request's viewer: a valid, unended session, else the public read-only view where configured, else None.

    Blocking (a database read): FastAPI runs the sync dependency calling it in its thread pool.
    """
    value = request.cookies.get(COOKIE)
    if value:
        try:
            data = _serializer(api).loads(value, max_age=MAX_AGE_S)
        except BadSignature:  # also an expired one (SignatureExpired is a BadSignature)
            data = None
        if isinstance(data, dict):
            current = {fingerprint(t): role for t, role in _tokens(api).items()}
            marked, role, session_id = str(data.get("f")), data.get("r"), data.get("s")
            if (
                role in ("read-only", "admin")
                and current.get(marked) == role
                and isinstance(session_id, str)
                and session_id
                and _live(sessions, session_id, role, marked)
            ):
                return Viewer(role, str(data.get("c", "")), session=session_id)
    if api.public_dashboard:
        return Viewer("read-only", "", public=True)
    return None


def same_site(request: Request) -> bool:
    """False for a request the browser says came from another site, or whose Origin is not this server."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def csrf_ok(who: Viewer, given: str | None) -> bool:
    """The form's CSRF value is the session's (a public viewer has none, so it can never post)."""
    return bool(who.csrf) and given is not None and hmac.compare_digest(who.csrf.encode(), given.encode())
