"""Opaque cursors for folders without UIDs: a time watermark plus the few mails just above it.

Maildir has no UIDs, and a cursor listing every delivered file would grow without end. So mails are
ordered by (ctime, unique key): the ctime of a file is set when it is renamed into the folder (an
MTA's or Dovecot's delivery, a move), at nanosecond resolution. The cursor keeps a watermark W (every
file whose ctime is at most W has been delivered) and the keys delivered with a ctime above W, with
W trailing the newest delivered ctime by `MARGIN_NS`: so two deliveries racing one directory scan,
or a filesystem with whole-second timestamps, lose nothing, and the key list holds only the mails of
the last few seconds.

A rename also sets ctime, so a mail that changes flags in the folder (someone read it in Dovecot,
which moves it from new/ to cur/) after the window comes again, with the same id, which the
daemon's ledger already knows: delivered at least once, never lost.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.maildir.files import Entry

PREFIX = "maildir1:"
MARGIN_NS = 5_000_000_000


@dataclass
class Mark:
    """One folder's position: watermark and key -> ctime of the mails delivered above it."""

    watermark: int = -1
    seen: dict[str, int] = field(default_factory=dict)

    def pending(self, entries: Sequence[Entry]) -> list[Entry]:
        """The mails not delivered yet, oldest first."""
        fresh = [e for e in entries if e.ctime_ns > self.watermark and e.key not in self.seen]
        return sorted(fresh, key=lambda e: (e.ctime_ns, e.key))

    def advance(self, taken: Sequence[Entry], rest: Sequence[Entry]) -> Mark:
        """The position after delivering `taken`; `rest` are the pending mails left for the next page."""
        seen = dict(self.seen)
        seen.update({e.key: e.ctime_ns for e in taken})
        watermark = self.watermark
        if seen:
            watermark = max(watermark, max(seen.values()) - MARGIN_NS)
        if rest:
            watermark = min(watermark, min(e.ctime_ns for e in rest) - 1)
        watermark = max(watermark, self.watermark)
        return Mark(watermark, {k: t for k, t in seen.items() if t > watermark})


def encode(marks: dict[str, Mark]) -> str:
    """folder -> [watermark, {key: ctime}] as JSON in URL-safe base64."""
    data = {folder: [m.watermark, m.seen] for folder, m in marks.items()}
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def decode(cursor: str | None) -> dict[str, Mark]:
    """Inverse of `encode`; ValueError for anything this connector did not write."""
    if cursor is None:
        return {}
    if not cursor.startswith(PREFIX):
        raise ValueError("not a maildir cursor")
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(cursor[len(PREFIX) :].encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise ValueError("corrupt maildir cursor") from exc
    if not isinstance(data, dict):
        raise ValueError("corrupt maildir cursor")
    out: dict[str, Mark] = {}
    for folder, pair in data.items():
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int) and isinstance(pair[1], dict)):
            raise ValueError("corrupt maildir cursor")
        seen = pair[1]
        if not all(isinstance(k, str) and isinstance(t, int) for k, t in seen.items()):
            raise ValueError("corrupt maildir cursor")
        out[str(folder)] = Mark(pair[0], dict(seen))
    return out
