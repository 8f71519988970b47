"""Fixtures shared by the daemon tests: a model store holding the session's tiny trained model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daemon.ml.store import ModelStore


@pytest.fixture(scope="session")
def store(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    copy = root / "incoming"
    shutil.copytree(tiny_model, copy)
    models = ModelStore(root / "models")
    models.promote(models.add(copy))
    return root / "models"
