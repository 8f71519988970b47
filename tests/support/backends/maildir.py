"""Contract harness for the Maildir connector: a real Maildir++ in tmp_path, laid out as Dovecot does.

The harness plays MTA and agent with plain file operations, never through the connector's modules:
mail is delivered through tmp/ into new/ (`mailbox.Maildir.add`), agents rename files between
folders and set keywords in Dovecot's format (a `dovecot-keywords` table, letters in the file name).
Folder directory names are written out literally in modified UTF-7, as Dovecot names them.

`writes()` counts changes of the mail's (directory, file name): every write the connector can make
(a move, a flag change) renames the file, and it never rewrites content.

`fail_next` breaks the Maildir for real during the next connector calls: the inbound `new/` is made
unreadable (chmod 000; as root, where permissions do not stop reads, it is swapped for a plain file)
and restored when the call returns, so the connector meets the OSError the kernel gives.
"""

from __future__ import annotations

import contextlib
import mailbox
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from connectors.maildir import MaildirConfig, MaildirConnector
from tests.support.backends import look_again

T = TypeVar("T")

# Dovecot's on-disk names for Queues/<name> (modified UTF-7 levels joined with ".").
DIRS = {
    "INBOX": "",
    "Bestellungen-Übersicht": ".Queues.Bestellungen-&ANw-bersicht",
    "Rückfragen": ".Queues.R&APw-ckfragen",
    "Allgemein": ".Queues.Allgemein",
}


@contextlib.contextmanager
def unreadable(folder: Path) -> Iterator[None]:
    """Make a folder's new/ unreadable for the duration, the way the kernel would refuse it."""
    new = folder / "new"
    if os.geteuid() != 0:
        mode = new.stat().st_mode
        new.chmod(0)
        try:
            yield
        finally:
            new.chmod(mode)
        return
    away = folder / "new.away"
    new.rename(away)
    new.write_bytes(b"")  # root reads anything, but cannot list a plain file as a directory
    try:
        yield
    finally:
        new.unlink()
        away.rename(new)


def read_keywords(folder: Path) -> dict[int, str]:
    path = folder / "dovecot-keywords"
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        index, name = line.split(" ", 1)
        out[int(index)] = name
    return out


def flags_of(name: str) -> str:
    return name.split(":2,", 1)[1] if ":2," in name else ""


class _FlakyMaildirConnector(MaildirConnector):
    """The real connector; the harness breaks the Maildir around its next calls."""

    harness: MaildirHarness

    async def _run(self, fn: Callable[[], T]) -> T:
        call: Callable[[Callable[[], T]], Awaitable[T]] = super()._run
        if self.harness.failures > 0:
            self.harness.failures -= 1
            with unreadable(self.harness.root):
                return await call(fn)
        return await call(fn)


class MaildirHarness:
    inbound = "INBOX"
    target = "Bestellungen-Übersicht"
    other = "Rückfragen"
    priority = "high"

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "Maildir"
        self.box = mailbox.Maildir(str(self.root), create=True)
        for dirname in DIRS.values():
            if dirname:
                self.box.add_folder(dirname[1:])
        self.failures = 0
        self._seen: dict[str, tuple[str, str]] = {}
        self._writes: dict[str, int] = {}

    def folder(self, queue: str) -> Path:
        return self.root / DIRS[queue] if DIRS[queue] else self.root

    def config(self, **overrides: Any) -> MaildirConfig:
        raw: dict[str, Any] = {"type": "maildir", "path": str(self.root)}
        raw.update(overrides)
        return MaildirConfig.model_validate(raw)

    async def connector(self, *, bad_auth: bool = False) -> MaildirConnector:
        if bad_auth:
            pytest.skip("a Maildir is opened with the daemon's own file permissions: there are no credentials")
        conn = _FlakyMaildirConnector(self.config())
        conn.harness = self
        return conn

    def deliver(self, msg: EmailMessage | bytes, queue: str = "INBOX") -> str:
        """An MTA delivery: written into tmp/, renamed into new/; returns the unique key."""
        box = mailbox.Maildir(str(self.folder(queue)), create=False)
        return str(box.add(bytes(msg)))

    def add_ticket(self, subject: str, body: str) -> str:
        msg = EmailMessage()
        msg["From"] = "Kunde <kunde@example.org>"
        msg["To"] = "helpdesk@example.com"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@customer.example.org>"
        msg.set_content(body)
        self.deliver(msg)
        tid = str(msg["Message-ID"])
        self._observe(tid)
        return tid

    def locate(self, ticket_id: str) -> tuple[str, Path] | None:
        """(queue, file) of the mail with this Message-ID, searching every folder (a file renamed between
        listing and opening is passed over)."""
        return look_again(lambda: self._scan(ticket_id))

    def _scan(self, ticket_id: str) -> tuple[str, Path] | None:
        for queue in DIRS:
            folder = self.folder(queue)
            for sub in ("new", "cur"):
                for path in sorted((folder / sub).iterdir()):
                    try:
                        with path.open("rb") as f:
                            headers = BytesHeaderParser().parse(f)
                    except FileNotFoundError:
                        continue
                    if str(headers["Message-ID"]).strip() == ticket_id:
                        return queue, path
        return None

    def _observe(self, ticket_id: str) -> None:
        where = self.locate(ticket_id)
        state = (where[0], str(where[1])) if where else ("", "")
        if ticket_id in self._seen and self._seen[ticket_id] != state:
            self._writes[ticket_id] = self._writes.get(ticket_id, 0) + 1
        self._seen[ticket_id] = state

    def _move(self, ticket_id: str, queue: str, keyword: str | None = None) -> None:
        self._observe(ticket_id)
        where = self.locate(ticket_id)
        assert where is not None, f"{ticket_id} not found"
        folder = self.folder(queue)
        flags = "".join(ch for ch in flags_of(where[1].name) if ch.isupper())  # letters mean nothing elsewhere
        if keyword:
            table = read_keywords(folder)
            if keyword not in table.values():
                table[len(table)] = keyword
                (folder / "dovecot-keywords").write_text("".join(f"{i} {n}\n" for i, n in sorted(table.items())))
            flags += chr(ord("a") + next(i for i, n in table.items() if n == keyword))
        key = where[1].name.split(":", 1)[0]
        where[1].rename(folder / "cur" / f"{key}:2,{''.join(sorted(flags))}")
        self._observe(ticket_id)

    def human_move(self, ticket_id: str, queue: str) -> None:
        self._move(ticket_id, queue)

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        self._move(ticket_id, queue, keyword=f"$Priority_{priority}")

    def queue_of(self, ticket_id: str) -> str:
        where = self.locate(ticket_id)
        assert where is not None, f"{ticket_id} not found"
        return where[0]

    def keywords_of(self, ticket_id: str) -> list[str]:
        where = self.locate(ticket_id)
        assert where is not None, f"{ticket_id} not found"
        table = read_keywords(self.folder(where[0]))
        return [table[ord(ch) - ord("a")] for ch in flags_of(where[1].name) if ch.islower()]

    def priority_of(self, ticket_id: str) -> str | None:
        for keyword in self.keywords_of(ticket_id):
            if keyword.startswith("$Priority_"):
                return keyword.removeprefix("$Priority_")
        return None

    def writes(self, ticket_id: str) -> int:
        self._observe(ticket_id)
        return self._writes.get(ticket_id, 0)

    def fail_next(self, calls: int) -> None:
        self.failures += calls

    async def aclose(self) -> None:
        pass


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> MaildirHarness:
    return MaildirHarness(tmp_path)
