"""The demo mails `make run` routes: original, parseable, covering the starter model's queues, seeded once."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from connectors._mail.message import parse_mail
from connectors.base import TicketUpdate
from connectors.maildir import MaildirConfig, MaildirConnector
from daemon.demo import QUEUES, mails, seed

pytestmark = pytest.mark.anyio

STARTER = Path(__file__).resolve().parents[3] / "daemon" / "ml" / "data" / "starter-tickets.csv"


def test_demo_mails_parse_and_cover_the_starter_queues() -> None:
    raw = mails()
    assert len(raw) == 24
    parsed = [parse_mail(r) for r in raw]
    assert all(p.message_id and p.subject and p.body and not p.defects for p in parsed)
    assert len({p.message_id for p in parsed}) == 24
    assert all(r.isascii() or b"\n\n" in r for r in raw)
    assert all(r.split(b"\n\n", 1)[0].isascii() for r in raw)  # headers are 7-bit (RFC 2047 where needed)
    assert any(b"=?utf-8?q?" in r for r in raw)
    assert sum(b"text/html" in r for r in raw) >= 3
    assert any("Überstunden" in p.subject for p in parsed)
    with STARTER.open(encoding="utf-8") as f:
        starter_queues = {row["queue"] for row in csv.DictReader(f)}
    assert set(QUEUES) == starter_queues
    names = sorted(p.name for p in (Path(__file__).resolve().parents[3] / "daemon" / "demo" / "mails").iterdir())
    for word in ("-it-", "-billing-", "-sales-", "-hr-"):
        assert sum(word in n for n in names) == 6


async def test_seed_is_idempotent_by_message_id(tmp_path: Path) -> None:
    root = tmp_path / "state" / "demo-maildir"
    assert seed(root) == 24
    assert seed(root) == 0
    assert len(list((root / "new").iterdir())) == 24
    assert {p.name for p in root.iterdir() if p.name.startswith(".")} == {f".Queues.{q}" for q in QUEUES}

    conn = MaildirConnector(MaildirConfig(type="maildir", path=root))
    assert {q.name for q in await conn.list_queues()} >= set(QUEUES)
    tickets = (await conn.fetch_new(None, 50)).tickets
    assert len(tickets) == 24
    await conn.apply(TicketUpdate(tickets[0].id, expected_queue="INBOX", queue="Billing", priority="high"))
    assert seed(root) == 0  # a mail already filed into a queue is not delivered again
    (root / "new" / next(iter((root / "new").iterdir())).name).unlink()
    assert seed(root) == 1
