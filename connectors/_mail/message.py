"""MIME mail -> the parts a ticket needs; parsing never raises.

A mail the `email` package cannot fully read still becomes a ticket with whatever could be read
(subject or body may be empty), so one bad mail never blocks the mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

from connectors._text import html_to_text, tidy


def normalize_message_id(value: str | None) -> str | None:
    """`<local@domain>` with folding whitespace removed, or None when the header is empty."""
    if value is None:
        return None
    core = "".join(str(value).split()).strip("<>")
    return f"<{core}>" if core else None


@dataclass(frozen=True)
class ParsedMail:
    """The parts of a mail a ticket needs; `defects` names what could not be read (no mail text)."""

    message_id: str | None
    subject: str
    body: str
    date: datetime | None
    message: Message | None
    defects: tuple[str, ...] = ()

    @property
    def is_mail(self) -> bool:
        """Whether it has any header a mail has: a file of random bytes or plain text has none, and is no ticket."""
        if self.message is None:
            return False
        try:
            return any(str(self.message.get(name, "")).strip() for name in MAIL_HEADERS)
        except Exception:  # a header so damaged that reading it raises still shows a header was there
            return True


MAIL_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "Received", "Return-Path", "Delivered-To")


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
        message_id = normalize_message_id(header(msg, "Message-ID") or None)
    except Exception as exc:
        defects.append(f"Message-ID ({type(exc).__name__})")
    subject = ""
    try:
        subject = " ".join(header(msg, "Subject").split())
    except Exception as exc:
        defects.append(f"Subject ({type(exc).__name__})")
    date = None
    try:
        date_text = header(msg, "Date")
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


def header(msg: Message, name: str) -> str:
    """A header as text; undeclared 8-bit bytes are read from the raw header (UTF-8, else Latin-1)."""
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
