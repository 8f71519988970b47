"""Keywords the way Dovecot stores them in a Maildir, so a Dovecot serving it shows ours and we read its.

Each folder directory has a `dovecot-keywords` file, one line per keyword: `<index> <name>`, with
index 0-25. A mail carries keyword `i` as the lowercase letter `chr(ord("a") + i)` in the flags of
its file name's info suffix (`<unique>:2,<flags>`), next to the standard uppercase flags (D F P R S T);
flags are kept in ASCII order, as the Maildir specification asks. Letters mean different keywords in
different folders, so a mail moved between folders has its letters translated.

The file is only ever extended (an index, once used, keeps its name: file names depend on it), and
written like Dovecot does: into the dotlock `dovecot-keywords.lock` (created exclusively), then
renamed over the file. A lock held by someone else is a temporary condition (TransientError); one
older than `STALE_LOCK_SECONDS` is left over from a crash and is broken.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

from connectors._ids import is_number
from connectors.errors import TransientError

FILE_NAME = "dovecot-keywords"
LOCK_SUFFIX = ".lock"
MAX_KEYWORDS = 26
STALE_LOCK_SECONDS = 120
INFO_PREFIX = "2,"
COLON = ":"


def letter(index: int) -> str:
    """The flag letter of keyword number `index` (0 -> "a")."""
    return chr(ord("a") + index)


def parse(text: str) -> dict[int, str]:
    """Index -> keyword from the file's text; lines Dovecot would ignore are ignored."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        index, _, name = line.partition(" ")
        if is_number(index) and int(index) < MAX_KEYWORDS and name.strip():
            out[int(index)] = name.strip()
    return out


def render(keywords: dict[int, str]) -> str:
    """The file's text: `<index> <name>` lines in index order, as Dovecot writes it."""
    return "".join(f"{i} {keywords[i]}\n" for i in sorted(keywords))


def read(folder: Path) -> dict[int, str]:
    """The folder's keyword table; empty when it has no file yet."""
    try:
        return parse((folder / FILE_NAME).read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return {}


def ensure(folder: Path, names: Iterable[str]) -> dict[str, int]:
    """Indexes for `names` in the folder's table, adding the missing ones; a name that no longer fits is left out."""
    wanted = list(dict.fromkeys(names))
    table = read(folder)
    found = _lookup(table, wanted)
    if len(found) == len(wanted):
        return found
    lock = folder / (FILE_NAME + LOCK_SUFFIX)
    fd = _take_lock(lock)
    try:
        table = read(folder)  # someone may have added keywords before we held the lock
        for name in wanted:
            if name.lower() in {n.lower() for n in table.values()}:
                continue
            free = next((i for i in range(MAX_KEYWORDS) if i not in table), None)
            if free is None:
                break
            table[free] = name
        os.write(fd, render(table).encode("utf-8"))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(lock, folder / FILE_NAME)
    finally:
        if fd != -1:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(lock)
    return _lookup(table, wanted)


def _lookup(table: dict[int, str], names: list[str]) -> dict[str, int]:
    by_lower = {name.lower(): index for index, name in table.items()}
    return {name: by_lower[name.lower()] for name in names if name.lower() in by_lower}


def _take_lock(lock: Path) -> int:
    mode = 0o600
    with contextlib.suppress(OSError):
        mode = lock.parent.stat().st_mode & 0o666  # like Dovecot: files get the folder's permissions
    for _ in range(2):
        try:
            return os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            try:
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                continue  # released just now
            if age < STALE_LOCK_SECONDS:
                raise TransientError(f"maildir: {lock} is held by another process (Dovecot?)") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
    raise TransientError(f"maildir: could not take {lock}")


def split_name(filename: str) -> tuple[str, str]:
    """(unique key, flags) of a Maildir file name; flags are "" without a `:2,` info suffix."""
    key, _, info = filename.partition(COLON)
    return key, info[len(INFO_PREFIX) :] if info.startswith(INFO_PREFIX) else ""


def join_name(key: str, flags: str) -> str:
    """The file name for `key` with these flags, deduplicated and in ASCII order."""
    return f"{key}{COLON}{INFO_PREFIX}{''.join(sorted(set(flags)))}"


def names_of(flags: str, table: dict[int, str]) -> list[str]:
    """The keyword names a mail's flag letters stand for in its folder (unknown letters are skipped)."""
    out = []
    for ch in flags:
        if "a" <= ch <= "z" and (ord(ch) - ord("a")) in table:
            out.append(table[ord(ch) - ord("a")])
    return out


def system_flags(flags: str) -> str:
    """The standard (uppercase) flags, which mean the same in every folder."""
    return "".join(ch for ch in flags if not "a" <= ch <= "z")
