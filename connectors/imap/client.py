"""A thin, blocking layer over imapclient: one short session per connector call, errors translated.

Why a session per call: polls are minutes apart, servers drop idle connections (Dovecot after 30
minutes), and a fresh login is milliseconds; so there is no stale connection to detect and no
reconnect logic (connectors never retry). The blocking work runs in a worker thread (`in_session`).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread
import structlog
from imapclient import IMAPClient
from imapclient.exceptions import (
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
)

from connectors.base import secret
from connectors.errors import AuthError, ConnectorError, TransientError
from connectors.imap.config import ImapConfig

log = structlog.get_logger(__name__)

T = TypeVar("T")

DELETED = "\\Deleted"


class FolderMissing(Exception):
    """SELECT refused: the folder does not exist (or we may not open it)."""


@dataclass(frozen=True)
class Folder:
    """One LIST entry; `flags` are lower-cased (\\noselect, \\haschildren, ...)."""

    name: str
    delimiter: str | None
    flags: frozenset[str]

    @property
    def selectable(self) -> bool:
        """Only selectable folders can hold mail (\\Noselect ones are bare hierarchy nodes)."""
        return "\\noselect" not in self.flags and "\\nonexistent" not in self.flags


@dataclass(frozen=True)
class Selected:
    """What SELECT/EXAMINE told us about the folder we are in."""

    name: str
    uidvalidity: int
    permanent_flags: frozenset[str]

    def may_store(self, keyword: str) -> bool:
        """Whether a keyword survives the session (\\* in PERMANENTFLAGS, or the keyword already listed)."""
        return "\\*" in self.permanent_flags or keyword.lower() in self.permanent_flags


@dataclass(frozen=True)
class Fetched:
    """One message as fetched with BODY.PEEK[] (so \\Seen is never set by us)."""

    uid: int
    raw: bytes
    flags: tuple[str, ...]
    internaldate: datetime | None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Session:
    """A logged-in connection; methods act on the selected folder like IMAP itself."""

    def __init__(self, client: IMAPClient, config: ImapConfig) -> None:
        self._c = client
        self._config = config
        self._caps: frozenset[str] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """Upper-cased capability names, as advertised after login."""
        if self._caps is None:
            self._caps = frozenset(_text(c).upper() for c in self._c.capabilities())
        return self._caps

    def can_move(self) -> bool:
        """UID MOVE (RFC 6851) unless the configuration forbids it."""
        return self._config.use_move == "auto" and "MOVE" in self.capabilities

    def folders(self) -> list[Folder]:
        """Every folder the account can see, names decoded from modified UTF-7."""
        out = []
        for flags, delimiter, name in self._c.list_folders():
            out.append(
                Folder(
                    name=_text(name),
                    delimiter=_text(delimiter) if delimiter is not None else None,
                    flags=frozenset(_text(f).lower() for f in flags),
                )
            )
        return out

    def select(self, folder: str, *, readonly: bool) -> Selected:
        """SELECT (or EXAMINE when read-only, which can never change flags)."""
        try:
            info = self._c.select_folder(folder, readonly=readonly)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            raise FolderMissing(f"cannot open folder {folder!r}: {_text(exc)}") from exc
        permanent = info.get(b"PERMANENTFLAGS", info.get(b"FLAGS", ()))
        return Selected(
            name=folder,
            uidvalidity=int(info[b"UIDVALIDITY"]),
            permanent_flags=frozenset(_text(f).lower() for f in permanent),
        )

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid`, ascending, skipping \\Deleted mail that is on its way out."""
        # `UID SEARCH UID n:*` also matches the highest UID when n is above it (RFC 3501 `*`
        # semantics), so the range is filtered here rather than trusted.
        found = self._c.search(["UID", f"{last_uid + 1}:*", "NOT", "DELETED"])
        return sorted(uid for uid in found if uid > last_uid)

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        """Full messages, flags and arrival time; BODY.PEEK[] leaves \\Seen alone."""
        if not uids:
            return []
        data = self._c.fetch(list(uids), ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
        out = []
        for uid in uids:
            item = data.get(uid)
            if item is None:  # expunged between SEARCH and FETCH
                continue
            raw = item.get(b"BODY[]") or b""
            date = item.get(b"INTERNALDATE")
            out.append(
                Fetched(
                    uid=uid,
                    raw=bytes(raw),
                    flags=tuple(_text(f) for f in item.get(b"FLAGS", ())),
                    internaldate=date if isinstance(date, datetime) else None,
                )
            )
        return out

    def find_message_id(self, message_id: str) -> list[int]:
        """UIDs of the mail with exactly this Message-ID, because a move changes every UID."""
        # HEADER search is a case-insensitive substring match, so each hit is checked exactly.
        core = message_id.strip().strip("<>")
        if not core:
            return []
        charset = None if core.isascii() else "UTF-8"
        hits = self._c.search(["NOT", "DELETED", "HEADER", "Message-ID", core], charset=charset)
        if not hits:
            return []
        data = self._c.fetch(hits, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        exact = []
        for uid in sorted(hits):
            item = data.get(uid, {})
            header = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), b"")
            value = _text(header).partition(":")[2]
            if "".join(value.split()).strip("<>") == core:
                exact.append(uid)
        return exact

    def flags(self, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """Current flags and keywords of each message that still exists."""
        got = self._c.get_flags(list(uids))
        return {uid: tuple(_text(f) for f in got[uid]) for uid in uids if uid in got}

    def add_keywords(self, uids: Sequence[int], keywords: Iterable[str]) -> None:
        words = list(keywords)
        if words:
            self._c.add_flags(list(uids), words, silent=True)

    def remove_keywords(self, uids: Sequence[int], keywords: Iterable[str]) -> None:
        words = list(keywords)
        if words:
            self._c.remove_flags(list(uids), words, silent=True)

    def move(self, uids: Sequence[int], folder: str) -> None:
        """UID MOVE, else UID COPY + \\Deleted + UID EXPUNGE of exactly these UIDs (never a plain EXPUNGE)."""
        # Without UIDPLUS there is no safe expunge (plain EXPUNGE would also remove mail a person
        # flagged \Deleted), so the source copy stays flagged \Deleted for a person's client to purge.
        if self.can_move():
            self._c.move(list(uids), folder)
            return
        self._c.copy(list(uids), folder)
        self._c.add_flags(list(uids), [DELETED], silent=True)
        if "UIDPLUS" in self.capabilities:
            self._c.uid_expunge(list(uids))
        else:
            log.warning("imap server lacks UIDPLUS: moved messages stay behind flagged \\Deleted")


def _connect(config: ImapConfig) -> IMAPClient:
    client = IMAPClient(config.host, port=config.effective_port, ssl=config.ssl, timeout=config.timeout)
    # imaplib traces every line at debug level, mail text included: ticketd never logs mail text.
    client._imap.debug = 0
    # Aware datetimes (the server's offset) instead of naive local times.
    client.normalise_times = False
    return client


def _where(config: ImapConfig) -> str:
    return f"imap {config.host}:{config.effective_port}"


def _login(client: IMAPClient, config: ImapConfig) -> None:
    if config.starttls:
        client.starttls(ssl.create_default_context())
    try:
        client.login(config.user, secret(config.password))
    except LoginError as exc:
        reason = _text(exc.args[0] if exc.args else exc)
        # imapclient turns every failure of LOGIN into LoginError, a dropped connection too: only the
        # server's answer says anything about the credentials.
        if isinstance(exc.__context__, IMAPClientAbortError | OSError):
            raise TransientError(f"{_where(config)}: connection lost during login: {reason}") from None
        # Dovecot says [UNAVAILABLE] when its auth service is down: the credentials may be fine.
        if "[UNAVAILABLE]" in reason.upper() or "TEMPORARY" in reason.upper():
            raise TransientError(f"imap {config.host}: login temporarily impossible: {reason}") from None
        raise AuthError(f"imap {config.host}: login as {config.user!r} rejected: {reason}") from None


@contextlib.contextmanager
def translated(config: ImapConfig) -> Iterator[None]:
    """Network and protocol failures inside the block become connector errors naming the server."""
    where = _where(config)
    try:
        yield
    except ConnectorError:
        raise
    except IMAPClientAbortError as exc:
        raise TransientError(f"{where}: connection lost: {_text(exc)}") from None
    except TimeoutError:
        raise TransientError(f"{where}: timed out after {config.timeout:g}s") from None
    except ssl.SSLError as exc:
        raise TransientError(f"{where}: TLS failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise TransientError(f"{where}: {exc.strerror or type(exc).__name__}") from None
    except IMAPClientError as exc:
        raise TransientError(f"{where}: server refused: {_text(exc)}") from None


def close_quietly(client: IMAPClient) -> None:
    """Log out if the connection still allows it, then close the socket whatever happened."""
    with contextlib.suppress(Exception):
        client.logout()
    with contextlib.suppress(Exception):
        client.shutdown()


def open_client(config: ImapConfig) -> IMAPClient:
    """A logged-in connection; the caller closes it (`close_quietly`)."""
    client = _connect(config)
    try:
        _login(client, config)
    except BaseException:
        close_quietly(client)
        raise
    return client


def run_session(config: ImapConfig, work: Callable[[Session], T]) -> T:
    """Connect, log in, run `work`, log out; network and protocol failures become connector errors."""
    with translated(config):
        client = open_client(config)
        try:
            return work(Session(client, config))
        finally:
            close_quietly(client)


async def in_session(config: ImapConfig, work: Callable[[Session], T]) -> T:
    """`run_session` in a worker thread, so the event loop never blocks on the network."""
    return await anyio.to_thread.run_sync(run_session, config, work)
