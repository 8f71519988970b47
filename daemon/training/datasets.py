"""Uploaded training data as numbered versions: `vN.csv` (normalised rows) and `vN.json` (its summary).

The summary is written last and is what makes a version exist, so an upload that fails (or a crash part-way)
leaves no version behind; both files are written to a temp name and moved into place with os.replace.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.errors import DatasetError
from daemon.ml.dataset import Columns, Dataset, load_dataset, write_csv
from daemon.ml.store import file_lock, write_json_atomic

if TYPE_CHECKING:
    from daemon.state.uploads import DatabaseDatasets

_VERSION = re.compile(r"^v(\d+)\.json$")


def _bare(exc: DatasetError) -> str:
    """The message without DatasetError's `file:line column` prefix (the file is a server-side temp name)."""
    where = ":".join(str(p) for p in (exc.file, exc.line) if p is not None)
    if exc.column is not None:
        where = f"{where} column {exc.column!r}" if where else f"column {exc.column!r}"
    text = str(exc)
    return text[len(where) + 2 :] if where and text.startswith(f"{where}: ") else text


def dataset_error_details(exc: DatasetError) -> tuple[str, list[dict[str, Any]]]:
    """A client-facing message (`line 3 column 'queue': ...`) and the located detail for the envelope."""
    bare = _bare(exc)
    where = " ".join(
        p for p in (f"line {exc.line}" if exc.line else "", f"column {exc.column!r}" if exc.column else "") if p
    )
    message = f"{where}: {bare}" if where else bare
    return message, [{"line": exc.line, "column": exc.column, "message": bare}]


def label_counts(dataset: Dataset) -> dict[str, dict[str, int]]:
    """Rows per class, per label."""
    return {name: dict(sorted(Counter(dataset.labels(name)).items())) for name in dataset.label_names}


class DatasetStore:
    """Numbered dataset versions in one directory; safe against concurrent uploads (flock).

    With `shared` (several replicas on PostgreSQL) the versions live in the database and the directory
    caches their CSV files, so a dataset uploaded to one replica can be trained on by any.
    """

    def __init__(self, root: Path, shared: DatabaseDatasets | None = None) -> None:
        self.root = Path(root)
        self.shared = shared

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.root / ".lock")

    def _numbers(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir() if (m := _VERSION.match(p.name)))

    def versions(self) -> list[str]:
        """Stored versions, oldest first."""
        if self.shared is not None:
            return self.shared.versions()
        return [f"v{n}" for n in self._numbers()]

    def latest(self) -> str | None:
        """The newest version, the default for a training job."""
        versions = self.versions()
        return versions[-1] if versions else None

    def csv_path(self, version: str) -> Path:
        """The normalised rows of a version (`load_dataset` reads it back); fetched first when shared."""
        path = self.root / f"{version}.csv"
        if self.shared is not None and not path.is_file() and (csv := self.shared.csv(version)) is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".fetch-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(csv)
            os.replace(tmp, path)
        return path

    def summary(self, version: str) -> dict[str, Any] | None:
        """The stored summary, or None for an unknown version."""
        if not re.fullmatch(r"v\d+", version):
            return None
        if self.shared is not None:
            return self.shared.summary(version)
        path = self.root / f"{version}.json"
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def add(self, raw: bytes, suffix: str, columns: Columns | None = None) -> dict[str, Any]:
        """Validate `raw` exactly as `ticketd train` does, then store it as the next version; blocking.

        Raises DatasetError (with line and column) and stores nothing when the data is unusable.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".upload-", dir=self.root) as tmp:
            source = Path(tmp) / f"upload{suffix}"
            source.write_bytes(raw)
            dataset = load_dataset(source, columns=columns)
            normalised = Path(tmp) / "rows.csv"
            write_csv(dataset, normalised)
            if self.shared is not None:
                summary = self.shared.add(
                    normalised.read_bytes(),
                    {
                        "rows": len(dataset),
                        "labels": label_counts(dataset),
                        "sha256": dataset.sha256,
                        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    },
                )
                os.replace(normalised, self.root / f"{summary['version']}.csv")  # this replica's cache
                return summary
            with self._locked():
                numbers = self._numbers()
                version = f"v{(numbers[-1] + 1) if numbers else 1}"
                summary = {
                    "version": version,
                    "rows": len(dataset),
                    "labels": label_counts(dataset),
                    "sha256": dataset.sha256,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
                os.replace(normalised, self.csv_path(version))
                write_json_atomic(self.root / f"{version}.json", summary)
        return summary
