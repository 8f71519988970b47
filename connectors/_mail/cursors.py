"""Opaque cursors of the mail connectors: a prefix naming the format, then JSON in URL-safe base64."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from connectors.errors import ConnectorConfigError

T = TypeVar("T")


def encode(prefix: str, data: dict[str, Any]) -> str:
    """The cursor for `data`; keys sorted, so equal positions give equal cursors."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    return prefix + base64.urlsafe_b64encode(raw).decode("ascii")


def decode(prefix: str, cursor: str, what: str) -> dict[str, Any]:
    """The JSON object inside a cursor; ValueError for anything this format did not write."""
    if not cursor.startswith(prefix):
        raise ValueError(f"not a ticketd {what}")
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(cursor[len(prefix) :].encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise ValueError(f"corrupt {what}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"corrupt {what}")
    return data


def read(source: str, decoder: Callable[[str | None], T], cursor: str | None) -> T:
    """A connector's decoded cursor; one it cannot read is a configuration error, never a crash."""
    try:
        return decoder(cursor)
    except ValueError as exc:
        raise ConnectorConfigError(f"{source}: cursor rejected ({exc}); was it written by another connector?") from None
