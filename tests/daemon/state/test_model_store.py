"""The model store several replicas share, on a real PostgreSQL: versions and `current` live in the database.

Each "replica" here is a ModelStore with a cache directory of its own on one database, as the daemon's
processes are. Metadata-only stand-in models (promoted with check=False) for the store's rules; the
session's tiny trained model where a model is loaded.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from daemon.errors import ModelError, ModelStoreError
from daemon.ml.serving import Follower, ModelHolder, configured_store
from daemon.ml.store import ModelStore
from daemon.state import State
from daemon.state import model_versions as shared_models
from daemon.training.lock import ELSEWHERE, Retraining
from tests.support.servers.postgres import PostgresServer

T = TypeVar("T")


def _fake(path: Path, payload: bytes = b"") -> Path:
    path.mkdir(parents=True)
    (path / "metadata.json").write_text('{"created_at": "2026-12-05T00:00:00+00:00"}')
    (path / "sub").mkdir()
    (path / "sub" / "weights.bin").write_bytes(payload)
    return path


def _replica(pg: State, root: Path, who: str) -> ModelStore:
    versions = pg.model_versions(who)
    assert versions is not None
    return ModelStore(root, shared=versions)


def _cached(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.versions_dir.iterdir() if not p.name.startswith("."))


def _leftovers(store: ModelStore) -> list[str]:
    """Staging or half-deleted directories (the SHA-256 markers of cached versions are expected)."""
    return [p.name for p in store.versions_dir.iterdir() if p.name.startswith(".") and p.is_dir()]


def test_a_version_added_and_promoted_by_one_replica_is_what_every_replica_serves(
    pg: State, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_models, "CHUNK", 1000)  # several chunks per archive
    payload = os.urandom(5000)
    a, b = _replica(pg, tmp_path / "a", "replica-a"), _replica(pg, tmp_path / "b", "replica-b")
    assert a.add(_fake(tmp_path / "m1", payload)) == "v1"
    assert [v.version for v in b.list()] == ["v1"] and b.current() is None
    a.promote("v1", check=False)
    assert b.current() == "v1"
    served = b.path("v1")  # fetched from the database into b's cache, verified
    assert (served / "sub" / "weights.bin").read_bytes() == payload
    stored = pg.model_versions("x").get("v1")  # type: ignore[union-attr]
    assert stored is not None and stored.size_bytes > 5000 and stored.created_by == "replica-a"
    with pg.read() as conn:
        chunks = conn.execute(sa.text("SELECT count(*) FROM model_chunks WHERE version = 'v1'")).scalar_one()
    assert chunks == stored.size_bytes // 1000 + 1
    assert b.add(_fake(tmp_path / "m2")) == "v2"  # numbered by the database, whoever adds
    b.promote("v2", check=False)
    assert a.current() == "v2" and a.list()[-1].current
    assert a.rollback(check=False) == "v1"  # carried out once, for everyone
    assert b.current() == "v1" and pg.model_versions("x").pointer().stack == ["v1"]  # type: ignore[union-attr]
    assert os.readlink(a.root / "current") == "versions/v1"  # a's cache mirrors the pointer it changed
    with pytest.raises(ModelStoreError, match=r"nothing to roll back to"):
        b.rollback(check=False)
    with pytest.raises(ModelStoreError, match=r"no model version 'v9' in the model store in .*known: v1, v2"):
        b.promote("v9", check=False)
    assert _leftovers(a) == [] and _leftovers(b) == []


def test_concurrent_promotions_never_lose_one(pg: State, tmp_path: Path) -> None:
    seed = _replica(pg, tmp_path / "seed", "seed")
    for i in range(4):
        seed.add(_fake(tmp_path / f"m{i}"))
    seed.promote("v1", check=False)
    versions = pg.model_versions("x")
    assert versions is not None
    stale = versions.pointer()
    seed.promote("v2", check=False)
    assert not versions.change(stale.serial, ["v1", "v3"])  # compare-and-set: somebody changed it meanwhile
    assert versions.pointer().stack == ["v1", "v2"]

    outcomes: list[str] = []
    stores = [_replica(pg, tmp_path / f"r{i}", f"r{i}") for i in range(2)]
    barrier = threading.Barrier(2)

    def promote(store: ModelStore, version: str) -> None:
        barrier.wait()
        try:
            store.promote(version, check=False)
            outcomes.append(version)
        except ModelStoreError as exc:
            assert "changed `current` meanwhile" in str(exc)
            outcomes.append("refused")

    threads = [threading.Thread(target=promote, args=(s, v)) for s, v in zip(stores, ["v3", "v4"], strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pointer = versions.pointer()
    promoted = [o for o in outcomes if o != "refused"]
    assert pointer.stack == ["v1", "v2", *promoted]  # every success is in the stack, in order, none lost
    assert pointer.serial == 2 + len(promoted)


def test_an_archive_that_does_not_match_its_sha256_is_never_served(pg: State, tmp_path: Path) -> None:
    a, b = _replica(pg, tmp_path / "a", "a"), _replica(pg, tmp_path / "b", "b")
    a.promote(a.add(_fake(tmp_path / "m1", b"weights" * 100)), check=False)
    with pg.write() as conn:
        conn.execute(sa.text("UPDATE model_chunks SET data = 'tampered'::bytea WHERE version = 'v1'"))
    with pytest.raises(ModelStoreError, match=r"version v1: the archive does not match its SHA-256"):
        b.path("v1")
    assert _cached(b) == [] and _leftovers(b) == []
    holder = ModelHolder(tmp_path / "c")
    holder.share(pg.model_versions("c"))
    with pytest.raises(ModelError, match=r"current model version v1 cannot be loaded: .*does not match"):
        holder.load()


def test_prune_deletes_from_the_database_never_current_or_the_rollback_target(pg: State, tmp_path: Path) -> None:
    store = _replica(pg, tmp_path / "a", "a")
    for i in range(5):
        store.add(_fake(tmp_path / f"m{i}"))
    for version in ("v1", "v3", "v2"):  # current v2, rollback would return v3
        store.promote(version, check=False)
    assert store.prune(keep=3) == ("v1", "v4")
    other = _replica(pg, tmp_path / "b", "b")
    assert [v.version for v in other.list()] == ["v2", "v3", "v5"]
    with pg.read() as conn:
        left = conn.execute(sa.text("SELECT DISTINCT version FROM model_chunks ORDER BY version")).scalars().all()
    assert left == ["v2", "v3", "v5"]
    assert store.prune(keep=1) == ("v5",)
    assert other.rollback(check=False) == "v3"
    with pytest.raises(ModelStoreError, match=r"no model version 'v1'"):  # pruned: as a local store says it
        other.rollback(check=False)
    assert other.current() == "v3"
    assert "v1" not in _cached(store) and "v4" not in _cached(store)


def test_a_replica_caches_only_what_it_serves_or_rolls_back_to(pg: State, tmp_path: Path) -> None:
    a, b = _replica(pg, tmp_path / "a", "a"), _replica(pg, tmp_path / "b", "b")
    for i in range(4):
        a.promote(a.add(_fake(tmp_path / f"m{i}")), check=False)
        b.path(b.current() or "")  # b follows each promotion
    assert _cached(b) == ["v3", "v4"]


def test_the_first_start_on_a_database_uploads_the_local_current_and_rollback_target(pg: State, tmp_path: Path) -> None:
    local = ModelStore(tmp_path / "single")
    for i in range(3):
        local.promote(local.add(_fake(tmp_path / f"m{i}", bytes([i]) * 10)), check=False)  # stack v1, v2, v3
    shared = _replica(pg, tmp_path / "single", "replica-a")
    with capture_logs() as logs:
        assert shared.adopt_local() == ["v2", "v3"]
    assert [e["event"] for e in logs if "uploaded" in e["event"]] == [
        "model store: the local versions were uploaded into the database"
    ]
    assert _replica(pg, tmp_path / "other", "b").adopt_local() == []  # the database holds versions already
    fresh = _replica(pg, tmp_path / "fresh", "c")
    assert fresh.current() == "v3" and [v.version for v in fresh.list()] == ["v2", "v3"]
    assert (fresh.path("v3") / "sub" / "weights.bin").read_bytes() == bytes([2]) * 10
    assert fresh.add(_fake(tmp_path / "m9")) == "v4"  # numbering goes on after the uploaded versions
    assert fresh.rollback(check=False) == "v2"


def test_one_training_in_the_whole_cluster(pg: State, postgres_server: PostgresServer) -> None:
    here, there = Retraining(), Retraining()
    other = State.open(postgres_server.url(pg.url.rsplit("/", 1)[1]))
    try:
        here.share(pg, "replica-a")
        there.share(other, "replica-b")
        claim = here.try_claim("api")
        assert claim is not None
        assert there.try_claim("schedule") is None  # another process's claim, through PostgreSQL
        assert there.busy_with().startswith("a training job started through the API on replica-a (running")
        here.note_progress({"event": "fine-tuning", "step": 3})
        running, cancelling, progress = _eventually(lambda: there.status(), lambda s: s[2] is not None)
        assert running is not None and running.who == "api" and running.replica == "replica-a"
        assert not cancelling and progress == {"event": "fine-tuning", "step": 3}
        assert there.stop()  # a cancel through another replica reaches the holder within about a second
        _eventually(lambda: here.cancel.is_set(), bool)
        assert there.status()[1]  # cancelling
        here.release(claim)
        assert there.status() == (None, False, None) and not there.stop()
        again = there.try_claim("schedule")
        assert again is not None
        with pg.write() as conn:  # a holder that died leaves its row; without its lock it counts for nothing
            conn.execute(sa.text("UPDATE training_now SET replica = 'gone'"))
        there._end_session()
        assert here.status() == (None, False, None) and here.busy_with() == ELSEWHERE
        there.release(again)
    finally:
        other.close()


def _eventually(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            assert done(value), value
            return value
        time.sleep(0.1)


def test_every_replica_loads_a_promotion_and_keeps_serving_through_a_broken_one(
    pg: State, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = _replica(pg, tmp_path / "admin", "ticketd models")
    admin.promote(admin.add(tiny_model))
    replica = ModelHolder(tmp_path / "replica")
    replica.share(pg.model_versions("replica-b"))
    follower = Follower(replica)
    assert follower.tick() and replica.get().version == "v1"
    assert not follower.tick()  # nothing changed
    admin.promote(admin.add(tiny_model))  # another replica promotes
    assert follower.tick() and replica.get().version == "v2"
    broken = _fake(tmp_path / "broken")
    admin.promote(admin.add(broken), check=False)  # pushed past the check: what a replica does with it
    loads: list[bool] = []
    load = replica.load
    monkeypatch.setattr(replica, "load", lambda *args: loads.append(True) or load(*args))
    with capture_logs() as logs:
        assert not follower.tick() and not follower.tick()
        assert replica.get().version == "v2"  # keeps serving the one it had
        assert len(loads) == 1  # the broken version is not fetched and loaded again at every look
        monkeypatch.setattr(follower, "RETRY_S", 0.0)
        assert not follower.tick() and len(loads) == 2  # ... but again after a while
        assert admin.rollback() == "v2"
        assert not follower.tick()  # v2 is what it serves already
    assert [e["event"] for e in logs if e["event"].startswith("model reload")] == [
        "model reload failed; keeping the loaded model",
        "model reload works again",
    ]


def test_configured_store_uses_the_database_only_for_postgresql(
    pg: State, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    from daemon.config import Config
    from daemon.runtime.daemon import load_or_default

    def config(store: Path, url: str) -> Config:
        base = load_or_default(None)
        return base.model_copy(
            update={
                "model": base.model.model_copy(update={"store": store}),
                "state": base.state.model_copy(update={"url": url}),
            }
        )

    on_pg = config(tmp_path / "a", postgres_server.url(pg.url.rsplit("/", 1)[1]))
    with configured_store(on_pg, who="test") as store:
        assert store.shared is not None
        store.promote(store.add(_fake(tmp_path / "m1")), check=False)
    assert pg.model_versions("x").pointer().current == "v1"  # type: ignore[union-attr]
    sqlite = config(tmp_path / "b", f"sqlite:///{tmp_path}/state.db")
    with configured_store(sqlite, who="test") as store:
        assert store.shared is None and store.current() is None
    assert not (tmp_path / "state.db").exists()  # SQLite: the directory store, as before; no database opened
