"""Maildir++ folder names, as Dovecot lays them out: `.Queues.Bestellungen-&ANw-bersicht`.

A folder is written as a mail client shows it ("Queues/Billing"); "" or "INBOX" is the Maildir
root itself. On disk every level is encoded in IMAP's modified UTF-7 (RFC 3501 5.1.3, Dovecot's
default for Maildir++) and the levels are joined with "." under a leading ".". Maildir++ has no
other separator, so "." inside a name also starts a new level: "Support.L2" is "Support/L2".
"""

from __future__ import annotations

import re
from pathlib import Path

from imapclient import imap_utf7

INBOX = "INBOX"
_LEVELS = re.compile(r"[/.]")


def levels(folder: str) -> list[str]:
    """The hierarchy levels of a folder name; [] for the root (INBOX). Raises ValueError for empty levels."""
    if folder.strip() == "" or folder.upper() == INBOX:
        return []
    parts = _LEVELS.split(folder)
    if any(p == "" for p in parts):
        raise ValueError(f"folder {folder!r} has an empty level")
    return parts


def canonical(folder: str) -> str:
    """The name used for comparisons and reports: levels joined with "/", the root as INBOX."""
    parts = levels(folder)
    return "/".join(parts) if parts else INBOX


def dir_name(folder: str) -> str:
    """The Maildir++ directory name of a folder (".Queues.Billing"); "" for the root."""
    parts = levels(folder)
    if not parts:
        return ""
    return "." + ".".join(str(imap_utf7.encode(p).decode("ascii")) for p in parts)


def folder_path(root: Path, folder: str) -> Path:
    """Where a folder lives under the Maildir root."""
    name = dir_name(folder)
    return root / name if name else root


def from_dir_name(name: str) -> str | None:
    """The folder name of a Maildir++ directory entry, or None when it is not one (no leading ".")."""
    if len(name) < 2 or not name.startswith("."):
        return None
    try:
        parts = [str(imap_utf7.decode(p.encode("ascii"))) for p in name[1:].split(".")]
    except (ValueError, UnicodeError):
        parts = name[1:].split(".")  # not valid modified UTF-7: show the bytes as they are
    if any(p == "" for p in parts):
        return None
    return "/".join(parts)
