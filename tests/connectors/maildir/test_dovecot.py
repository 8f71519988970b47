"""A real Dovecot serving the same Maildir: it shows our moves, folders and keywords, and we read its own."""

from __future__ import annotations

import os
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest

from connectors.base import TicketUpdate
from connectors.maildir import MaildirConfig, MaildirConnector
from tests.support.fakes.dovecot import Dovecot, shared_dovecot

pytestmark = pytest.mark.anyio


def hand_back(server: Dovecot, maildir: Path) -> None:
    """As root, files we wrote belong to root: give them to the user Dovecot runs as (nobody)."""
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "nobody:nogroup", str(maildir)], check=True)


def mail(message_id: str, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "kunde@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(f"{subject}: body")
    return bytes(msg)


async def test_dovecot_sees_what_the_connector_did_and_the_other_way_round() -> None:
    server = shared_dovecot()
    user = server.new_user()
    with server.client(user) as c:
        c.append("INBOX", mail("<routed@example.org>", "Rechnung doppelt"))
        c.append("INBOX", mail("<filed@example.org>", "Passwort vergessen"))
        c.create_folder("Queues/Rückfragen")
    maildir = server.root / "mail" / user / "Maildir"
    conn = MaildirConnector(MaildirConfig(type="maildir", path=maildir))

    tickets = {t.id: t for t in (await conn.fetch_new(None, 50)).tickets}
    assert set(tickets) == {"<routed@example.org>", "<filed@example.org>"}
    update = TicketUpdate(
        "<routed@example.org>", expected_queue="INBOX", queue="Bestellungen-Übersicht", priority="high", note="x"
    )
    assert (await conn.apply(update)).changed == ("priority", "note", "queue")
    hand_back(server, maildir)

    with server.client(user) as c:
        names = {name for _flags, _delim, name in c.list_folders()}
        assert {"Queues/Bestellungen-Übersicht", "Queues/Rückfragen"} <= names
        c.select_folder("Queues/Bestellungen-Übersicht")
        (uid,) = c.search(["HEADER", "Message-ID", "routed@example.org"])
        flags = {f.decode() for f in c.get_flags([uid])[uid]}
        assert flags - {"\\Recent"} == {"$Priority_high", "$ticketd"}  # and not \\Seen
        c.select_folder("INBOX")
        (uid,) = c.search(["HEADER", "Message-ID", "filed@example.org"])
        # An agent in a mail client files the other one with a priority keyword of Dovecot's making.
        c.add_flags([uid], ["$Priority_low", "Erledigt"])
        c.move([uid], "Queues/Rückfragen")
        c.select_folder("INBOX")
        assert c.search(["ALL"]) == []

    closed = {t.id: t for t in (await conn.fetch_closed(None, 50)).tickets}
    assert (closed["<filed@example.org>"].queue, closed["<filed@example.org>"].priority) == ("Rückfragen", "low")
    assert (closed["<routed@example.org>"].queue, closed["<routed@example.org>"].priority) == (
        "Bestellungen-Übersicht",
        "high",
    )
    assert (await conn.apply(update)).changed == ()
