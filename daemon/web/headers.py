"""The protective response headers, in one place: every API answer, error and page carries them."""

from __future__ import annotations

BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make the browser send `Origin: null` with our own forms
    "Cross-Origin-Resource-Policy": "same-origin",
}
# A JSON answer runs nothing, loads nothing and may be framed by nobody.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
API_HEADERS = {**BASE_HEADERS, "Content-Security-Policy": API_CSP, "Cache-Control": "no-store"}
