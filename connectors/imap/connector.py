"""A shared IMAP mailbox as a helpdesk: the inbound folder holds new tickets, one folder per queue.

Semantics, since IMAP has no tickets:
- New tickets are the mails in `inbound_folder` (not flagged \\Deleted), in UID order. The cursor
  holds (folder, UIDVALIDITY, last UID). When UIDVALIDITY changes (the folder was re-created or
  rebuilt) UIDs mean nothing any more: the connector logs a warning and starts that folder over,
  so every mail still there is delivered again, with the same ids (Message-IDs) as before:
  nothing is lost, and the repeats carry ids the daemon has already seen.
- Closed tickets are mails people filed into queue folders; label = the folder's queue name,
  priority = the `$Priority_<name>` keyword, else the sender's X-Priority/Importance header.
  One (UIDVALIDITY, last UID) per folder in the cursor, resynced like the inbound. `closed_at` is
  None: IMAP does not record when a mail was filed.
- `apply` moves the mail (UID MOVE, or COPY + \\Deleted + UID EXPUNGE) into the queue's folder
  after setting the priority keyword, so a mail that arrived there by our hand always carries it.
  The mail is found by Message-ID, first in the expected queue's folder, then in the target
  (already done: Applied with no changes), then anywhere (a person moved it: Skipped, naming where).
- `Ticket.number` is the mail's UID in the folder it was fetched from: for display only, since
  a move gives the mail a new UID.
- A note cannot be stored: mail is immutable, and rewriting it would break signatures. The text is
  dropped; the keyword `$ticketd` marks the mail instead, so people can see ticketd handled it.
- The priority keyword needs `\\*` in the folder's PERMANENTFLAGS; without it priority is not
  written (a warning is logged) and not reported as changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import httpx
import structlog

from connectors.base import Applied, Connector, ConnectorConfig, Named, Outcome, Page, Skipped, Ticket, TicketUpdate
from connectors.errors import ConfigError, TicketError
from connectors.imap import mapping
from connectors.imap.client import DELETED, Fetched, Folder, FolderMissing, Selected, Session, in_session
from connectors.imap.config import ImapConfig

log = structlog.get_logger(__name__)


class ImapConnector(Connector):
    """IMAP folders as queues, keywords as priorities; one short IMAP session per call."""

    type_name = "imap"
    config_model = ImapConfig
    closed_means_confirmed = False

    def __init__(self, config: ImapConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, config: ConnectorConfig, client: httpx.AsyncClient) -> ImapConnector:
        """IMAP speaks its own protocol, so the daemon's HTTP client is not used."""
        if not isinstance(config, ImapConfig):
            raise ConfigError(f"imap connector needs an ImapConfig, got {type(config).__name__}")
        return cls(config)

    # ------------------------------------------------------------------------------ taxonomy

    @property
    def _inbound(self) -> str:
        return _canonical(self.config.inbound_folder)

    @property
    def inbound_queue(self) -> str:
        """The queue name of the inbound folder: its queue_folders name if it has one, else the folder."""
        for name, folder in self.config.queue_folders.items():
            if _canonical(folder) == self._inbound:
                return name
        return self._inbound

    def _queue_name(self, folder: str, delimiter: str) -> str | None:
        for name, mapped in self.config.queue_folders.items():
            if _canonical(mapped) == folder:
                return name
        if folder == self._inbound:
            return self.inbound_queue
        prefix = self.config.queue_root + delimiter
        if folder.startswith(prefix) and len(folder) > len(prefix):
            return folder[len(prefix) :]
        return None

    def _folder_for(self, queue: str, delimiter: str) -> str:
        if queue in self.config.queue_folders:
            return _canonical(self.config.queue_folders[queue])
        if queue == self.inbound_queue:
            return self._inbound
        return f"{self.config.queue_root}{delimiter}{queue}"

    def _delimiter(self, folders: list[Folder]) -> str:
        by_name = {f.name: f for f in folders}
        for candidate in (self.config.queue_root, self._inbound, "INBOX"):
            folder = by_name.get(candidate)
            if folder is not None and folder.delimiter:
                return folder.delimiter
        return next((f.delimiter for f in folders if f.delimiter), "/")

    def _queues(self, session: Session) -> list[tuple[str, str]]:
        """(queue name, folder) for every selectable folder that is a queue; the inbound first."""
        folders = session.folders()
        delimiter = self._delimiter(folders)
        found = []
        for folder in folders:
            if folder.selectable and (name := self._queue_name(folder.name, delimiter)) is not None:
                found.append((name, folder.name))
        return sorted(found, key=lambda nf: (nf[1] != self._inbound, nf[0]))

    async def check(self) -> None:
        await in_session(self.config, self._select_inbound)

    async def list_queues(self) -> list[Named]:
        queues = await in_session(self.config, self._queues)
        return [Named(id=folder, name=name) for name, folder in queues]

    async def list_priorities(self) -> list[Named]:
        return [Named(id=mapping.priority_keyword(p), name=p) for p in self.config.priorities]

    # -------------------------------------------------------------------------------- reading

    def _select_inbound(self, session: Session) -> Selected:
        try:
            return session.select(self._inbound, readonly=True)
        except FolderMissing as exc:
            raise ConfigError(f"imap inbound_folder: {exc}") from None

    def _start_uid(self, state: dict[str, tuple[int, int]], selected: Selected) -> int:
        """The last UID already delivered from this folder; 0 (start over) when UIDVALIDITY changed."""
        if selected.name not in state:
            return 0
        uidvalidity, last = state[selected.name]
        if uidvalidity != selected.uidvalidity:
            log.warning(
                "imap folder changed UIDVALIDITY: delivering its mail again from the start",
                folder=selected.name,
                old_uidvalidity=uidvalidity,
                new_uidvalidity=selected.uidvalidity,
            )
            return 0
        return last

    def _ticket(self, fetched: Fetched, selected: Selected, queue: str) -> Ticket:
        parsed = mapping.parse_mail(fetched.raw)
        tid = mapping.ticket_id(parsed.message_id, selected.name, selected.uidvalidity, fetched.uid)
        if parsed.defects:
            log.warning(
                "imap mail partly unreadable; delivered with what could be read",
                ticket_id=tid,
                folder=selected.name,
                defects=", ".join(parsed.defects),
            )
        created = fetched.internaldate or parsed.date or datetime.now(UTC)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        priority = mapping.priority_from_flags(fetched.flags, self.config.priorities)
        if priority is None and parsed.message is not None:
            priority = mapping.priority_from_headers(parsed.message, self.config.priorities)
        return Ticket(
            id=tid,
            number=str(fetched.uid),
            subject=parsed.subject,
            body=parsed.body,
            created_at=created,
            queue=queue,
            priority=priority,
        )

    def _tickets(self, session: Session, selected: Selected, uids: list[int], queue: str) -> list[Ticket]:
        tickets: dict[str, Ticket] = {}
        for fetched in session.fetch(uids):
            ticket = self._ticket(fetched, selected, queue)
            tickets.setdefault(ticket.id, ticket)  # the same mail delivered twice is one ticket
        return list(tickets.values())

    async def fetch_new(self, cursor: str | None, limit: int) -> Page:
        state = _decode(cursor)
        return await in_session(self.config, partial(self._fetch_new, state, max(1, limit)))

    def _fetch_new(self, state: dict[str, tuple[int, int]], limit: int, session: Session) -> Page:
        selected = self._select_inbound(session)
        last = self._start_uid(state, selected)
        uids = session.uids_after(last)
        page = uids[:limit]
        tickets = self._tickets(session, selected, page, self.inbound_queue)
        cursor = mapping.encode_cursor({selected.name: [selected.uidvalidity, page[-1] if page else last]})
        return Page(tickets=tickets, cursor=cursor, more=len(uids) > limit)

    async def fetch_closed(self, since: str | None, limit: int) -> Page:
        state = _decode(since)
        return await in_session(self.config, partial(self._fetch_closed, state, max(1, limit)))

    def _fetch_closed(self, state: dict[str, tuple[int, int]], limit: int, session: Session) -> Page:
        tickets: list[Ticket] = []
        new_state: dict[str, list[int]] = {}
        more = False
        for queue, folder in self._queues(session):
            if folder == self._inbound:
                continue
            try:
                selected = session.select(folder, readonly=True)
            except FolderMissing:
                continue  # removed between LIST and SELECT
            last = self._start_uid(state, selected)
            uids = session.uids_after(last)
            take = uids[: max(0, limit - len(tickets))]
            more = more or len(uids) > len(take)
            tickets.extend(self._tickets(session, selected, take, queue))
            new_state[folder] = [selected.uidvalidity, take[-1] if take else last]
        return Page(tickets=tickets, cursor=mapping.encode_cursor(new_state), more=more)

    # -------------------------------------------------------------------------------- writing

    async def apply(self, update: TicketUpdate) -> Outcome:
        ref = mapping.parse_ticket_id(update.ticket_id)
        if ref is None:
            raise TicketError("not an IMAP ticket id (<message-id> or uid:...)", ticket_id=update.ticket_id)
        priority = None
        if update.priority is not None:
            known = {p.lower(): p for p in self.config.priorities}
            if update.priority.lower() not in known:
                raise TicketError(f"unknown priority {update.priority!r}", ticket_id=update.ticket_id)
            priority = known[update.priority.lower()]
        return await in_session(self.config, partial(self._apply, update, ref, priority))

    def _apply(self, update: TicketUpdate, ref: mapping.MessageRef, priority: str | None, session: Session) -> Outcome:
        folders = [f for f in session.folders() if f.selectable]
        names = {f.name for f in folders}
        delimiter = self._delimiter(folders)
        expected = self._folder_for(update.expected_queue, delimiter)
        target = self._folder_for(update.queue, delimiter) if update.queue is not None else None
        if target is not None and target not in names:
            raise TicketError(f"queue {update.queue!r} has no folder {target!r}", ticket_id=update.ticket_id)

        if expected in names:
            selected = session.select(expected, readonly=False)
            uids = self._find(session, selected, ref)
            if uids:
                return self._write(session, selected, uids, update, priority, target)

        if target is not None and target != expected:
            # Read-write, because EXAMINE reports no PERMANENTFLAGS: nothing is written here.
            selected = session.select(target, readonly=False)
            uids = self._find(session, selected, ref)
            if uids:
                if self._needs_keywords(session, selected, uids, update, priority):
                    return Skipped(
                        update.ticket_id,
                        f"already in queue {update.queue!r}, put there by someone else; left as it is",
                    )
                return Applied(update.ticket_id, ())

        where = self._where(session, ref, folders, skip={expected, target}, delimiter=delimiter)
        if where is None:
            reason = f"no longer in queue {update.expected_queue!r} and not found in any folder (deleted?)"
        else:
            reason = f"no longer in queue {update.expected_queue!r}: someone moved it to {where}"
        return Skipped(update.ticket_id, reason)

    def _find(self, session: Session, selected: Selected, ref: mapping.MessageRef) -> list[int]:
        if ref.message_id is not None:
            return session.find_message_id(ref.message_id)
        if ref.uid is None or (ref.folder, ref.uidvalidity) != (selected.name, selected.uidvalidity):
            return []
        flags = session.flags([ref.uid])
        return [ref.uid] if ref.uid in flags and DELETED not in flags[ref.uid] else []

    def _keyword_plan(
        self, selected: Selected, flags: dict[int, tuple[str, ...]], update: TicketUpdate, priority: str | None
    ) -> tuple[set[str], set[str]]:
        """(keywords to add, keywords to remove) so the mail carries what the update asks for."""
        add: set[str] = set()
        remove: set[str] = set()
        wanted: list[str] = []
        if priority is not None:
            keyword = mapping.priority_keyword(priority)
            if selected.may_store(keyword):
                wanted.append(keyword)
                prefix, own = mapping.PRIORITY_PREFIX.lower(), keyword.lower()
                for message_flags in flags.values():
                    remove |= {f for f in message_flags if f.lower().startswith(prefix) and f.lower() != own}
            else:
                log.warning("imap folder does not allow keywords: priority not stored", folder=selected.name)
        if update.note and selected.may_store(mapping.NOTE_KEYWORD):
            wanted.append(mapping.NOTE_KEYWORD)
        for message_flags in flags.values():
            have = {f.lower() for f in message_flags}
            add |= {k for k in wanted if k.lower() not in have}
        return add, remove

    def _needs_keywords(
        self, session: Session, selected: Selected, uids: list[int], update: TicketUpdate, priority: str | None
    ) -> bool:
        add, remove = self._keyword_plan(selected, session.flags(uids), update, priority)
        return bool(add or remove)

    def _write(
        self,
        session: Session,
        selected: Selected,
        uids: list[int],
        update: TicketUpdate,
        priority: str | None,
        target: str | None,
    ) -> Applied:
        add, remove = self._keyword_plan(selected, session.flags(uids), update, priority)
        changed = []
        session.remove_keywords(uids, sorted(remove))
        session.add_keywords(uids, sorted(add))
        if remove or any(k.startswith(mapping.PRIORITY_PREFIX) for k in add):
            changed.append("priority")
        if mapping.NOTE_KEYWORD in add:
            changed.append("note")
        if target is not None and target != selected.name:
            session.move(uids, target)  # keywords first: a mail we moved always carries them
            changed.append("queue")
        return Applied(update.ticket_id, tuple(changed))

    def _where(
        self, session: Session, ref: mapping.MessageRef, folders: list[Folder], skip: set[str | None], delimiter: str
    ) -> str | None:
        """Where a person put the mail, for the Skipped reason; None when it is nowhere."""
        if ref.message_id is None:
            return None
        for folder in folders:
            if folder.name in skip:
                continue
            try:
                selected = session.select(folder.name, readonly=True)
            except FolderMissing:
                continue
            if session.find_message_id(ref.message_id):
                queue = self._queue_name(selected.name, delimiter)
                return f"queue {queue!r} (folder {folder.name!r})" if queue else f"folder {folder.name!r}"
        return None


def _canonical(folder: str) -> str:
    """INBOX is case-insensitive in IMAP; every other name is taken as written."""
    return "INBOX" if folder.upper() == "INBOX" else folder


def _decode(cursor: str | None) -> dict[str, tuple[int, int]]:
    try:
        return mapping.decode_cursor(cursor)
    except ValueError as exc:
        raise ConfigError(f"imap: cursor rejected ({exc}); was it written by another connector?") from None
