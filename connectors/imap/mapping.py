"""IMAP ticket ids and cursors; the mail itself is read by `connectors._mail.message`.

Ticket ids are the mail's Message-ID (`<...>`), because a UID changes whenever a message is moved
and ticketd must find the mail again after it (or a person) moved it. A mail without Message-ID
gets a positional id `uid:<uidvalidity>:<uid>:<folder>`, valid only while it stays in that folder.
Several mails sharing one Message-ID are the same mail delivered twice and count as one ticket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connectors._mail import cursors

_CURSOR_PREFIX = "imap1:"


@dataclass(frozen=True)
class MessageRef:
    """What a ticket id points at: a Message-ID, or a UID in one folder at one UIDVALIDITY."""

    message_id: str | None = None
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None


def ticket_id(message_id: str | None, folder: str, uidvalidity: int, uid: int) -> str:
    """The stable id: the Message-ID, else the position (see the module docstring)."""
    return message_id or f"uid:{uidvalidity}:{uid}:{folder}"


def parse_ticket_id(value: str) -> MessageRef | None:
    """The reference inside a ticket id, or None when it is not one of ours."""
    value = value.strip()
    if len(value) > 2 and value.startswith("<") and value.endswith(">"):
        return MessageRef(message_id=value)
    match = re.fullmatch(r"uid:(\d+):(\d+):(.+)", value, flags=re.DOTALL)
    if match:
        return MessageRef(folder=match.group(3), uidvalidity=int(match.group(1)), uid=int(match.group(2)))
    return None


def encode_cursor(state: dict[str, list[int]]) -> str:
    """Opaque cursor: folder -> [uidvalidity, last uid seen]."""
    return cursors.encode(_CURSOR_PREFIX, dict(state))


def decode_cursor(cursor: str | None) -> dict[str, tuple[int, int]]:
    """Inverse of `encode_cursor`; raises ValueError for anything this connector did not write."""
    if cursor is None:
        return {}
    out: dict[str, tuple[int, int]] = {}
    for folder, pair in cursors.decode(_CURSOR_PREFIX, cursor, "IMAP cursor").items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(n, int) for n in pair)):
            raise ValueError("corrupt IMAP cursor")
        out[str(folder)] = (pair[0], pair[1])
    return out
