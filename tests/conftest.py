"""Shared fixtures: dataset paths and one tiny trained model per test session."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
import structlog

from daemon.ml.store import ModelStore
from tests.support.paths import SAMPLE_200, STARTER, ZNUNY_WEBSERVICES
from tests.support.servers import unavailable
from tests.support.servers.postgres import PostgresServer, postgres_server  # noqa: F401 - a session fixture for every suite
from tests.support.servers.rt import RTServer, start_rt
from tests.support.servers.rt import missing_reason as rt_missing
from tests.support.servers.znuny import ZnunyServer, missing_reason, start_znuny

S = TypeVar("S", bound="_Server")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of the real Znuny (RT) carry the `znuny` (`rt`) marker, so `-m "not znuny"` leaves them out."""
    for item in items:
        if "znuny_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.znuny)
        if "rt_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rt)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The images take minutes to build, mostly waiting on disk and network: start that now, beside the suite."""
    if any(item.get_closest_marker("images") for item in session.items):
        from tests.support.release import start_building

        start_building()


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The shared 200-ticket fixture; falls back to the bundled demo data outside the workplace."""
    return SAMPLE_200 if SAMPLE_200.is_file() else STARTER


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> Path:
    """Train once per session on a tiny budget: train -> export -> quantise, both heads."""
    from daemon.ml.train import TrainOptions, train

    out = tmp_path_factory.mktemp("models") / "tiny"
    # Weights below 1.0 only, so every head ships a transformer and the ONNX path is exercised.
    opts = TrainOptions(epochs=1, max_length=48, batch_size=16, seed=3, tfidf_weights=(0.0, 0.5), keep_torch=True)
    train(sample_csv, out, opts)  # PyTorch weights kept for bench/classify.py's smoke run
    return out


@pytest.fixture(scope="session")
def store(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store holding the session's tiny trained model, promoted as `current` (the daemon's `model.store`)."""
    root = tmp_path_factory.mktemp("store")
    copy = root / "incoming"
    shutil.copytree(tiny_model, copy)
    models = ModelStore(root / "models")
    models.promote(models.add(copy))
    return root / "models"


class _Server(Protocol):
    def stop(self) -> None: ...


def _session_server(name: str, slug: str, reason: str | None, start: Callable[[Path], S]) -> Iterator[S]:
    """A real server for the whole session in a temp dir of its own, removed with it; unavailable (CI: fails)."""
    if reason:
        unavailable(f"no real {name}: {reason}")
    root = Path(tempfile.mkdtemp(prefix=f"ticketd-{slug}-"))
    try:
        server = start(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def znuny_server() -> Iterator[ZnunyServer]:
    """One real Znuny 7.1.7 per test session (about 15 s to start), with the dev, release and ticketd web services."""
    yield from _session_server("Znuny", "znuny", missing_reason(), lambda root: start_znuny(root, ZNUNY_WEBSERVICES))


@pytest.fixture(scope="session")
def rt_server() -> Iterator[RTServer]:
    """One real Request Tracker 5 per test session (about 4 s to start): queues, the ticketd agent, its token."""
    yield from _session_server("Request Tracker", "rt", rt_missing(), start_rt)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that configures logging (an in-process `ticketd run` at level warning) leaves it as it found it."""
    before, level = structlog.get_config(), logging.getLogger().level
    yield
    structlog.configure(**before)
    logging.getLogger().setLevel(level)


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """After each test, the PostgreSQL databases it made are dropped (the server itself lives for the session)."""
    yield
    for server in PostgresServer.running:
        server.drop_created()
