"""Several `ticketd run` processes on one PostgreSQL against a fake Znuny and a fake Zammad (suite and bench).

Every replica gets the same config but its own `cluster.replica_id` and log. Leases are read from the
database itself, so the suite knows which process owns which connector when it picks one to kill.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from daemon.ml.store import ModelStore
from daemon.state import State
from tests.support.daemon import API_TOKEN, SUBJECTS, events
from tests.support.helpdesks import Helpdesk, start_daemon

LEASE_SECONDS = 3.0  # short, so the suite's SIGSTOP case runs in seconds; renewals every 0.5 s
RENEW_INTERVAL = 0.5


@dataclass
class Replica:
    id: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.time)

    def routed(self, connector: str | None = None, after: float = 0.0) -> list[dict[str, Any]]:
        """This replica's "ticket routed" events (for one connector, after a wall-clock time)."""
        found = []
        for e in events(self.log) if self.log.exists() else []:
            if e["event"] != "ticket routed" or (connector is not None and e.get("connector") != connector):
                continue
            if when(e) > after:
                found.append(e)
        return found

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


def when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


class Cluster:
    """Two fake helpdesks served on loopback, one PostgreSQL database, and the replicas started so far."""

    def __init__(
        self,
        tmp: Path,
        store: Path,
        database: str,
        *,
        tickets: int,
        batch_limit: int = 5,
        desks: dict[str, str] | None = None,
    ) -> None:
        self.tmp, self.store, self.database = tmp, store, database
        flavours = desks or {"znuny": "znuny", "zammad": "zammad"}  # connector name -> fake helpdesk
        self.desks = {name: Helpdesk(flavour) for name, flavour in flavours.items()}
        self.ids: dict[str, list[int]] = {name: [] for name in self.desks}
        self.add(tickets)
        self.batch_limit = batch_limit
        self.push_secret: str | None = None  # set: every connector takes pushes (routing.push), signed with it
        self.replicas: list[Replica] = []
        # The models live in the database (daemon/state/model_versions.py): uploaded once from a copy of `store`, and
        # each replica starts with an empty cache of its own that it fills from there.
        seed = tmp / "seed-models"
        shutil.copytree(store, seed, symlinks=True)
        with State.open(database) as state:
            ModelStore(seed, shared=state.model_versions("suite")).adopt_local()
        self._serving = ExitStack()
        self.urls = {name: self._serving.enter_context(desk.served()) for name, desk in self.desks.items()}
        State.open(database).close()  # the schema, before any replica or the suite looks at the leases
        self._engine = sa.create_engine(database)
        self._count = 0

    def add(self, tickets: int) -> None:
        """New customer tickets, spread over the helpdesks (safe while they are served)."""
        names = list(self.desks)
        start = sum(len(ids) for ids in self.ids.values())
        for i in range(start, start + tickets):
            name = names[i % len(names)]
            subject, body = SUBJECTS[i % len(SUBJECTS)]
            self.ids[name].append(self.desks[name].add_ticket(f"{subject} #{i}", body))

    def config(self, replica_id: str, *, database: str | None = None, api_port: int | None = None) -> Path:
        entries = []
        for name, desk in self.desks.items():
            built = yaml.safe_load(
                desk.config(self.tmp, self.urls[name], self.store, batch_limit=self.batch_limit).read_text()
            )
            entry = built["connectors"][0]
            entry["name"] = name
            if self.push_secret is not None:
                entry["routing"]["push"] = {"enabled": True, "poll_interval": 3600}
                entry["push_token" if desk.flavour == "znuny" else "webhook_secret"] = self.push_secret
            entries.append(entry)
        config = {
            **built,
            "model": {**built["model"], "store": str(self.tmp / replica_id / "models")},
            "state": {"url": database or self.database},
            "cluster": {
                "lease_seconds": LEASE_SECONDS,
                "renew_interval": RENEW_INTERVAL,
                "replica_id": replica_id,
            },
            "connectors": entries,
        }
        if api_port is not None:
            config["api"] = {
                "enabled": True,
                "host": "127.0.0.1",
                "port": api_port,
                "tokens": [API_TOKEN],
            }
        path = self.tmp / f"{replica_id}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def start(self, *, database: str | None = None, api_port: int | None = None, warm: bool = False) -> Replica:
        """A new replica; `warm`: its model cache filled beforehand (a restarted pod, not a new one)."""
        self._count += 1
        replica_id = f"replica-{self._count}"
        if warm:
            with State.open(self.database) as state:
                cache = ModelStore(self.tmp / replica_id / "models", shared=state.model_versions("suite"))
                cache.path(cache.current() or "v1")
        log = self.tmp / f"{replica_id}.log"
        config = self.config(replica_id, database=database, api_port=api_port)
        replica = Replica(replica_id, start_daemon(config, log=log), log)
        self.replicas.append(replica)
        return replica

    def owners(self) -> dict[str, str]:
        """Connector -> replica id, for leases held and not expired (on the database's clock)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT name, owner FROM leases WHERE owner IS NOT NULL AND expires_at > clock_timestamp()")
            )
            return {r.name: r.owner for r in rows if not r.name.startswith("~")}

    def replica(self, replica_id: str) -> Replica:
        return next(r for r in self.replicas if r.id == replica_id)

    def wait_owned(self, names: list[str], timeout: float = 90.0, exclude: set[str] | None = None) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owners = self.owners()
            if all(n in owners and owners[n] not in (exclude or set()) for n in names):
                return owners
            time.sleep(0.05)
        raise AssertionError(f"not owned within {timeout} s: {names}; leases {self.owners()}; logs {self.tails()}")

    def remaining(self) -> dict[str, list[int]]:
        return {
            n: [t for t in ids if self.desks[n].queue_of(t) == self.desks[n].inbound] for n, ids in self.ids.items()
        }

    def wait_routed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(self.remaining().values()):
                return True
            time.sleep(0.2)
        return False

    def _outcomes(self) -> Iterator[tuple[str, int, str, bool, int, int]]:
        """(connector, ticket, queue, still inbound, notes, writes) of every ticket, read once."""
        for name, ids in self.ids.items():
            desk = self.desks[name]
            for t in ids:
                queue = desk.queue_of(t)
                yield name, t, queue, queue == desk.inbound, desk.notes(t), desk.writes(t)

    def verdict(self) -> dict[str, Any]:
        """Lost (still inbound), doubled (notes other than one) and rewritten (more than move+priority+note)."""
        out: dict[str, Any] = {"lost": 0, "doubled": 0, "rewritten": 0, "tickets": 0}
        for _, _, _, inbound, notes, writes in self._outcomes():
            out["tickets"] += 1
            out["lost"] += inbound
            out["doubled"] += notes != 1
            out["rewritten"] += writes > 3
        return out

    def culprits(self) -> list[str]:
        """Each ticket the verdict counts against, with what its helpdesk holds (to read beside the replicas' logs)."""
        return [
            f"{name} #{t}: queue {queue!r}, {notes} note(s), {writes} write(s)"
            for name, t, queue, inbound, notes, writes in self._outcomes()
            if inbound or notes != 1 or writes > 3
        ]

    def tails(self) -> str:
        return "\n".join(
            f"--- {r.id}\n{r.log.read_text(errors='replace')[-1500:]}" for r in self.replicas if r.log.exists()
        )

    def stop(self) -> None:
        for r in self.replicas:
            if r.alive:
                r.proc.send_signal(signal.SIGCONT)
                r.proc.send_signal(signal.SIGTERM)
        for r in self.replicas:
            try:
                r.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                r.proc.kill()
        self._engine.dispose()
        self._serving.close()


@contextmanager
def cluster(
    tmp: Path, store: Path, database: str, *, tickets: int, batch_limit: int = 5, desks: dict[str, str] | None = None
) -> Iterator[Cluster]:
    c = Cluster(tmp, store, database, tickets=tickets, batch_limit=batch_limit, desks=desks)
    try:
        yield c
    finally:
        c.stop()


def log_events(replica: Replica, name: str) -> list[dict[str, Any]]:
    return [e for e in events(replica.log) if e["event"] == name] if replica.log.exists() else []


__all__ = ["Cluster", "Replica", "cluster", "log_events", "when"]
