"""A throwaway PostgreSQL cluster on 127.0.0.1 for the suites that need one (state, replicas)."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa

from tests.support.servers import free_port, has_user, pg_bin, unavailable

_PG_USER = "ticketd"


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth), one fresh database per test."""

    running: ClassVar[list[PostgresServer]] = []  # not disposed of yet: tests/conftest.py drops their databases

    def __init__(self, port: int) -> None:
        self.port = port
        self._counter = itertools.count()
        self._admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        self._created: list[str] = []
        PostgresServer.running.append(self)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{_PG_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"state_{os.getpid()}_{next(self._counter)}"
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.url(name)

    def drop_created(self) -> None:
        """Drop the databases made since the last call (a test's): they hold model archives of hundreds of MB."""
        names, self._created = self._created, []
        with self._admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def dispose(self) -> None:
        if self in PostgresServer.running:
            PostgresServer.running.remove(self)
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start a private cluster with initdb + pg_ctl; skip (with the reason) when that is impossible here."""
    with running_postgres() as server:
        yield server


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """The cluster itself (the fixture's, and `bench/replicas.py`'s); stopped and removed on leaving."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("PostgreSQL test needs the psycopg driver (pip install 'psycopg[binary]')")
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql to run this test")
    prefix: list[str] = []
    owner: int | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres (or nobody) account
        runuser = shutil.which("runuser")
        account = next((name for name in ("postgres", "nobody") if has_user(name)), None)
        if runuser is None or account is None:
            unavailable("running as root without runuser or a postgres/nobody account to start PostgreSQL as")
        prefix = [runuser, "-u", account, "--"]
        owner = pwd.getpwnam(account).pw_uid
    root = Path(tempfile.mkdtemp(prefix="ticketd-pg-"))
    data, log = root / "data", root / "server.log"
    if owner is not None:
        os.chown(root, owner, -1)
    port = free_port()
    try:
        _run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", _PG_USER, "-E", "UTF8", "--no-sync"], root)
        options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run([*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"], root)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        detail = getattr(error, "stderr", "") or ""
        with contextlib.suppress(OSError):
            detail += log.read_text()
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"could not start a local PostgreSQL server: {error}; {detail.strip()[-500:]}")
    server = PostgresServer(port)
    try:
        yield server
    finally:
        server.dispose()
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            cwd=root,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def _run(command: list[str], cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, timeout=120)
