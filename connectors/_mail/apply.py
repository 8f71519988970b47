"""Where a mail is when ticketd writes to it, and what that means: one rule for both mail connectors.

1. In the expected queue's folder: write the update there.
2. Else in the target folder: already done (Applied with nothing changed) — unless it lacks the
   keywords the update asks for, then a person put it there and it is left as it is (Skipped).
3. Else anywhere: a person moved it (Skipped, naming where); nowhere: deleted (Skipped).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from connectors._mail.queues import QueueFolders
from connectors.base import Applied, Outcome, Skipped, TicketUpdate

Found = TypeVar("Found")


def locate_and_apply(
    update: TicketUpdate,
    *,
    queues: QueueFolders,
    expected: str,
    target: str | None,
    folders: Collection[str],
    find: Callable[[str], Found | None],
    write: Callable[[str, Found], Applied],
    needs_keywords: Callable[[str, Found], bool],
    search: Callable[[set[str | None]], str | None],
) -> Outcome:
    """Apply `update` where the mail is; `find` returns a transport's handle on it in a folder, or None."""
    if expected in folders:
        found = find(expected)
        if found:
            return write(expected, found)

    if target is not None and target != expected and target in folders:
        found = find(target)
        if found:
            if needs_keywords(target, found):
                return Skipped(
                    update.ticket_id, f"already in queue {update.queue!r}, put there by someone else; left as it is"
                )
            return Applied(update.ticket_id, ())

    where = search({expected, target})
    if where is None:
        reason = f"no longer in queue {update.expected_queue!r} and not found in any folder (deleted?)"
    else:
        reason = f"no longer in queue {update.expected_queue!r}: someone moved it to {queues.describe(where)}"
    return Skipped(update.ticket_id, reason)
