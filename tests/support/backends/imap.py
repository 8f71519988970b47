"""Contract harness for the IMAP connector against a real Dovecot (a fresh account per test).

The harness plays customer and agent over its own IMAP connections: mail is APPENDed into INBOX,
agents move it and set `$Priority_*` keywords. The connector reaches Dovecot through a
`FlakyProxy`, so `fail_next` can drop its connections without disturbing the shared server.

`writes()` reads the server state, not a log: each time the message's (folder, UIDVALIDITY, UID,
MODSEQ) differs from the last observation one write is counted. CONDSTORE bumps MODSEQ on every
flag change and a move gives a new UID, so any write between two observations is seen.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from connectors.imap import ImapConfig, ImapConnector
from tests.support.backends import look_again
from tests.support.fakes.dovecot import PASSWORD, Dovecot, FlakyProxy, connected, shared_dovecot

QUEUE_ROOT = "Queues"


class ImapHarness:
    inbound = "INBOX"
    target = "Bestellungen-Übersicht"
    other = "Rückfragen"
    priority = "high"

    def __init__(self, server: Dovecot) -> None:
        self.server = server
        self.user = server.new_user()
        self.proxy = FlakyProxy(server.port)
        self._seen: dict[str, tuple[str, int, int, int]] = {}
        self._writes: dict[str, int] = {}
        with connected(server, self.user) as c:
            for queue in (self.target, self.other, "Allgemein"):
                c.create_folder(self.folder(queue))

    def folder(self, queue: str) -> str:
        return "INBOX" if queue == self.inbound else f"{QUEUE_ROOT}/{queue}"

    def queue(self, folder: str) -> str:
        return self.inbound if folder == "INBOX" else folder.removeprefix(f"{QUEUE_ROOT}/")

    def config(self, *, bad_auth: bool = False, **overrides: object) -> ImapConfig:
        raw: dict[str, object] = {
            "type": "imap",
            "host": "127.0.0.1",
            "port": self.proxy.port,
            "ssl": False,
            "user": self.user,
            "password": "wrong" if bad_auth else PASSWORD,  # Dovecot answers a failed login after 2 s
            "timeout": 10,
        }
        raw.update(overrides)
        return ImapConfig.model_validate(raw)

    async def connector(self, *, bad_auth: bool = False) -> ImapConnector:
        return ImapConnector(self.config(bad_auth=bad_auth))

    def append(self, msg: EmailMessage | bytes, folder: str = "INBOX", flags: tuple[str, ...] = ()) -> None:
        with connected(self.server, self.user) as c:
            c.append(folder, bytes(msg), flags=flags)

    def add_ticket(self, subject: str, body: str) -> str:
        msg = EmailMessage()
        msg["From"] = "Kunde <kunde@example.org>"
        msg["To"] = "helpdesk@example.com"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@customer.example.org>"
        msg.set_content(body)
        self.append(msg)
        tid = str(msg["Message-ID"])
        self._observe(tid)
        return tid

    def _locate(self, ticket_id: str) -> tuple[str, int, int, int, tuple[str, ...]] | None:
        """(folder, uidvalidity, uid, modseq, flags) of the message with this Message-ID, if any."""
        return look_again(lambda: self._scan(ticket_id))

    def _scan(self, ticket_id: str) -> tuple[str, int, int, int, tuple[str, ...]] | None:
        core = ticket_id.strip("<>")
        with connected(self.server, self.user) as c:
            for _flags, _delim, name in c.list_folders():
                if b"\\Noselect" in _flags:
                    continue
                info = c.select_folder(name, readonly=True)
                uids = c.search(["NOT", "DELETED", "HEADER", "Message-ID", core])
                data = c.fetch(uids[:1], ["FLAGS", "MODSEQ"]).get(uids[0]) if uids else None
                if data is not None:  # None: not here, or moved away between SEARCH and FETCH
                    flags = tuple(f.decode() for f in data[b"FLAGS"])
                    return name, info[b"UIDVALIDITY"], uids[0], int(data[b"MODSEQ"][0]), flags
        return None

    def _observe(self, ticket_id: str) -> None:
        where = self._locate(ticket_id)
        state = where[:4] if where else ("", 0, 0, 0)
        if ticket_id in self._seen and self._seen[ticket_id] != state:
            self._writes[ticket_id] = self._writes.get(ticket_id, 0) + 1
        self._seen[ticket_id] = state

    def _move(self, ticket_id: str, folder: str, keyword: str | None = None) -> None:
        self._observe(ticket_id)
        where = self._locate(ticket_id)
        assert where is not None, f"{ticket_id} not found"
        with connected(self.server, self.user) as c:
            c.select_folder(where[0])
            if keyword:
                c.add_flags([where[2]], [keyword])
            c.move([where[2]], folder)
        self._observe(ticket_id)

    def human_move(self, ticket_id: str, queue: str) -> None:
        self._move(ticket_id, self.folder(queue))

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        self._move(ticket_id, self.folder(queue), keyword=f"$Priority_{priority}")

    def queue_of(self, ticket_id: str) -> str:
        where = self._locate(ticket_id)
        assert where is not None, f"{ticket_id} not found"
        return self.queue(where[0])

    def priority_of(self, ticket_id: str) -> str | None:
        where = self._locate(ticket_id)
        assert where is not None, f"{ticket_id} not found"
        for flag in where[4]:
            if flag.startswith("$Priority_"):
                return flag.removeprefix("$Priority_")
        return None

    def writes(self, ticket_id: str) -> int:
        self._observe(ticket_id)
        return self._writes.get(ticket_id, 0)

    def fail_next(self, calls: int) -> None:
        self.proxy.fail_next(calls)

    async def aclose(self) -> None:
        self.proxy.close()


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> ImapHarness:
    return ImapHarness(shared_dovecot())
