"""Leases on PostgreSQL: which replica owns a connector now, and the epoch that fences a former owner.

A lease row names its owner, an `epoch` that grows by one at every change of owner, and `expires_at` on
the database's clock. The owner renews it every few seconds; another replica takes it over when it
expired (the owner stopped renewing: paused, cut off) or when the owner's session is gone (crashed).
For the latter, each owner holds a session advisory lock keyed by (lease, epoch), taken *before* its
epoch becomes visible; PostgreSQL releases it with the session, so a free lock for the current epoch
proves its owner is gone. A paused owner's lock is for an older epoch and proves nothing about the new.
A fenced write checks, in its own transaction and under a share lock on the row, that the lease still
has this owner and epoch: a takeover waits for it to commit, and a former owner's write is refused by
the database, whatever that replica's clock or timers think.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from daemon.errors import Fenced
from daemon.state.schema import leases

ADVISORY_SEED = 0x7469636C  # seeds the 64-bit advisory lock key of (lease, epoch): "ticl"


@dataclass(frozen=True)
class Fence:
    """Proof of ownership that a fenced write carries: lease `name` held by `owner` at `epoch`."""

    name: str
    owner: str
    epoch: int


@dataclass(frozen=True)
class Lease:
    """One lease as stored (for /readyz, `ticketd status` and spreading)."""

    name: str
    owner: str | None
    epoch: int
    expires_at: datetime
    expired: bool


def check(conn: Connection, fence: Fence) -> None:
    """Refuse the transaction unless `fence` still holds; the share lock makes a takeover wait for its commit."""
    query = sa.select(leases.c.epoch, leases.c.owner).where(leases.c.name == fence.name).with_for_update(read=True)
    row = conn.execute(query).first()
    if row is None or row.owner != fence.owner or row.epoch != fence.epoch:
        now = f"{row.owner} at epoch {row.epoch}" if row is not None else "nobody"
        raise Fenced(f"lease {fence.name!r}: held by {now}, not by {fence.owner} at epoch {fence.epoch}")


_ENSURE = sa.text(
    "INSERT INTO leases (name, owner, epoch, expires_at) VALUES (:name, NULL, 0, clock_timestamp()) "
    "ON CONFLICT (name) DO NOTHING"
)
_TAKE = sa.text(
    "UPDATE leases SET owner = :owner, epoch = epoch + 1, acquired_at = clock_timestamp(), "
    "expires_at = clock_timestamp() + make_interval(secs => :ttl) "
    "WHERE name = :name AND epoch = :seen AND (owner IS NULL OR expires_at <= clock_timestamp() OR :force) "
    "RETURNING epoch"
)
_RENEW = sa.text(
    "UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => :ttl) "
    "WHERE name = :name AND owner = :owner AND epoch = :epoch RETURNING name"
)
_RELEASE = sa.text(
    "UPDATE leases SET owner = NULL, expires_at = clock_timestamp() "
    "WHERE name = :name AND owner = :owner AND epoch = :epoch"
)
_LIST = sa.text("SELECT name, owner, epoch, expires_at, expires_at <= clock_timestamp() AS expired FROM leases")
_BEAT = sa.text(
    "INSERT INTO replicas (id, started_at, seen_at) VALUES (:owner, clock_timestamp(), clock_timestamp()) "
    "ON CONFLICT (id) DO UPDATE SET seen_at = clock_timestamp()"
)
_ALIVE = sa.text("SELECT count(*) FROM replicas WHERE seen_at > clock_timestamp() - make_interval(secs => :ttl)")
_GONE = sa.text("DELETE FROM replicas WHERE id = :owner OR seen_at < clock_timestamp() - interval '1 day'")
_KEY = f"hashtextextended(:name || '#' || CAST(:epoch AS text), {ADVISORY_SEED})"
_TRY_LOCK = sa.text(f"SELECT pg_try_advisory_lock({_KEY})")
_UNLOCK = sa.text(f"SELECT pg_advisory_unlock({_KEY})")


def ensure(conn: Connection, name: str) -> None:
    """The lease's row (epoch 0, nobody's) if it has none yet."""
    conn.execute(_ENSURE, {"name": name})


def take(conn: Connection, name: str, owner: str, ttl: float, *, seen: int, force: bool) -> Fence | None:
    """Become the owner at epoch `seen` + 1 if it is still at `seen` and free, expired or `force`d."""
    params = {"name": name, "owner": owner, "ttl": ttl, "seen": seen, "force": force}
    epoch = conn.execute(_TAKE, params).scalar_one_or_none()
    return None if epoch is None else Fence(name, owner, int(epoch))


def renew(conn: Connection, fence: Fence, ttl: float) -> bool:
    """Extend a lease still held at this epoch; False once another replica took it."""
    params: dict[str, Any] = {"name": fence.name, "owner": fence.owner, "epoch": fence.epoch, "ttl": ttl}
    return conn.execute(_RENEW, params).first() is not None


def release(conn: Connection, fence: Fence) -> None:
    """Give a lease up at once (a clean stop, a surplus when spreading) so another replica need not wait."""
    conn.execute(_RELEASE, {"name": fence.name, "owner": fence.owner, "epoch": fence.epoch})


def listed(conn: Connection) -> list[Lease]:
    return [Lease(r.name, r.owner, int(r.epoch), r.expires_at, bool(r.expired)) for r in conn.execute(_LIST)]


def beat(conn: Connection, owner: str, ttl: float) -> int:
    """Say this replica is alive; how many replicas are (itself included)."""
    conn.execute(_BEAT, {"owner": owner})
    return int(conn.execute(_ALIVE, {"ttl": ttl}).scalar_one())


def gone(conn: Connection, owner: str) -> None:
    conn.execute(_GONE, {"owner": owner})


def try_lock(conn: Connection, name: str, epoch: int) -> bool:
    """The (lease, epoch) session advisory lock on this (the leadership's own) connection, if no session holds it."""
    return bool(conn.execute(_TRY_LOCK, {"name": name, "epoch": epoch}).scalar_one())


def unlock(conn: Connection, name: str, epoch: int) -> None:
    conn.execute(_UNLOCK, {"name": name, "epoch": epoch})
