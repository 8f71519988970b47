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
from typing import Any

from daemon.errors import DatasetError
from daemon.ml.dataset import Columns, Dataset, load_dataset, write_csv
from daemon.ml.versions import file_lock, write_json_atomic

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
    """Numbered dataset versions in one directory; safe against concurrent uploads (flock)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.root / ".lock")

    def _numbers(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir() if (m := _VERSION.match(p.name)))

    def versions(self) -> list[str]:
        """Stored versions, oldest first."""
        return [f"v{n}" for n in self._numbers()]

    def latest(self) -> str | None:
        """The newest version, the default for a training job."""
        numbers = self._numbers()
        return f"v{numbers[-1]}" if numbers else None

    def csv_path(self, version: str) -> Path:
        """The normalised rows of a version (`load_dataset` reads it back)."""
        return self.root / f"{version}.csv"

    def summary(self, version: str) -> dict[str, Any] | None:
        """The stored summary, or None for an unknown version."""
        path = self.root / f"{version}.json"
        if not re.fullmatch(r"v\d+", version) or not path.is_file():
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
