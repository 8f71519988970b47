"""Who is looking: a token exchanged for a signed session cookie, its role, and the form token against CSRF.

The cookie is HttpOnly and SameSite=Strict and carries no token, only the token's fingerprint, the
role and a per-session CSRF value, signed with a key derived from every configured token. So sessions
survive restarts and work across replicas that share the config, and removing or adding a token
(a SIGHUP reload) ends them. Every state-changing form repeats the CSRF value, and a request a browser
marks as cross-site is refused before it is looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from daemon.config import ApiSection

Role = Literal["read-only", "admin"]
COOKIE = "ticketd_session"
MAX_AGE_S = 12 * 3600  # a working day; then the login page again
_SALT = "ticketd-dashboard-session"


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: their role and the CSRF value their forms must carry."""

    role: Role
    csrf: str  # empty for the public read-only view: it cannot post anything
    public: bool = False

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


def issue(api: ApiSection, token: str, role: Role) -> str:
    """The cookie value for a successful login."""
    return str(_serializer(api).dumps({"f": fingerprint(token), "r": role, "c": secrets.token_urlsafe(24)}))


def viewer(api: ApiSection, request: Request) -> Viewer | None:
    """The request's viewer: a valid session, else the public read-only view where configured, else None."""
    value = request.cookies.get(COOKIE)
    if value:
        try:
            data = _serializer(api).loads(value, max_age=MAX_AGE_S)
        except BadSignature:  # also an expired one (SignatureExpired is a BadSignature)
            data = None
        if isinstance(data, dict):
            current = {fingerprint(t): role for t, role in _tokens(api).items()}
            if current.get(str(data.get("f"))) == data.get("r") and data.get("r") in ("read-only", "admin"):
                return Viewer(data["r"], str(data.get("c", "")))
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
