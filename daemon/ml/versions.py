"""Versioned model directories under one root, with a `current` symlink that is switched atomically.

ROOT/versions/v1/, v2/, ...    complete model directories (never modified after adding)
ROOT/current -> versions/vN    what serving loads
ROOT/history.json              promotion stack, so rollback returns to the version before
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.errors import ModelError, ModelStoreError, UnservableModelError

_VERSION = re.compile(r"^v(\d+)$")


def resolve_model_dir(path: Path) -> Path:
    """A model directory itself, or the version a store root's `current` points at."""
    if (path / "metadata.json").is_file():
        return path
    current = path / "current"
    if current.is_symlink() or current.exists():
        target = current.resolve()
        if (target / "metadata.json").is_file():
            return target
        raise ModelError(f"{path}: `current` points at {target}, which holds no model")
    raise ModelError(f"{path}: no model here (expected metadata.json, or a model store with `current`)")


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


@dataclass(frozen=True)
class VersionInfo:
    """One stored version, as `models list` shows it."""

    version: str
    path: Path
    current: bool
    metadata: dict[str, Any]


class ModelStore:
    """Adds, lists, promotes and rolls back model versions; safe against concurrent writers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.history_file = self.root / "history.json"

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
        return sorted(int(m.group(1)) for p in self.versions_dir.iterdir() if (m := _VERSION.match(p.name)))

    def add(self, model_dir: Path) -> str:
        """Move a finished model directory in as the next version; returns its name."""
        if not (model_dir / "metadata.json").is_file():
            raise ModelStoreError(f"{model_dir}: not a complete model (no metadata.json)")
        with self._locked():
            numbers = self._numbers()
            version = f"v{(numbers[-1] + 1) if numbers else 1}"
            target = self.versions_dir / version
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
        return version

    def current(self) -> str | None:
        """Name of the version `current` points at, if any."""
        link = self.root / "current"
        if not link.is_symlink():
            return None
        return Path(os.readlink(link)).name

    def _history(self) -> list[str]:
        if not self.history_file.is_file():
            return []
        try:
            stack = json.loads(self.history_file.read_text(encoding="utf-8"))["stack"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelStoreError(f"{self.history_file}: unreadable promotion history ({exc})") from exc
        return [str(v) for v in stack]

    def _switch(self, version: str, stack: list[str]) -> None:
        tmp = self.root / f".current.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(Path("versions") / version, tmp)
        os.replace(tmp, self.root / "current")
        _fsync_dir(self.root)
        write_json_atomic(
            self.history_file, {"stack": stack, "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
        )

    def _check(self, version: str) -> None:
        """Load the version completely and classify a probe ticket; a version that fails never becomes current."""
        from daemon.ml.classifier import check_servable

        try:
            check_servable(self.versions_dir / version)
        except ModelError as exc:
            raise UnservableModelError(f"{version} cannot serve, `current` unchanged: {exc}") from None

    def promote(self, version: str, *, check: bool = True) -> None:
        """Point `current` at `version` in one atomic rename, after checking that it serves (`check`)."""
        with self._locked():
            if not (self.versions_dir / version / "metadata.json").is_file():
                known = ", ".join(f"v{n}" for n in self._numbers()) or "none"
                raise ModelStoreError(f"no model version {version!r} in {self.root} (known: {known})")
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
            stack = self._history()
            if len(stack) < 2:
                raise ModelStoreError(f"{self.root}: nothing to roll back to (promotion history: {stack or 'empty'})")
            stack.pop()
            previous = stack[-1]
            if not (self.versions_dir / previous / "metadata.json").is_file():
                raise ModelStoreError(f"{self.root}: previous version {previous} is missing on disk")
            if check:
                self._check(previous)
            self._switch(previous, stack)
            return previous

    def list(self) -> list[VersionInfo]:
        """Every stored version, oldest first."""
        current = self.current()
        out = []
        for n in self._numbers():
            path = self.versions_dir / f"v{n}"
            try:
                meta = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = {}
            out.append(VersionInfo(f"v{n}", path, f"v{n}" == current, meta))
        return out
