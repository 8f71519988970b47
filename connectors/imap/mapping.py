"""MIME mail <-> Ticket: ids, cursors, text extraction, priorities as keywords or sender headers.

Ticket ids are the mail's Message-ID (`<...>`), because a UID changes whenever a message is moved
and ticketd must find the mail again after it (or a person) moved it. A mail without Message-ID
gets a positional id `uid:<uidvalidity>:<uid>:<folder>`, valid only while it stays in that folder.
Several mails sharing one Message-ID are the same mail delivered twice and count as one ticket.

Parsing never raises: a mail the `email` package cannot fully read still becomes a ticket with
whatever could be read (subject or body may be empty), so one bad mail never blocks the mailbox.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

from connectors._text import html_to_text, tidy

log = logging.getLogger(__name__)

PRIORITY_PREFIX = "$Priority_"
NOTE_KEYWORD = "$ticketd"

_CURSOR_PREFIX = "imap1:"


# ---------------------------------------------------------------------------------------- ids


@dataclass(frozen=True)
class MessageRef:
    """What a ticket id points at: a Message-ID, or a UID in one folder at one UIDVALIDITY."""

    message_id: str | None = None
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None


def normalize_message_id(value: str | None) -> str | None:
    """`<local@domain>` with folding whitespace removed, or None when the header is empty."""
    if value is None:
        return None
    core = "".join(str(value).split()).strip("<>")
    return f"<{core}>" if core else None


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


# ------------------------------------------------------------------------------------ cursors


def encode_cursor(state: dict[str, list[int]]) -> str:
    """Opaque cursor: folder -> [uidvalidity, last uid seen], JSON in URL-safe base64."""
    raw = json.dumps(state, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str | None) -> dict[str, tuple[int, int]]:
    """Inverse of `encode_cursor`; raises ValueError for anything this connector did not write."""
    if cursor is None:
        return {}
    if not cursor.startswith(_CURSOR_PREFIX):
        raise ValueError("not an IMAP cursor")
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX) :].encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise ValueError("corrupt IMAP cursor") from exc
    if not isinstance(data, dict):
        raise ValueError("corrupt IMAP cursor")
    out: dict[str, tuple[int, int]] = {}
    for folder, pair in data.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(n, int) for n in pair)):
            raise ValueError("corrupt IMAP cursor")
        out[str(folder)] = (pair[0], pair[1])
    return out


# ---------------------------------------------------------------------------------- priorities


def priority_keyword(priority: str) -> str:
    """The IMAP keyword that carries a priority, e.g. `$Priority_high`."""
    return f"{PRIORITY_PREFIX}{priority}"


def priority_from_flags(flags: tuple[str, ...], priorities: list[str]) -> str | None:
    """The configured priority whose keyword is set (keywords compare without case), if any."""
    by_keyword = {priority_keyword(p).lower(): p for p in priorities}
    for flag in flags:
        if flag.lower() in by_keyword:
            return by_keyword[flag.lower()]
    return None


_LEVELS = {"1": "high", "2": "high", "3": "medium", "4": "low", "5": "low"}
_WORDS = {"high": "high", "urgent": "high", "normal": "medium", "low": "low", "non-urgent": "low"}


def priority_from_headers(msg: Message, priorities: list[str]) -> str | None:
    """The sender's X-Priority / Importance / Priority header as a configured name (high, medium|normal, low)."""
    level = None
    x_priority = _header(msg, "X-Priority").strip()
    if x_priority[:1] in _LEVELS:
        level = _LEVELS[x_priority[:1]]
    else:
        for name in ("Importance", "Priority"):
            word = _header(msg, name).strip().lower()
            if word in _WORDS:
                level = _WORDS[word]
                break
    if level is None:
        return None
    by_name = {p.lower(): p for p in priorities}
    if level in by_name:
        return by_name[level]
    if level == "medium" and "normal" in by_name:
        return by_name["normal"]
    return None


# -------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedMail:
    """The parts of a mail a ticket needs; `defects` names what could not be read (no mail text)."""

    message_id: str | None
    subject: str
    body: str
    date: datetime | None
    message: Message | None
    defects: tuple[str, ...] = ()


def parse_mail(raw: bytes) -> ParsedMail:
    """Best-effort parse with the standard library (policy.default); never raises."""
    defects: list[str] = []
    try:
        msg: Message | None = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; this is a last resort
        defects.append(f"unparseable ({type(exc).__name__})")
        msg = None
    if msg is None:
        return ParsedMail(None, "", _lossy(raw), None, None, tuple(defects))
    message_id = None
    try:
        message_id = normalize_message_id(_header(msg, "Message-ID") or None)
    except Exception as exc:
        defects.append(f"Message-ID ({type(exc).__name__})")
    subject = ""
    try:
        subject = " ".join(_header(msg, "Subject").split())
    except Exception as exc:
        defects.append(f"Subject ({type(exc).__name__})")
    date = None
    try:
        date_text = _header(msg, "Date")
        if date_text:
            date = parsedate_to_datetime(date_text)
            if date.tzinfo is None:
                date = date.replace(tzinfo=UTC)
    except Exception as exc:
        defects.append(f"Date ({type(exc).__name__})")
    body = ""
    try:
        body = extract_body(msg, defects)
    except Exception as exc:
        defects.append(f"body ({type(exc).__name__})")
    return ParsedMail(message_id, subject, body, date, msg, tuple(defects))


def extract_body(msg: Message, defects: list[str] | None = None) -> str:
    """The first customer text: text/plain preferred, HTML made plain otherwise, attachments ignored."""
    if not isinstance(msg, EmailMessage):
        return ""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _part_text(part, defects if defects is not None else [])
    return html_to_text(text) if part.get_content_subtype() == "html" else tidy(text)


def _part_text(part: Message, defects: list[str]) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return _unsurrogate(content)
    except (LookupError, UnicodeError, ValueError) as exc:  # unknown charset, broken transfer encoding
        defects.append(f"body charset ({type(exc).__name__}), read as UTF-8/Latin-1")
    payload = part.get_payload(decode=True)
    return _lossy(payload) if isinstance(payload, bytes) else ""


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    text = str(value)
    if "\ufffd" in text:
        # Undeclared 8-bit bytes: the parsed header replaced them, the raw one still has them.
        for key, raw in msg.raw_items():
            if key.lower() == name.lower():
                return _unsurrogate(" ".join(str(raw).split()))
    return text


def _unsurrogate(text: str) -> str:
    """Undeclared 8-bit header/body bytes come back as surrogates: read them as UTF-8, else Latin-1."""
    if text.isascii() or not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _lossy(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
