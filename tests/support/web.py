"""The API's test helpers: its token, a model store linked to the tiny model, a TestClient over an app."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from daemon.ml.store import ModelStore
from daemon.training.champion import RetrainPolicy
from daemon.web import Services, create_app

TOKEN = "test-token-0123456789-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# TF-IDF only: a training job takes seconds; the round-trip test trains a tiny transformer instead.
FAST_POLICY = RetrainPolicy(min_new_examples=0, epochs=1, max_length=32, keep_versions=50, train_args=("--tfidf-only",))

SUMMARY: dict[str, Any] = {}  # printed at the end of the run (tests/daemon/web/conftest.py)


def record_summary(name: str, value: Any) -> None:
    """Something to print at the end of the run (the schemathesis tally for the closing note)."""
    SUMMARY[name] = value


def linked_store(root: Path, model: Path, versions: int) -> Path:
    """A store whose versions are symlinks to one trained model (a copy is 200 MB); the last is current."""
    store = ModelStore(root)
    store.versions_dir.mkdir(parents=True)
    for n in range(1, versions + 1):
        os.symlink(model, store.versions_dir / f"v{n}")
        store.promote(f"v{n}")
    return root


def client_of(services: Services) -> TestClient:
    """A TestClient over the app (enter it); server errors come back as responses, as a real client sees them."""
    return TestClient(create_app(services), base_url="http://localhost", raise_server_exceptions=False)


def services_of(client: TestClient) -> Services:
    """The Services behind a test client's app."""
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    return svc
