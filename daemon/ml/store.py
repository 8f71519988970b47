"""Versioned model directories under one root, with a `current` symlink that is switched atomically.

The on-disk layout (ROOT/versions/vN, ROOT/current, ROOT/history.json) is drawn in daemon/ml/layout.py.

With a PostgreSQL state (several replicas), the versions and the promotion stack live in the database
(daemon/state/model_versions.py) and ROOT is a cache of them: versions are fetched, verified and unpacked on first
use, `current` and history.json mirror the database's pointer, and other cached versions are evicted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.errors import (
    ModelError,
    ModelStoreError,
    NothingToRollBackError,
    UnknownVersionError,
    UnservableModelError,
)
from daemon.logging import get_logger
from daemon.ml.layout import CURRENT, HISTORY, METADATA, VERSION, VERSIONS

if TYPE_CHECKING:
    from daemon.state.model_versions import DatabaseVersions

log = get_logger(__name__)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created with its directory), so concurrent writers take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_json_atomic(path: Path, data: Any) -> None:
    """Readers see the old file or the new one, never half of it; durable before it replaces."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pack(model_dir: Path, archive: Path) -> None:
    """One uncompressed tar of a model directory (ONNX weights do not compress)."""
    with tarfile.open(archive, "w", dereference=True) as tar:  # a link (`current`) stores what it points at
        tar.add(model_dir.resolve(), arcname="model")


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack an archive made by `_pack` into `into`/model; only plain files and directories below it."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if not (member.isfile() or member.isdir()) or not parts or parts[0] != "model" or ".." in parts:
                raise ModelStoreError(f"{archive.name}: unexpected entry {member.name!r} in a model archive")
        tar.extractall(into, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(into)
    return into / "model"


@dataclass(frozen=True)
class VersionInfo:
    """One stored version, as `models list` shows it."""

    version: str
    path: Path
    current: bool
    metadata: dict[str, Any]


class ModelStore:
    """Adds, lists, promotes and rolls back model versions; safe against concurrent writers.

    With `shared` (PostgreSQL state) the database holds the versions and the pointer, and `root` caches them.
    """

    def __init__(self, root: str | Path, shared: DatabaseVersions | None = None) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / VERSIONS
        self.history_file = self.root / HISTORY
        self.shared = shared

    @property
    def where(self) -> str:
        """For messages: the database store, or the directory."""
        return self.shared.where if self.shared is not None else str(self.root)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / ".lock"):
            yield

    def staging_dir(self) -> Path:
        """A fresh directory on the store's filesystem to build a model in before `add`; checked writable."""
        try:
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.versions_dir))
            (path / ".probe").write_bytes(b"")
            (path / ".probe").unlink()
        except OSError as exc:
            raise ModelStoreError(f"model store {self.root}: cannot be written: {exc.strerror or exc}") from None
        return path

    def sweep_staging(self, older_than: float = 24 * 3600) -> list[str]:
        """Remove staging directories a killed trainer left behind; a live one is touched far more often."""
        if not self.versions_dir.is_dir():
            return []
        cutoff = time.time() - older_than
        swept = []
        for path in self.versions_dir.glob(".incoming-*"):
            newest = max((p.lstat().st_mtime for p in [path, *path.rglob("*")]), default=0.0)
            if newest < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                swept.append(path.name)
        return sorted(swept)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A `staging_dir` removed on exit, with the store directories it had to create while none got a version.

        So a training run that fails (bad data, no base model, ...) leaves the store exactly as it found it.
        """
        created = [p for p in (self.versions_dir, self.root, *self.root.parents) if not p.exists()]
        path = self.staging_dir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            for directory in created:  # deepest first; a directory that holds anything stays
                with contextlib.suppress(OSError):
                    directory.rmdir()

    def _numbers(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.versions_dir.iterdir() if (m := VERSION.match(p.name)))

    def _marker(self, version: str) -> Path:
        """The SHA-256 of the archive a cached version was unpacked from (shared store only)."""
        return self.versions_dir / f".{version}.sha256"

    def _place(self, model_dir: Path, version: str) -> None:
        """Move (or copy) a finished model directory in under `version`, replacing a stale cached copy."""
        target = self.versions_dir / version
        if target.exists():  # only in a cache: a version of that name from before the database held it
            self._remove(version)
        if self.versions_dir.resolve() in model_dir.resolve().parents:
            os.rename(model_dir, target)  # staged inside the store: same filesystem, atomic
        else:
            # Copy beside the target first, so a half-copied version never appears under its name.
            staging = self.staging_dir()
            try:
                shutil.copytree(model_dir, staging / "model")
                os.rename(staging / "model", target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        _fsync_dir(self.versions_dir)

    def _remove(self, version: str) -> None:
        """Rename first, so a half-deleted directory never looks like a version."""
        self._marker(version).unlink(missing_ok=True)
        trash = self.versions_dir / f".deleted-{version}-{os.getpid()}"
        os.rename(self.versions_dir / version, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def add(self, model_dir: Path) -> str:
        """Move a finished model directory in as the next version; returns its name."""
        meta_file = model_dir / METADATA
        if not meta_file.is_file():
            raise ModelStoreError(f"{model_dir}: not a complete model (no metadata.json)")
        with self._locked():
            if self.shared is None:
                numbers = self._numbers()
                version = f"v{(numbers[-1] + 1) if numbers else 1}"
                self._place(model_dir, version)
            else:
                version, digest = self._upload(model_dir, json.loads(meta_file.read_text(encoding="utf-8")))
                self._place(model_dir, version)
                self._marker(version).write_text(digest, encoding="utf-8")  # after `_place`, which drops stale ones
        return version

    def _upload(self, model_dir: Path, metadata: dict[str, Any]) -> tuple[str, str]:
        """Store a model directory in the database as its next version: (version, SHA-256 of its archive)."""
        assert self.shared is not None
        staging = self.staging_dir()
        try:
            archive = staging / "model.tar"
            _pack(model_dir, archive)
            added = self.shared.add(archive, metadata)
            assert added is not None
            size = archive.stat().st_size
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("model version stored in the database", version=added[0], size_bytes=size)
        return added

    def current(self) -> str | None:
        """Name of the version `current` points at, if any."""
        if self.shared is not None:
            return self.shared.pointer().current
        link = self.root / CURRENT
        if not link.is_symlink():
            return None
        return Path(os.readlink(link)).name

    def _history(self) -> list[str]:
        if self.shared is not None:
            return self.shared.pointer().stack
        if not self.history_file.is_file():
            return []
        try:
            stack = json.loads(self.history_file.read_text(encoding="utf-8"))["stack"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelStoreError(f"{self.history_file}: unreadable promotion history ({exc})") from exc
        return [str(v) for v in stack]

    def rollback_target(self) -> str | None:
        """The version a rollback would return to."""
        stack = self._history()
        return stack[-2] if len(stack) >= 2 else None

    def _switch(self, version: str, stack: list[str]) -> None:
        tmp = self.root / f".current.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(Path(VERSIONS) / version, tmp)
        os.replace(tmp, self.root / CURRENT)
        _fsync_dir(self.root)
        write_json_atomic(
            self.history_file, {"stack": stack, "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
        )

    def path(self, version: str) -> Path:
        """A version's directory, fetched from the database into the cache first when the store is shared."""
        if self.shared is None:
            return self.versions_dir / version
        with self._locked():
            return self._fetch(version)

    def _fetch(self, version: str) -> Path:
        assert self.shared is not None
        target = self.versions_dir / version
        stored = self.shared.get(version)
        if stored is None:
            known = ", ".join(v.version for v in self.shared.versions()) or "none"
            raise UnknownVersionError(f"no model version {version!r} in {self.where} (known: {known})")
        marker = self._marker(version)
        if (target / METADATA).is_file() and marker.is_file() and marker.read_text().strip() == stored.sha256:
            return target
        started = time.monotonic()
        staging = self.staging_dir()
        try:
            archive = staging / "model.tar"
            self.shared.fetch(stored, archive)
            unpacked = _unpack(archive, staging)
            archive.unlink()
            if target.exists():
                self._remove(version)
            os.rename(unpacked, target)
            marker.write_text(stored.sha256, encoding="utf-8")
            _fsync_dir(self.versions_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info(
            "model version fetched from the database",
            version=version,
            size_bytes=stored.size_bytes,
            seconds=round(time.monotonic() - started, 2),
        )
        self._evict(keep={version, *self._history()[-2:]})
        return target

    def _evict(self, keep: set[str]) -> None:
        """Drop cached versions nobody serves or rolls back to (they are fetched again when promoted)."""
        for n in self._numbers():
            if f"v{n}" not in keep:
                self._remove(f"v{n}")

    def _check(self, version: str) -> None:
        """Load the version completely and classify a probe ticket; a version that fails never becomes current."""

        from daemon.ml.classifier import check_servable  # loads the serving stack only when a version is probed

        try:
            check_servable(self.versions_dir / version)
        except ModelError as exc:
            raise UnservableModelError(f"{version} cannot serve, `current` unchanged: {exc}") from None

    def _change(self, serial: int, stack: list[str]) -> None:
        """The database's pointer becomes `stack` (unless another replica changed it first), then the cache's."""
        assert self.shared is not None
        if not self.shared.change(serial, stack):
            raise ModelStoreError(
                f"{self.where}: another replica or command changed `current` meanwhile; nothing changed here, "
                "look again and retry"
            )
        self._switch(stack[-1], stack)

    def promote(self, version: str, *, check: bool = True) -> None:
        """Point `current` at `version` in one atomic rename, after checking that it serves (`check`)."""
        with self._locked():
            if self.shared is not None:
                pointer = self.shared.pointer()
                self._fetch(version)
                if pointer.current == version:
                    self._switch(version, pointer.stack)
                    return
                if check:
                    self._check(version)
                self._change(pointer.serial, [*pointer.stack, version])
                return
            if not (self.versions_dir / version / METADATA).is_file():
                known = ", ".join(f"v{n}" for n in self._numbers()) or "none"
                raise UnknownVersionError(f"no model version {version!r} in {self.root} (known: {known})")
            stack = self._history()
            if stack and stack[-1] == version and self.current() == version:
                return
            if check:
                self._check(version)
            # A `current` that was deleted is created again; the history does not repeat its last entry.
            self._switch(version, stack if stack and stack[-1] == version else [*stack, version])

    def rollback(self, *, check: bool = True) -> str:
        """Return `current` to the version promoted before it, after checking that it serves; returns it."""
        with self._locked():
            pointer = self.shared.pointer() if self.shared is not None else None
            stack = pointer.stack if pointer is not None else self._history()
            if len(stack) < 2:
                raise NothingToRollBackError(
                    f"{self.where}: nothing to roll back to (promotion history: {stack or 'empty'})"
                )
            stack.pop()
            previous = stack[-1]
            if self.shared is not None:
                try:
                    self._fetch(previous)
                except UnknownVersionError as exc:  # pruned meanwhile: there is nothing to roll back to
                    raise NothingToRollBackError(str(exc)) from None
            elif not (self.versions_dir / previous / METADATA).is_file():
                raise NothingToRollBackError(f"{self.root}: previous version {previous} is missing on disk")
            if check:
                self._check(previous)
            if pointer is not None:
                self._change(pointer.serial, stack)
            else:
                self._switch(previous, stack)
            return previous

    def prune(self, keep: int) -> tuple[str, ...]:
        """Delete the oldest versions beyond `keep`, never the current one or the one rollback would return."""

        def protected(stack: list[str]) -> set[str]:
            return set(stack[-2:])

        with self._locked():
            if self.shared is not None:
                versions = [v.version for v in self.shared.versions()]
                candidates = [v for v in versions if v not in protected(self.shared.pointer().stack)]
                doomed = self.shared.delete(
                    candidates[: max(len(versions) - keep, 0)], keep=lambda pointer: protected(pointer.stack)
                )
                for version in doomed:
                    if (self.versions_dir / version).exists():
                        self._remove(version)
            else:
                names = [f"v{n}" for n in self._numbers()]
                candidates = [v for v in names if v not in {self.current(), self.rollback_target()}]
                doomed = candidates[: max(len(names) - keep, 0)]
                for version in doomed:
                    self._remove(version)
        if doomed:
            log.info("model versions pruned", versions=doomed, keep=keep)
        return tuple(doomed)

    def adopt_local(self) -> list[str]:
        """First start on a shared database: upload the cache's current version and its rollback target.

        So a single-replica installation moving its state to PostgreSQL keeps serving (and can roll back to)
        the models it had. Nothing happens when the database already holds a version.
        """
        if self.shared is None or self.shared.versions():
            return []
        local = ModelStore(self.root)
        stack = [v for v in local._history()[-2:] if (self.versions_dir / v / METADATA).is_file()]
        current = local.current()
        if current is not None and (not stack or stack[-1] != current):
            stack = [current]
        if not stack:
            return []
        with self._locked():
            staging = self.staging_dir()
            try:
                for i, version in enumerate(stack):
                    archive = staging / f"{version}.tar"
                    _pack(self.versions_dir / version, archive)
                    meta = json.loads((self.versions_dir / version / METADATA).read_text(encoding="utf-8"))
                    added = self.shared.add(archive, meta, version=version, if_empty=i == 0)
                    if added is None:
                        return []  # another replica uploaded first
                    self._marker(version).write_text(added[1], encoding="utf-8")
                    archive.unlink()
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self._change(0, stack)
        log.info("model store: the local versions were uploaded into the database", versions=stack)
        return stack

    def list(self) -> list[VersionInfo]:
        """Every stored version, oldest first."""
        current = self.current()
        if self.shared is not None:
            return [
                VersionInfo(v.version, self.versions_dir / v.version, v.version == current, v.metadata)
                for v in self.shared.versions()
            ]
        out = []
        for n in self._numbers():
            path = self.versions_dir / f"v{n}"
            try:
                meta = json.loads((path / METADATA).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = {}
            out.append(VersionInfo(f"v{n}", path, f"v{n}" == current, meta))
        return out
