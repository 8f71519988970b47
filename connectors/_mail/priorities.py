"""Priorities in mail: `$Priority_<name>` keywords that ticketd writes, else the sender's headers.

Keywords compare without case (IMAP atoms and Dovecot's keyword file both ignore it). `$ticketd`
marks a mail ticketd handled: a note's text cannot be stored in a mail.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.message import Message

from connectors._mail.message import header
from connectors.base import Named, TicketUpdate
from connectors.errors import TicketError

PRIORITY_PREFIX = "$Priority_"
NOTE_KEYWORD = "$ticketd"

_LEVELS = {"1": "high", "2": "high", "3": "medium", "4": "low", "5": "low"}
_WORDS = {"high": "high", "urgent": "high", "normal": "medium", "low": "low", "non-urgent": "low"}


def priority_keyword(priority: str) -> str:
    """The keyword that carries a priority, e.g. `$Priority_high`."""
    return f"{PRIORITY_PREFIX}{priority}"


def priority_names(priorities: list[str]) -> list[Named]:
    """The configured priorities as the taxonomy lists them: the keyword is the id."""
    return [Named(id=priority_keyword(p), name=p) for p in priorities]


def requested_priority(update: TicketUpdate, priorities: list[str]) -> str | None:
    """The configured spelling of the update's priority; TicketError names one that is not configured."""
    if update.priority is None:
        return None
    known = {p.lower(): p for p in priorities}
    if update.priority.lower() not in known:
        raise TicketError(f"unknown priority {update.priority!r}", ticket_id=update.ticket_id)
    return known[update.priority.lower()]


def priority_from_flags(flags: Iterable[str], priorities: list[str]) -> str | None:
    """The configured priority whose keyword is set, if any."""
    by_keyword = {priority_keyword(p).lower(): p for p in priorities}
    for flag in flags:
        if flag.lower() in by_keyword:
            return by_keyword[flag.lower()]
    return None


def priority_from_headers(msg: Message, priorities: list[str]) -> str | None:
    """The sender's X-Priority / Importance / Priority header as a configured name (high, medium|normal, low)."""
    level = None
    x_priority = header(msg, "X-Priority").strip()
    if x_priority[:1] in _LEVELS:
        level = _LEVELS[x_priority[:1]]
    else:
        for name in ("Importance", "Priority"):
            word = header(msg, name).strip().lower()
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


def mail_priority(keywords: Iterable[str], msg: Message | None, priorities: list[str]) -> str | None:
    """A mail's priority: its keyword when ticketd (or a person) set one, else what the sender asked for."""
    priority = priority_from_flags(keywords, priorities)
    if priority is None and msg is not None:
        priority = priority_from_headers(msg, priorities)
    return priority


def keyword_changes(have: Iterable[str], own_priority: str | None, note: bool) -> tuple[set[str], set[str]]:
    """(keywords to add, keywords to remove) so a mail carrying `have` carries what the update asks for.

    `own_priority` (a keyword) replaces every other priority keyword; `note` adds `$ticketd`. A transport that
    cannot store a keyword in a folder passes None / False for it.
    """
    have = list(have)
    lower = {k.lower() for k in have}
    wanted = [k for k in (own_priority, NOTE_KEYWORD if note else None) if k is not None]
    remove: set[str] = set()
    if own_priority is not None:
        prefix, own = PRIORITY_PREFIX.lower(), own_priority.lower()
        remove = {k for k in have if k.lower().startswith(prefix) and k.lower() != own}
    return {k for k in wanted if k.lower() not in lower}, remove
