"""Fixtures: a `url` for every backend (SQLite always; PostgreSQL when a local server can be started) and a `state`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.state import State
from tests.support.servers.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty state database on each backend (the SQLite one in a not-yet-existing directory)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/nested/dir/state.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def state(url: str) -> Iterator[State]:
    s = State.open(url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def pg(postgres_server: PostgresServer) -> Iterator[State]:
    """A state on a fresh PostgreSQL database: leases, the shared model store and what replicas share."""
    s = State.open(postgres_server.new_database())
    try:
        yield s
    finally:
        s.close()
