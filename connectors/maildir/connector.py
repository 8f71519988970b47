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
- Errors: a missing Maildir is a ConfigError; any other OSError (permissions, I/O, a file renamed
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

from connectors.base import Applied, Connector, ConnectorConfig, Named, Outcome, Page, Skipped, Ticket, TicketUpdate
from connectors.errors import ConfigError, ConnectorError, TicketError, TransientError
from connectors.imap import mapping
from connectors.maildir import cursor as cursors
from connectors.maildir import folders, keywords, store
from connectors.maildir.config import MaildirConfig
from connectors.maildir.store import Entry

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
            self._inbound = folders.canonical(config.inbound_folder)
            self._mapped = {name: folders.canonical(f) for name, f in config.queue_folders.items()}
            self._queue_root = folders.canonical(config.queue_root)
        except ValueError as exc:
            raise ConfigError(f"maildir: {exc}") from None

    @classmethod
    def from_config(cls, config: ConnectorConfig, client: httpx.AsyncClient) -> MaildirConnector:
        """A Maildir is local files, so the daemon's HTTP client is not used."""
        if not isinstance(config, MaildirConfig):
            raise ConfigError(f"maildir connector needs a MaildirConfig, got {type(config).__name__}")
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
        for name, folder in self._mapped.items():
            if folder == self._inbound:
                return name
        return self._inbound

    def _queue_name(self, folder: str) -> str | None:
        for name, mapped in self._mapped.items():
            if mapped == folder:
                return name
        if folder == self._inbound:
            return self.inbound_queue
        prefix = self._queue_root + "/"
        if folder.startswith(prefix) and len(folder) > len(prefix):
            return folder[len(prefix) :]
        return None

    def _folder_for(self, queue: str) -> str:
        if queue in self._mapped:
            return self._mapped[queue]
        if queue == self.inbound_queue:
            return self._inbound
        try:
            return folders.canonical(f"{self._queue_root}/{queue}")
        except ValueError as exc:
            raise TicketError(f"queue {queue!r} cannot be a folder name: {exc}") from None

    def _inbound_path(self) -> Path:
        store.require_root(self.root)
        path = folders.folder_path(self.root, self._inbound)
        if not store.is_folder(path):
            if not path.exists():
                raise ConfigError(f"maildir inbound_folder {self._inbound!r}: no folder {path.name!r} in {self.root}")
            (path / "new").stat()  # exists but unreadable: the OSError says why (transient)
            (path / "cur").stat()
        return path

    def _queues(self) -> list[tuple[str, str]]:
        """(queue name, folder) of every existing queue folder, plus configured ones that may be created."""
        store.require_root(self.root)
        found: dict[str, str] = {}
        for folder in store.list_folders(self.root):
            name = self._queue_name(folder)
            if name is not None:
                found.setdefault(name, folder)
        if self.config.create_folders:
            for name, folder in self._mapped.items():
                found.setdefault(name, folder)
        return sorted(found.items(), key=lambda nf: (nf[1] != self._inbound, nf[0]))

    async def check(self) -> None:
        def probe() -> None:
            path = self._inbound_path()
            store.scan(path)

        await self._run(probe)

    async def list_queues(self) -> list[Named]:
        queues = await self._run(self._queues)
        return [Named(id=folder, name=name) for name, folder in queues]

    async def list_priorities(self) -> list[Named]:
        return [Named(id=mapping.priority_keyword(p), name=p) for p in self.config.priorities]

    # -------------------------------------------------------------------------------- reading

    def _ticket(self, entry: Entry, table: dict[int, str], queue: str, closed: bool) -> Ticket | None:
        raw = store.read(entry)
        if raw is None:
            return None  # moved away since the scan; it will be seen where it went
        parsed = mapping.parse_mail(raw)
        self._remember(entry.key, parsed.message_id)
        tid = parsed.message_id or KEY_PREFIX + entry.key
        if parsed.defects:
            log.warning(
                "maildir mail partly unreadable; delivered with what could be read",
                ticket_id=tid,
                folder=entry.folder.name or folders.INBOX,
                defects=", ".join(parsed.defects),
            )
        priority = mapping.priority_from_flags(tuple(keywords.names_of(entry.flags, table)), self.config.priorities)
        if priority is None and parsed.message is not None:
            priority = mapping.priority_from_headers(parsed.message, self.config.priorities)
        return Ticket(
            id=tid,
            number=entry.key,
            subject=parsed.subject,
            body=parsed.body,
            created_at=entry.arrived,
            queue=queue,
            priority=priority,
            closed_at=entry.filed if closed else None,
        )

    def _page(
        self, path: Path, mark: cursors.Mark, limit: int, queue: str, closed: bool
    ) -> tuple[list[Ticket], cursors.Mark, bool]:
        pending = mark.pending(store.scan(path))
        taken, rest = pending[:limit], pending[limit:]
        table = keywords.read(path)
        tickets: dict[str, Ticket] = {}
        for entry in taken:
            ticket = self._ticket(entry, table, queue, closed)
            if ticket is not None:
                tickets.setdefault(ticket.id, ticket)  # the same mail delivered twice is one ticket
        return list(tickets.values()), mark.advance(taken, rest), bool(rest)

    async def fetch_new(self, cursor: str | None, limit: int) -> Page:
        marks = _decode(cursor)
        return await self._run(partial(self._fetch_new, marks, max(1, limit)))

    def _fetch_new(self, marks: dict[str, cursors.Mark], limit: int) -> Page:
        path = self._inbound_path()
        mark = marks.get(self._inbound, cursors.Mark())
        tickets, mark, more = self._page(path, mark, limit, self.inbound_queue, closed=False)
        return Page(tickets=tickets, cursor=cursors.encode({self._inbound: mark}), more=more)

    async def fetch_closed(self, since: str | None, limit: int) -> Page:
        marks = _decode(since)
        return await self._run(partial(self._fetch_closed, marks, max(1, limit)))

    def _fetch_closed(self, marks: dict[str, cursors.Mark], limit: int) -> Page:
        store.require_root(self.root)
        existing = store.list_folders(self.root)
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
                more = more or bool(mark.pending(store.scan(existing[folder])))
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
        message_id = store.message_id(entry)
        self._remember(entry.key, message_id)
        return message_id

    def _find(self, path: Path, ticket_id: str) -> list[Entry]:
        if ticket_id.startswith(KEY_PREFIX):
            key = ticket_id[len(KEY_PREFIX) :]
            return [e for e in store.scan(path) if e.key == key]
        return [e for e in store.scan(path) if self._message_id(e) == ticket_id]

    # -------------------------------------------------------------------------------- writing

    async def apply(self, update: TicketUpdate) -> Outcome:
        tid = update.ticket_id.strip()
        if not (tid.startswith(KEY_PREFIX) and len(tid) > len(KEY_PREFIX)) and not (
            len(tid) > 2 and tid.startswith("<") and tid.endswith(">")
        ):
            raise TicketError("not a maildir ticket id (<message-id> or maildir:<key>)", ticket_id=update.ticket_id)
        priority = None
        if update.priority is not None:
            known = {p.lower(): p for p in self.config.priorities}
            if update.priority.lower() not in known:
                raise TicketError(f"unknown priority {update.priority!r}", ticket_id=update.ticket_id)
            priority = known[update.priority.lower()]
        expected = self._folder_for(update.expected_queue)
        target = self._folder_for(update.queue) if update.queue is not None else None
        return await self._run(partial(self._apply, update, tid, priority, expected, target))

    def _apply(
        self, update: TicketUpdate, tid: str, priority: str | None, expected: str, target: str | None
    ) -> Outcome:
        store.require_root(self.root)
        existing = store.list_folders(self.root)
        if target is not None and target not in existing and not self.config.create_folders:
            raise TicketError(f"queue {update.queue!r} has no folder {target!r}", ticket_id=update.ticket_id)

        if expected in existing:
            found = self._find(existing[expected], tid)
            if found:
                return self._write(update, found, priority, target, existing)

        if target is not None and target != expected and target in existing:
            found = self._find(existing[target], tid)
            if found:
                table = keywords.read(existing[target])
                if any(self._wanted(keywords.names_of(e.flags, table), update, priority) for e in found):
                    return Skipped(
                        update.ticket_id,
                        f"already in queue {update.queue!r}, put there by someone else; left as it is",
                    )
                return Applied(update.ticket_id, ())

        for folder, path in existing.items():
            if folder in (expected, target) or not self._find(path, tid):
                continue
            queue = self._queue_name(folder)
            where = f"queue {queue!r} (folder {folder!r})" if queue else f"folder {folder!r}"
            reason = f"no longer in queue {update.expected_queue!r}: someone moved it to {where}"
            return Skipped(update.ticket_id, reason)
        return Skipped(
            update.ticket_id, f"no longer in queue {update.expected_queue!r} and not found in any folder (deleted?)"
        )

    def _wanted(self, have: list[str], update: TicketUpdate, priority: str | None) -> list[str] | None:
        """The mail's keyword names after the update, or None when they would not change."""
        lower = {n.lower() for n in have}
        names = list(have)
        if priority is not None:
            own = mapping.priority_keyword(priority)
            prefix = mapping.PRIORITY_PREFIX.lower()
            names = [n for n in names if not n.lower().startswith(prefix) or n.lower() == own.lower()]
            if own.lower() not in lower:
                names.append(own)
        if update.note and mapping.NOTE_KEYWORD.lower() not in lower:
            names.append(mapping.NOTE_KEYWORD)
        return names if names != have else None

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
            existing[target] = store.create_folder(self.root, target)
            log.info("maildir queue folder created", folder=target)
        dest = existing[target] if target is not None else source
        source_table = keywords.read(source)
        changed: set[str] = set()
        for entry in found:
            have = keywords.names_of(entry.flags, source_table)
            names = self._wanted(have, update, priority) or have
            letters = self._letters(dest, names)
            stored = set(letters)
            if {n.lower() for n in have if n.lower().startswith(mapping.PRIORITY_PREFIX.lower())} != {
                n.lower() for n in stored if n.lower().startswith(mapping.PRIORITY_PREFIX.lower())
            }:
                changed.add("priority")
            if mapping.NOTE_KEYWORD in stored and mapping.NOTE_KEYWORD.lower() not in {n.lower() for n in have}:
                changed.add("note")
            flags = keywords.system_flags(entry.flags) + "".join(letters.values())
            if dest != source:
                store.move(entry, dest, flags, update.ticket_id)
                changed.add("queue")
            elif set(flags) != set(entry.flags):
                store.move(entry, dest, flags, update.ticket_id)  # new flags: renamed in place
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


def _decode(cursor: str | None) -> dict[str, cursors.Mark]:
    try:
        return cursors.decode(cursor)
    except ValueError as exc:
        raise ConfigError(f"maildir: cursor rejected ({exc}); was it written by another connector?") from None
