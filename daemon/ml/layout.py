"""The model store's layout on disk, in one place; a model directory holds metadata.json and one folder per head.

ROOT/versions/v1/, v2/, ...    complete model directories (never modified after adding)
ROOT/current -> versions/vN    what serving loads
ROOT/history.json              promotion stack, so rollback returns to the version before
"""

from __future__ import annotations

import re
from pathlib import Path

from daemon.errors import ModelError

VERSIONS = "versions"
CURRENT = "current"
HISTORY = "history.json"
METADATA = "metadata.json"  # what makes a directory a model directory
VERSION = re.compile(r"^v(\d+)$")  # a version directory's name: v1, v2, ...


def resolve_model_dir(path: Path) -> Path:
    """A model directory itself, or the version a store root's `current` points at."""
    if (path / METADATA).is_file():
        return path
    current = path / CURRENT
    if current.is_symlink() or current.exists():
        target = current.resolve()
        if (target / METADATA).is_file():
            return target
        raise ModelError(f"{path}: `current` points at {target}, which holds no model")
    raise ModelError(f"{path}: no model here (expected metadata.json, or a model store with `current`)")
