"""The model store that several replicas share, in the state's PostgreSQL: versions and the `current` pointer.

Why the database and not a volume or an object store: it is the one service every replica already
reaches, with credentials it already has, and the pointer changes in a transaction, so a promotion or a
rollback happens once whichever replica (or retrain Job) carried it out. Each version is stored as a tar
archive in chunks of CHUNK bytes with its SHA-256, so neither side ever holds a whole model in memory and
a replica's local copy (`model.store`, a cache) is verified before it is served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from daemon.errors import ModelStoreError
from daemon.state.schema import model_chunks, model_pointer, model_versions

if TYPE_CHECKING:
    from daemon.state.engine import Database

CHUNK = 8 * 1024 * 1024
_ADD_LOCK = 0x7469636D  # transaction advisory lock: one version added at a time, numbers never collide ("ticm")


@dataclass(frozen=True)
class StoredVersion:
    """One version in the database."""

    version: str
    number: int
    sha256: str
    size_bytes: int
    chunks: int
    metadata: dict[str, Any]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class Pointer:
    """The promotion stack (its top is `current`) and a serial that grows with every change."""

    stack: list[str]
    serial: int

    @property
    def current(self) -> str | None:
        """The version every replica serves."""
        return self.stack[-1] if self.stack else None


class DatabaseVersions:
    """The database side of daemon.ml.store.ModelStore when the state is PostgreSQL."""

    def __init__(self, db: Database, who: str) -> None:
        self._db = db
        self.who = who  # recorded with each version and pointer change: the replica, or a command

    @property
    def where(self) -> str:
        """For messages: the database, with its password masked."""
        return f"the model store in {self._db.url}"

    def versions(self) -> list[StoredVersion]:
        """Every stored version, oldest first."""
        query = sa.select(model_versions).order_by(model_versions.c.number)
        with self._db.read() as conn:
            return [_stored(r) for r in conn.execute(query)]

    def get(self, version: str) -> StoredVersion | None:
        """One version's row, if stored."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(model_versions).where(model_versions.c.version == version)).one_or_none()
        return None if row is None else _stored(row)

    def pointer(self) -> Pointer:
        """The promotion stack as it is now (empty before the first promotion)."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(model_pointer).where(model_pointer.c.id == 1)).one_or_none()
        return Pointer([], 0) if row is None else Pointer([str(v) for v in row.stack], int(row.serial))

    def add(
        self, archive: Path, metadata: dict[str, Any], *, version: str | None = None, if_empty: bool = False
    ) -> tuple[str, str] | None:
        """Store an archive as the next version (or as `version`): (version, SHA-256); None when `if_empty` and
        versions exist."""
        digest = hashlib.sha256()
        with self._db.write() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADD_LOCK)))
            numbers = list(conn.execute(sa.select(model_versions.c.number)).scalars())
            if if_empty and numbers:
                return None
            number = int(version[1:]) if version is not None else max(numbers, default=0) + 1
            name = version or f"v{number}"
            row = {"version": name, "number": number, "model_metadata": metadata, "created_by": self.who}
            conn.execute(  # the chunks need their version's row; nobody sees either before the commit
                sa.insert(model_versions).values(**row, sha256="", size_bytes=0, chunks=0, created_at=datetime.now(UTC))
            )
            size = chunks = 0
            with open(archive, "rb") as fh:
                while block := fh.read(CHUNK):
                    digest.update(block)
                    conn.execute(sa.insert(model_chunks).values(version=name, seq=chunks, data=block))
                    size, chunks = size + len(block), chunks + 1
            conn.execute(
                sa.update(model_versions)
                .where(model_versions.c.version == name)
                .values(sha256=digest.hexdigest(), size_bytes=size, chunks=chunks)
            )
        return name, digest.hexdigest()

    def fetch(self, stored: StoredVersion, into: Path) -> None:
        """Write a version's archive to `into`, one chunk at a time, and check it against its SHA-256."""
        version = stored.version
        digest = hashlib.sha256()
        with open(into, "wb") as fh:
            for seq in range(stored.chunks):
                with self._db.read() as conn:
                    block = conn.execute(
                        sa.select(model_chunks.c.data).where(
                            model_chunks.c.version == version, model_chunks.c.seq == seq
                        )
                    ).scalar_one_or_none()
                if block is None:  # deleted (pruned) while it was being copied
                    raise ModelStoreError(f"{self.where}: version {version} was removed while it was being fetched")
                digest.update(block)
                fh.write(block)
        if digest.hexdigest() != stored.sha256:
            raise ModelStoreError(f"{self.where}: version {version}: the archive does not match its SHA-256")

    def change(self, serial: int, stack: list[str]) -> bool:
        """Set the promotion stack if nobody changed it since `serial` was read; False if somebody did."""
        now = datetime.now(UTC)
        with self._db.write() as conn:
            row = conn.execute(
                sa.select(model_pointer.c.serial).where(model_pointer.c.id == 1).with_for_update()
            ).one_or_none()
            if (row.serial if row is not None else 0) != serial:
                return False
            top = conn.execute(sa.select(model_versions.c.version).where(model_versions.c.version == stack[-1]))
            if top.one_or_none() is None:  # older entries may have been pruned, as in a local store's history
                raise ModelStoreError(f"{self.where}: no version {stack[-1]} (removed meanwhile)")
            values = {"stack": stack, "serial": serial + 1, "changed_at": now, "changed_by": self.who}
            if row is None:
                conn.execute(sa.insert(model_pointer).values(id=1, **values))
            else:
                conn.execute(sa.update(model_pointer).where(model_pointer.c.id == 1).values(**values))
        return True

    def delete(self, versions: list[str], keep: Callable[[Pointer], set[str]]) -> list[str]:
        """Delete versions (their chunks go with them), never one that `keep(pointer)` protects now."""
        with self._db.write() as conn:
            row = conn.execute(
                sa.select(model_pointer.c.stack, model_pointer.c.serial)
                .where(model_pointer.c.id == 1)
                .with_for_update()
            ).one_or_none()
            pointer = Pointer([], 0) if row is None else Pointer([str(v) for v in row.stack], int(row.serial))
            doomed = [v for v in versions if v not in keep(pointer)]
            if doomed:
                conn.execute(sa.delete(model_chunks).where(model_chunks.c.version.in_(doomed)))
                conn.execute(sa.delete(model_versions).where(model_versions.c.version.in_(doomed)))
        return doomed


def _stored(row: Any) -> StoredVersion:
    return StoredVersion(
        row.version,
        row.number,
        row.sha256,
        row.size_bytes,
        row.chunks,
        dict(row.model_metadata),
        row.created_at,
        row.created_by,
    )
