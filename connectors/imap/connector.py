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
- `watch` keeps a connection of its own in IDLE on the inbound folder (`connectors.imap.idle`), so
  the daemon hears of new mail at once; a server without IDLE gets None, and is polled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import anyio.to_thread
import httpx
import structlog

from connectors._mail import cursors
from connectors._mail.apply import locate_and_apply
from connectors._mail.message import parse_mail
from connectors._mail.priorities import (
    NOTE_KEYWORD,
    PRIORITY_PREFIX,
    keyword_changes,
    priority_keyword,
    priority_names,
    requested_priority,
)
from connectors._mail.queues import QueueFolders
from connectors._mail.tickets import mail_ticket, one_per_mail
from connectors.base import Applied, Connector, ConnectorConfig, Named, Outcome, Page, Ticket, TicketUpdate, Watch
from connectors.errors import ConnectorConfigError, TicketError
from connectors.imap import mapping
from connectors.imap.client import DELETED, Fetched, Folder, FolderMissing, Selected, Session, in_session
from connectors.imap.config import ImapConfig
from connectors.imap.idle import IdleWatch

log = structlog.get_logger(__name__)

Found = tuple[Selected, list[int]]


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
            raise ConnectorConfigError(f"imap connector needs an ImapConfig, got {type(config).__name__}")
        return cls(config)

    # ------------------------------------------------------------------------------ taxonomy

    def _folders(self, delimiter: str = "/") -> QueueFolders:
        """The queue mapping with the server's hierarchy delimiter (known only once connected)."""
        c = self.config
        return QueueFolders.build(c.inbound_folder, c.queue_folders, c.queue_root, delimiter, _canonical)

    @property
    def _inbound(self) -> str:
        return _canonical(self.config.inbound_folder)

    @property
    def inbound_queue(self) -> str:
        """The queue name of the inbound folder: its queue_folders name if it has one, else the folder."""
        return self._folders().inbound_queue

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
        return self._folders(self._delimiter(folders)).queues(f.name for f in folders if f.selectable)

    async def check(self) -> None:
        await in_session(self.config, self._select_inbound)

    async def list_queues(self) -> list[Named]:
        queues = await in_session(self.config, self._queues)
        return [Named(id=folder, name=name) for name, folder in queues]

    async def list_priorities(self) -> list[Named]:
        return priority_names(self.config.priorities)

    # -------------------------------------------------------------------------------- reading

    def _select_inbound(self, session: Session) -> Selected:
        try:
            return session.select(self._inbound, readonly=True)
        except FolderMissing as exc:
            raise ConnectorConfigError(f"imap inbound_folder: {exc}") from None

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

    def _ticket(self, fetched: Fetched, selected: Selected, queue: str) -> Ticket | None:
        parsed = parse_mail(fetched.raw)
        created = fetched.internaldate or parsed.date or datetime.now(UTC)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return mail_ticket(
            parsed,
            source="imap",
            ticket_id=mapping.ticket_id(parsed.message_id, selected.name, selected.uidvalidity, fetched.uid),
            number=str(fetched.uid),
            folder=selected.name,
            queue=queue,
            created_at=created,
            keywords=fetched.flags,
            priorities=self.config.priorities,
            where=f"{selected.name} UID {fetched.uid}",
        )

    def _tickets(self, session: Session, selected: Selected, uids: list[int], queue: str) -> list[Ticket]:
        return one_per_mail(self._ticket(fetched, selected, queue) for fetched in session.fetch(uids))

    async def fetch_new(self, cursor: str | None, limit: int) -> Page:
        state = cursors.read("imap", mapping.decode_cursor, cursor)
        return await in_session(self.config, partial(self._fetch_new, state, max(1, limit)))

    def _fetch_new(self, state: dict[str, tuple[int, int]], limit: int, session: Session) -> Page:
        selected = self._select_inbound(session)
        last = self._start_uid(state, selected)
        uids = session.uids_after(last)
        page = uids[:limit]
        tickets = self._tickets(session, selected, page, self.inbound_queue)
        cursor = mapping.encode_cursor({selected.name: [selected.uidvalidity, page[-1] if page else last]})
        return Page(tickets=tickets, cursor=cursor, more=len(uids) > limit)

    async def watch(self) -> Watch | None:
        """IDLE on the inbound folder over a connection of its own; None when the server lacks IDLE."""
        return await anyio.to_thread.run_sync(IdleWatch.open, self.config, self._inbound)

    async def fetch_closed(self, since: str | None, limit: int) -> Page:
        state = cursors.read("imap", mapping.decode_cursor, since)
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
        priority = requested_priority(update, self.config.priorities)
        await update.guarded()  # a mailbox is written inside a session of its own: checked before it opens
        return await in_session(self.config, partial(self._apply, update, ref, priority))

    def _apply(self, update: TicketUpdate, ref: mapping.MessageRef, priority: str | None, session: Session) -> Outcome:
        folders = [f for f in session.folders() if f.selectable]
        names = {f.name for f in folders}
        queues = self._folders(self._delimiter(folders))
        expected = queues.folder_of(update.expected_queue)
        target = queues.folder_of(update.queue) if update.queue is not None else None
        if target is not None and target not in names:
            raise TicketError(f"queue {update.queue!r} has no folder {target!r}", ticket_id=update.ticket_id)

        def find(folder: str) -> Found | None:
            # Read-write even to look, because EXAMINE reports no PERMANENTFLAGS.
            selected = session.select(folder, readonly=False)
            uids = self._find(session, selected, ref)
            return (selected, uids) if uids else None

        def needs_keywords(folder: str, found: Found) -> bool:
            add, remove = self._keyword_plan(found[0], session.flags(found[1]), update, priority)
            return bool(add or remove)

        return locate_and_apply(
            update,
            queues=queues,
            expected=expected,
            target=target,
            folders=names,
            find=find,
            write=lambda folder, found: self._write(session, found[0], found[1], update, priority, target),
            needs_keywords=needs_keywords,
            search=lambda skip: self._where(session, ref, folders, skip),
        )

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
        """(keywords to add, keywords to remove) over all copies, for what the folder can store."""
        own = None
        if priority is not None:
            own = priority_keyword(priority)
            if not selected.may_store(own):
                log.warning("imap folder does not allow keywords: priority not stored", folder=selected.name)
                own = None
        note = bool(update.note) and selected.may_store(NOTE_KEYWORD)
        add: set[str] = set()
        remove: set[str] = set()
        for message_flags in flags.values():
            more, fewer = keyword_changes(message_flags, own, note)
            add |= more
            remove |= fewer
        return add, remove

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
        if remove or any(k.startswith(PRIORITY_PREFIX) for k in add):
            changed.append("priority")
        if NOTE_KEYWORD in add:
            changed.append("note")
        if target is not None and target != selected.name:
            session.move(uids, target)  # keywords first: a mail we moved always carries them
            changed.append("queue")
        return Applied(update.ticket_id, tuple(changed))

    def _where(
        self, session: Session, ref: mapping.MessageRef, folders: list[Folder], skip: set[str | None]
    ) -> str | None:
        """The folder a person put the mail in, for the Skipped reason; None when it is nowhere."""
        if ref.message_id is None:
            return None
        for folder in folders:
            if folder.name in skip:
                continue
            try:
                session.select(folder.name, readonly=True)
            except FolderMissing:
                continue
            if session.find_message_id(ref.message_id):
                return folder.name
        return None


def _canonical(folder: str) -> str:
    """INBOX is case-insensitive in IMAP; every other name is taken as written."""
    return "INBOX" if folder.upper() == "INBOX" else folder
