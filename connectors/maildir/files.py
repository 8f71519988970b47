"""The blocking filesystem side: scanning a folder, reading mail, creating folders, moving files.

Nothing here rewrites a mail: a mail's file is only ever renamed (flags live in its name), within a
folder or into another folder of the same Maildir, and rename(2) within one filesystem is atomic,
so Dovecot, an MTA or a mail client working on the same Maildir sees the mail in one place or the
other, never half-written and never twice.
"""

from __future__ import annotations

import contextlib
import errno
import mailbox
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

from connectors._mail.message import normalize_message_id
from connectors.errors import ConnectorConfigError, TicketError
from connectors.maildir import folders, keywords

_HEAD_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Entry:
    """One mail file as found in a folder's new/ or cur/."""

    folder: Path
    sub: str
    name: str
    key: str
    flags: str
    ctime_ns: int
    mtime: float

    @property
    def path(self) -> Path:
        """The file's current path (valid until someone renames it)."""
        return self.folder / self.sub / self.name

    @property
    def arrived(self) -> datetime:
        """When the mail was received: Dovecot and MTAs leave that in the file's mtime (IMAP INTERNALDATE)."""
        return datetime.fromtimestamp(self.mtime, UTC)

    @property
    def filed(self) -> datetime:
        """When the file last changed place or flags (its ctime): for mail in a queue folder, when it was filed."""
        return datetime.fromtimestamp(self.ctime_ns / 1e9, UTC)


def is_folder(path: Path) -> bool:
    """A folder holds mail when it has cur/ and new/ (a bare Maildir++ hierarchy node does not)."""
    return (path / "cur").is_dir() and (path / "new").is_dir()


def require_root(root: Path) -> None:
    """ConnectorConfigError unless `root` exists and looks like a Maildir; other OSErrors pass through (transient)."""
    try:
        root.stat()
    except FileNotFoundError:
        raise ConnectorConfigError(f"maildir path {str(root)!r} does not exist") from None
    except NotADirectoryError:
        raise ConnectorConfigError(f"maildir path {str(root)!r} is not a directory") from None
    if not any(os.path.lexists(root / sub) for sub in ("cur", "new", "tmp")):
        raise ConnectorConfigError(f"maildir path {str(root)!r} is not a Maildir (no cur/, new/ or tmp/)")


def list_folders(root: Path) -> dict[str, Path]:
    """Every Maildir++ folder under `root` that can hold mail, by canonical name; the root as INBOX."""
    out = {folders.INBOX: root}
    for dirname in _box(root).list_folders():
        name = folders.from_dir_name("." + dirname)
        path = root / ("." + dirname)
        if name is not None and is_folder(path):
            out[name] = path
    return out


def _box(root: Path) -> mailbox.Maildir:
    try:
        return mailbox.Maildir(str(root), factory=None, create=False)
    except mailbox.NoSuchMailboxError:
        raise ConnectorConfigError(f"maildir path {str(root)!r} does not exist") from None


def scan(folder: Path) -> list[Entry]:
    """The mails in a folder's new/ and cur/ (files that vanish while we look are left out)."""
    entries: list[Entry] = []
    for sub in ("new", "cur"):
        with os.scandir(folder / sub) as it:
            for item in it:
                if item.name.startswith("."):
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # moved or deleted meanwhile
                if not item.is_file(follow_symlinks=False):
                    continue
                key, flags = keywords.split_name(item.name)
                if sub == "new":
                    flags = ""
                entries.append(Entry(folder, sub, item.name, key, flags, st.st_ctime_ns, st.st_mtime))
    return entries


def read(entry: Entry) -> bytes | None:
    """The whole mail, or None when it was moved or deleted since the scan."""
    try:
        return entry.path.read_bytes()
    except FileNotFoundError:
        return None


def read_head(entry: Entry) -> bytes | None:
    """The header section of a mail (up to the first empty line), or None when it is gone."""
    try:
        with entry.path.open("rb") as f:
            head = b""
            while len(head) < _HEAD_LIMIT:
                chunk = f.read(8192)
                if not chunk:
                    break
                head += chunk
                end = min((i for i in (head.find(b"\n\n"), head.find(b"\r\n\r\n")) if i != -1), default=-1)
                if end != -1:
                    return head[: end + 2]
            return head
    except FileNotFoundError:
        return None


def message_id(entry: Entry) -> str | None:
    """The mail's normalized Message-ID from its header section; None when it has none or is gone."""
    head = read_head(entry)
    if head is None:
        return None
    try:
        value = BytesHeaderParser(policy=policy.default).parsebytes(head).get("Message-ID")
        return normalize_message_id(str(value) if value is not None else None)
    except Exception:  # a header the parser cannot read is not one anybody can look for
        return None


def create_folder(root: Path, folder: str) -> Path:
    """Create a Maildir++ folder (cur/ new/ tmp/ and the `maildirfolder` marker) with the root's permissions."""
    path = folders.folder_path(root, folder)
    if is_folder(path):
        return path
    with contextlib.suppress(FileExistsError):
        _box(root).add_folder(path.name[1:])
    for sub in ("cur", "new", "tmp"):  # a bare hierarchy node (".Queues") becomes a folder too
        (path / sub).mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):
        mode = root.stat().st_mode & 0o7777
        for directory in (path, path / "cur", path / "new", path / "tmp"):
            directory.chmod(mode)
        (path / "maildirfolder").chmod(mode & 0o666)
    return path


def move(entry: Entry, target: Path, flags: str, ticket_id: str) -> Path:
    """Rename the mail into `target`/cur with these flags: one atomic rename, never a copy."""
    dest = target / "cur" / keywords.join_name(entry.key, flags)
    if dest == entry.path:
        return dest
    if target != entry.folder and any(e.key == entry.key for e in scan(target)):
        where = target.name or folders.INBOX
        raise TicketError(f"a mail file named {entry.key!r} is already in {where}", ticket_id=ticket_id)
    try:
        os.rename(entry.path, dest)  # rename(2), not copy: same filesystem, atomic
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise ConnectorConfigError(
                f"maildir folder {str(target)!r} is on another filesystem; mail cannot move atomically"
            ) from None
        raise
    return dest
