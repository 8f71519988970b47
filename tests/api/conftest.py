"""API fixtures: a model store whose versions link to the session's tiny model, and app/client factories."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from daemon.config import ApiSection
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder
from daemon.ml.store import ModelStore
from daemon.training.champion import RetrainPolicy
from daemon.web import Services, create_app

TOKEN = "test-token-0123456789-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# TF-IDF only: a training job takes seconds; the round-trip test trains a tiny transformer instead.
FAST_POLICY = RetrainPolicy(min_new_examples=0, epochs=1, max_length=32, keep_versions=50, train_args=("--tfidf-only",))

_summary: dict[str, Any] = {}


def record_summary(name: str, value: Any) -> None:
    """Something to print at the end of the run (the schemathesis tally for the closing note)."""
    _summary[name] = value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, value in _summary.items():
        terminalreporter.write_line(f"{name}: {json.dumps(value)}")


def linked_store(root: Path, model: Path, versions: int) -> Path:
    """A store whose versions are symlinks to one trained model (a copy is 200 MB); the last is current."""
    store = ModelStore(root)
    store.versions_dir.mkdir(parents=True)
    for n in range(1, versions + 1):
        os.symlink(model, store.versions_dir / f"v{n}")
        store.promote(f"v{n}")
    return root


@pytest.fixture
def make_services(tmp_path: Path, tiny_model: Path) -> Callable[..., Services]:
    """Services over a fresh store (`versions` linked versions, 0 for none) with the given api settings."""

    made = 0

    def make(*, versions: int = 2, load: bool = True, policy: RetrainPolicy = FAST_POLICY, **api: Any) -> Services:
        nonlocal made
        made += 1
        base = tmp_path / f"services-{made}"
        api.setdefault("tokens", [SecretStr(TOKEN)])
        root = base / "models"
        if versions:
            linked_store(root, tiny_model, versions)
        holder = ModelHolder(root, threads=1)
        if load and versions:
            holder.load()
        return Services(
            api=ApiSection(**api),
            model=holder,
            datasets_dir=base / "datasets",
            workdir=base / "work",
            metrics=Metrics(),
            policy=policy,
        )

    return make


@pytest.fixture
def make_client(make_services: Callable[..., Services]) -> Iterator[Callable[..., TestClient]]:
    """A TestClient over a fresh app; server errors come back as responses, as a real client would see them."""
    with contextlib.ExitStack() as stack:
        yield lambda **kwargs: stack.enter_context(client_of(make_services(**kwargs)))


def client_of(services: Services) -> TestClient:
    """A TestClient over the app (enter it); server errors come back as responses, as a real client sees them."""
    return TestClient(create_app(services), base_url="http://localhost", raise_server_exceptions=False)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """Tokens configured, two versions stored (v2 current and loaded)."""
    return make_client()


def services_of(client: TestClient) -> Services:
    """The Services behind a test client's app."""
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    return svc
