"""Example mails for `make run`: a local Maildir the daemon routes on a machine without any helpdesk.

The 24 mails in `mails/` are original examples (English and German, plain text and HTML, one RFC 2047
subject, quoted-printable bodies, sender priority headers) for the starter model's queues: IT Support,
Billing, Sales and HR. `seed` delivers them the way an MTA does (tmp/ then new/), so the daemon's
maildir connector sees fresh mail, and creates the Maildir++ folders the queues route into.
"""

from __future__ import annotations

import mailbox
from email import policy
from email.parser import BytesHeaderParser
from importlib import resources
from pathlib import Path

from connectors._mail.message import normalize_message_id
from connectors.maildir import files, folders
from daemon.logging import get_logger

log = get_logger(__name__)

QUEUES = ("IT Support", "Billing", "Sales", "HR")


def mails() -> list[bytes]:
    """The example mails, in file-name order."""
    folder = resources.files("daemon.demo").joinpath("mails")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".eml")), key=lambda e: e.name)
    return [entry.read_bytes() for entry in entries]


def _message_id(raw: bytes) -> str | None:
    value = BytesHeaderParser(policy=policy.default).parsebytes(raw).get("Message-ID")
    return normalize_message_id(str(value) if value is not None else None)


def seed(path: Path, *, inbound_folder: str = "", queue_root: str = "Queues") -> int:
    """Deliver every example mail not yet in the Maildir (by Message-ID, in any folder); returns how many were new.

    Creates the Maildir and the queue folders `<queue_root>/<queue>` when missing, so running it
    twice, or after the daemon has filed the mails into queues, adds nothing.
    """
    root = Path(path).expanduser()
    root.parent.mkdir(parents=True, exist_ok=True)
    mailbox.Maildir(str(root), factory=None, create=True)
    inbound = files.create_folder(root, inbound_folder) if folders.levels(inbound_folder) else root
    for queue in QUEUES:
        files.create_folder(root, f"{queue_root}/{queue}")
    present = {files.message_id(entry) for folder in files.list_folders(root).values() for entry in files.scan(folder)}
    box = mailbox.Maildir(str(inbound), factory=None, create=False)
    added = 0
    for raw in mails():
        message_id = _message_id(raw)
        if message_id is not None and message_id in present:
            continue
        box.add(raw)
        present.add(message_id)
        added += 1
    log.info("demo mails seeded", maildir=str(root), added=added, total=len(present - {None}))
    return added
