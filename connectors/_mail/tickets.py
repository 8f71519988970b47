"""A parsed mail as the Ticket the daemon classifies."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import structlog

from connectors._mail.message import ParsedMail
from connectors._mail.priorities import mail_priority
from connectors.base import Ticket

log = structlog.get_logger(__name__)


def mail_ticket(
    parsed: ParsedMail,
    *,
    source: str,
    ticket_id: str,
    number: str,
    folder: str,
    queue: str,
    created_at: datetime,
    keywords: Iterable[str],
    priorities: list[str],
    closed_at: datetime | None = None,
    where: str = "",
) -> Ticket | None:
    """The ticket of one mail; a partly unreadable mail is delivered with what could be read, and said so.

    Something that is not a mail at all (no mail header: random bytes, a text file dropped into the folder)
    is no ticket: None, with one warning naming `where` (its file or folder and UID). It stays where it is;
    the folder's cursor moves past it, so the warning is not repeated on every poll.
    """
    if not parsed.is_mail:
        log.warning(
            f"{source}: not a mail (no mail headers); not classified, left where it is",
            file=where or folder,
            folder=folder,
        )
        return None
    if parsed.defects:
        log.warning(
            f"{source} mail partly unreadable; delivered with what could be read",
            ticket_id=ticket_id,
            folder=folder,
            defects=", ".join(parsed.defects),
        )
    return Ticket(
        id=ticket_id,
        number=number,
        subject=parsed.subject,
        body=parsed.body,
        created_at=created_at,
        queue=queue,
        priority=mail_priority(keywords, parsed.message, priorities),
        closed_at=closed_at,
    )


def one_per_mail(tickets: Iterable[Ticket | None]) -> list[Ticket]:
    """The same mail delivered twice (one Message-ID) is one ticket; the first copy wins."""
    out: dict[str, Ticket] = {}
    for ticket in tickets:
        if ticket is not None:
            out.setdefault(ticket.id, ticket)
    return list(out.values())
