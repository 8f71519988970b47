"""A local Maildir++ as a helpdesk: the inbound folder holds new tickets, one folder per queue.

It is what `make run` polls on a machine without a helpdesk, and it is safe on a Maildir that
Dovecot and an MTA use at the same time (run ticketd as the mail user):
- Ticket id = the Message-ID (`<...>`), else `maildir:<unique key>` (the file name before `:2,`,
  which a move keeps). Several files with one Message-ID are one mail delivered twice: one ticket.
- New tickets are the files in the inbound folder's new/ and cur/, in order of arrival (see
  `connectors.maildir.cursor` for why ctime and what the cursor holds). Closed tickets are the mails
  filed in queue folders: label = the folder's queue, priority = the `$Priority_<name>` keyword,
  else the sender's X-Priority/Importance header; `closed_at` = when the file last changed there.
- `apply` renames the mail into `<queue folder>/cur` (rename(2): atomic, never a copy, never a
  rewrite), with the priority keyword `$Priority_<name>` and, for a note, `$ticketd` in Dovecot's
  keyword format (`connectors.maildir.keywords`), in that same rename. The mail is looked for in
  the expected queue's folder, then in the target (already done: Applied with no changes), then
  anywhere (a person moved it: Skipped, naming where). A note's text cannot be stored in a mail.
- `watch` reports files landing in the inbound folder's new/ (`connectors.maildir.watch`), so the daemon
  routes a delivered mail at once instead of at the next poll.
- Errors: a missing Maildir is a ConnectorConfigError; any other OSError (permissions, I/O, a file renamed
  by Dovecot between our scan and our rename) is a TransientError: the coordinator retries later.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
import httpx
import structlog

from connectors._mail import cursors as mail_cursors
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
from connectors.errors import ConnectorConfigError, ConnectorError, TicketError, TransientError
from connectors.maildir import cursor as cursors
from connectors.maildir import files, folders, keywords
from connectors.maildir.config import MaildirConfig
from connectors.maildir.files import Entry
from connectors.maildir.watch import NewMailWatch

log = structlog.get_logger(__name__)

T = TypeVar("T")

KEY_PREFIX = "maildir:"
_CACHE_LIMIT = 200_000


class MaildirConnector(Connector):
    """Maildir++ folders as queues, Dovecot keywords as priorities; all file work in a worker thread."""

    type_name = "maildir"
    config_model = MaildirConfig
    closed_means_confirmed = False

    def __init__(self, config: MaildirConfig) -> None:
        self.config = config
        self.root = Path(config.path).expanduser()
        self._message_ids: dict[str, str | None] = {}  # unique key -> Message-ID; a mail's content never changes
        try:
            root = folders.canonical(config.queue_root)
            self._folders = QueueFolders.build(
                config.inbound_folder, config.queue_folders, root, "/", folders.canonical
            )
        except ValueError as exc:
            raise ConnectorConfigError(f"maildir: {exc}") from None
        self._inbound = self._folders.inbound

    @classmethod
    def from_config(cls, config: ConnectorConfig, client: httpx.AsyncClient) -> MaildirConnector:
        """A Maildir is local files, so the daemon's HTTP client is not used."""
        if not isinstance(config, MaildirConfig):
            raise ConnectorConfigError(f"maildir connector needs a MaildirConfig, got {type(config).__name__}")
        return cls(config)

    async def _run(self, fn: Callable[[], T]) -> T:
        """Blocking file work in a worker thread; OSErrors become TransientError."""
        try:
            return await anyio.to_thread.run_sync(fn)
        except ConnectorError:
            raise
        except OSError as exc:
            where = exc.filename if exc.filename is not None else self.root
            raise TransientError(f"maildir {str(where)!r}: {exc.strerror or exc}") from None

    # ------------------------------------------------------------------------------ taxonomy

    @property
    def inbound_queue(self) -> str:
        """The queue name of the inbound folder: its queue_folders name if it has one, else the folder."""
        return self._folders.inbound_queue

    def _inbound_path(self) -> Path:
        files.require_root(self.root)
        path = folders.folder_path(self.root, self._inbound)
        if not files.is_folder(path):
            if not path.exists():
                raise ConnectorConfigError(
                    f"maildir inbound_folder {self._inbound!r}: no folder {path.name!r} in {self.root}"
                )
            (path / "new").stat()  # exists but unreadable: the OSError says why (transient)
            (path / "cur").stat()
        return path

    def _queues(self) -> list[tuple[str, str]]:
        """(queue name, folder) of every existing queue folder, plus configured ones that may be created."""
        files.require_root(self.root)
        found: dict[str, str] = {}
        for name, folder in self._folders.queues(files.list_folders(self.root)):
            found.setdefault(name, folder)
        if self.config.create_folders:
            for name, folder in self._folders.mapped.items():
                found.setdefault(name, folder)
        return sorted(found.items(), key=lambda nf: (nf[1] != self._inbound, nf[0]))

    async def check(self) -> None:
        def probe() -> None:
            path = self._inbound_path()
            files.scan(path)

        await self._run(probe)

    async def watch(self) -> Watch | None:
        """File events on the inbound folder's new/, where every delivered mail appears."""
        inbound = await self._run(self._inbound_path)
        return await NewMailWatch(inbound / "new").start()

    async def list_queues(self) -> list[Named]:
        queues = await self._run(self._queues)
        return [Named(id=folder, name=name) for name, folder in queues]

    async def list_priorities(self) -> list[Named]:
        return priority_names(self.config.priorities)

    # -------------------------------------------------------------------------------- reading

    def _ticket(self, entry: Entry, table: dict[int, str], queue: str, closed: bool) -> Ticket | None:
        raw = files.read(entry)
        if raw is None:
            return None  # moved away since the scan; it will be seen where it went
        parsed = parse_mail(raw)
        self._remember(entry.key, parsed.message_id)
        return mail_ticket(
            parsed,
            source="maildir",
            ticket_id=parsed.message_id or KEY_PREFIX + entry.key,
            number=entry.key,
            folder=entry.folder.name or folders.INBOX,
            queue=queue,
            created_at=entry.arrived,
            keywords=keywords.names_of(entry.flags, table),
            priorities=self.config.priorities,
            closed_at=entry.filed if closed else None,
            where=str(entry.path),
        )

    def _page(
        self, path: Path, mark: cursors.Mark, limit: int, queue: str, closed: bool
    ) -> tuple[list[Ticket], cursors.Mark, bool]:
        pending = mark.pending(files.scan(path))
        taken, rest = pending[:limit], pending[limit:]
        table = keywords.read(path)
        tickets = one_per_mail(self._ticket(entry, table, queue, closed) for entry in taken)
        return tickets, mark.advance(taken, rest), bool(rest)

    async def fetch_new(self, cursor: str | None, limit: int) -> Page:
        marks = mail_cursors.read("maildir", cursors.decode, cursor)
        return await self._run(partial(self._fetch_new, marks, max(1, limit)))

    def _fetch_new(self, marks: dict[str, cursors.Mark], limit: int) -> Page:
        path = self._inbound_path()
        mark = marks.get(self._inbound, cursors.Mark())
        tickets, mark, more = self._page(path, mark, limit, self.inbound_queue, closed=False)
        return Page(tickets=tickets, cursor=cursors.encode({self._inbound: mark}), more=more)

    async def fetch_closed(self, since: str | None, limit: int) -> Page:
        marks = mail_cursors.read("maildir", cursors.decode, since)
        return await self._run(partial(self._fetch_closed, marks, max(1, limit)))

    def _fetch_closed(self, marks: dict[str, cursors.Mark], limit: int) -> Page:
        files.require_root(self.root)
        existing = files.list_folders(self.root)
        tickets: list[Ticket] = []
        new_marks: dict[str, cursors.Mark] = {}
        more = False
        for queue, folder in self._queues():
            if folder == self._inbound or folder not in existing:
                continue
            mark = marks.get(folder, cursors.Mark())
            room = limit - len(tickets)
            if room <= 0:
                new_marks[folder] = mark
                more = more or bool(mark.pending(files.scan(existing[folder])))
                continue
            page, new_marks[folder], rest = self._page(existing[folder], mark, room, queue, closed=True)
            tickets.extend(page)
            more = more or rest
        return Page(tickets=tickets, cursor=cursors.encode(new_marks), more=more)

    # ------------------------------------------------------------------------------ finding

    def _remember(self, key: str, message_id: str | None) -> None:
        if len(self._message_ids) >= _CACHE_LIMIT:
            self._message_ids.clear()
        self._message_ids[key] = message_id

    def _message_id(self, entry: Entry) -> str | None:
        if entry.key in self._message_ids:
            return self._message_ids[entry.key]
        message_id = files.message_id(entry)
        self._remember(entry.key, message_id)
        return message_id

    def _find(self, path: Path, ticket_id: str) -> list[Entry]:
        if ticket_id.startswith(KEY_PREFIX):
            key = ticket_id[len(KEY_PREFIX) :]
            return [e for e in files.scan(path) if e.key == key]
        return [e for e in files.scan(path) if self._message_id(e) == ticket_id]

    # -------------------------------------------------------------------------------- writing

    async def apply(self, update: TicketUpdate) -> Outcome:
        tid = update.ticket_id.strip()
        if not (tid.startswith(KEY_PREFIX) and len(tid) > len(KEY_PREFIX)) and not (
            len(tid) > 2 and tid.startswith("<") and tid.endswith(">")
        ):
            raise TicketError("not a maildir ticket id (<message-id> or maildir:<key>)", ticket_id=update.ticket_id)
        priority = requested_priority(update, self.config.priorities)
        expected = self._folders.folder_of(update.expected_queue)
        target = self._folders.folder_of(update.queue) if update.queue is not None else None
        await update.guarded()  # the files are written in a worker thread: checked before it starts
        return await self._run(partial(self._apply, update, tid, priority, expected, target))

    def _apply(
        self, update: TicketUpdate, tid: str, priority: str | None, expected: str, target: str | None
    ) -> Outcome:
        files.require_root(self.root)
        existing = files.list_folders(self.root)
        if target is not None and target not in existing and not self.config.create_folders:
            raise TicketError(f"queue {update.queue!r} has no folder {target!r}", ticket_id=update.ticket_id)

        def needs_keywords(folder: str, found: list[Entry]) -> bool:
            table = keywords.read(existing[folder])
            return any(self._wanted(keywords.names_of(e.flags, table), update, priority) for e in found)

        def search(skip: set[str | None]) -> str | None:
            return next((f for f, path in existing.items() if f not in skip and self._find(path, tid)), None)

        return locate_and_apply(
            update,
            queues=self._folders,
            expected=expected,
            target=target,
            folders=existing,
            find=lambda folder: self._find(existing[folder], tid),
            write=lambda folder, found: self._write(update, found, priority, target, existing),
            needs_keywords=needs_keywords,
            search=search,
        )

    def _wanted(self, have: list[str], update: TicketUpdate, priority: str | None) -> list[str] | None:
        """The mail's keyword names after the update, or None when they would not change."""
        add, remove = keyword_changes(have, priority_keyword(priority) if priority else None, bool(update.note))
        if not add and not remove:
            return None
        own = priority_keyword(priority) if priority else None
        return [n for n in have if n not in remove] + [k for k in (own, NOTE_KEYWORD) if k in add]

    def _write(
        self,
        update: TicketUpdate,
        found: list[Entry],
        priority: str | None,
        target: str | None,
        existing: dict[str, Path],
    ) -> Applied:
        source = found[0].folder
        if target is not None and target not in existing:
            existing[target] = files.create_folder(self.root, target)
            log.info("maildir queue folder created", folder=target)
        dest = existing[target] if target is not None else source
        source_table = keywords.read(source)
        changed: set[str] = set()
        for entry in found:
            have = keywords.names_of(entry.flags, source_table)
            names = self._wanted(have, update, priority) or have
            letters = self._letters(dest, names)
            stored = set(letters)
            if {n.lower() for n in have if n.lower().startswith(PRIORITY_PREFIX.lower())} != {
                n.lower() for n in stored if n.lower().startswith(PRIORITY_PREFIX.lower())
            }:
                changed.add("priority")
            if NOTE_KEYWORD in stored and NOTE_KEYWORD.lower() not in {n.lower() for n in have}:
                changed.add("note")
            flags = keywords.system_flags(entry.flags) + "".join(letters.values())
            if dest != source:
                files.move(entry, dest, flags, update.ticket_id)
                changed.add("queue")
            elif set(flags) != set(entry.flags):
                files.move(entry, dest, flags, update.ticket_id)  # new flags: renamed in place
        order = ("priority", "note", "queue")
        return Applied(update.ticket_id, tuple(c for c in order if c in changed))

    def _letters(self, folder: Path, names: list[str]) -> dict[str, str]:
        """Keyword name -> flag letter in `folder`; names that no longer fit its table are dropped, with a warning."""
        if not names:
            return {}
        indexes = keywords.ensure(folder, names)
        lost = [n for n in names if n not in indexes]
        if lost:
            log.warning("maildir folder has no room for more keywords: not stored", folder=folder.name, keywords=lost)
        return {name: keywords.letter(i) for name, i in indexes.items()}
