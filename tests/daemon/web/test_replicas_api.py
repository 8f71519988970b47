"""Two replicas' APIs on one real PostgreSQL: any replica answers about what another accepted or runs.

A client behind a Service or an Ingress may upload to one replica, start the training on a second and
poll a third. Each "replica" here is the API's Services with a model cache of its own, sharing the
database's model store, datasets, job descriptions and the one training running in the cluster.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from daemon.config import ApiSection
from daemon.metrics import Metrics
from daemon.ml.serving import Follower, ModelHolder
from daemon.ml.store import ModelStore
from daemon.state import State
from daemon.web import Services
from tests.support.servers.postgres import PostgresServer
from tests.support.web import AUTH, FAST_POLICY, TOKEN, client_of

CSV = {**AUTH, "Content-Type": "text/csv"}


@pytest.fixture
def replicas(
    tmp_path: Path, tiny_model: Path, postgres_server: PostgresServer
) -> Iterator[Callable[[str], TestClient]]:
    url = postgres_server.new_database()
    with contextlib.ExitStack() as stack:
        seed = stack.enter_context(State.open(url))
        store = ModelStore(tmp_path / "seed", shared=seed.model_versions("admin"))
        store.promote(store.add(tiny_model))

        def make(replica: str) -> TestClient:
            state = stack.enter_context(State.open(url))
            holder = ModelHolder(tmp_path / replica / "models", threads=1)
            holder.share(state.model_versions(replica))
            holder.load()
            services = Services(
                api=ApiSection(tokens=[SecretStr(TOKEN)]),
                model=holder,
                datasets_dir=tmp_path / replica / "datasets",
                workdir=tmp_path / replica / "work",
                metrics=Metrics(),
                policy=FAST_POLICY,
                state=state,
                replica=replica,
            )
            services.retraining.share(state, replica)
            return stack.enter_context(client_of(services))  # closed before its state (last in, first out)

        yield make


def _wait_job(client: TestClient, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/train/{job_id}", headers=AUTH).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished within {timeout} s")


def test_upload_to_one_replica_train_on_another_poll_a_third(
    replicas: Callable[[str], TestClient], sample_csv: Path
) -> None:
    a, b, c = replicas("replica-a"), replicas("replica-b"), replicas("replica-c")
    uploaded = a.post("/api/v1/train-data", content=sample_csv.read_bytes(), headers=CSV)
    assert uploaded.status_code == 201, uploaded.text
    version = uploaded.json()["version"]
    accepted = b.post("/api/v1/train", json={"promote": "always"}, headers=AUTH)  # the latest: a's upload
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["dataset_version"] == version
    job_id = accepted.json()["job_id"]
    refused = c.post("/api/v1/train", json={"dataset_version": version}, headers=AUTH)
    if refused.status_code == 409:  # b still trains: one training in the whole cluster
        assert "on replica-b" in refused.json()["error"]["message"]
    job = _wait_job(c, job_id)  # c never saw the job: it answers from the database
    assert job["state"] == "succeeded" and job["outcome"] == "promoted" and job["version"] == "v2", job
    assert job["dataset_version"] == version and set(job["metrics"]["challenger"]) == {"queue", "priority"}
    assert (
        c.get(f"/api/v1/train/{job_id}", headers=AUTH).json() == b.get(f"/api/v1/train/{job_id}", headers=AUTH).json()
    )
    assert a.get("/api/v1/models", headers=AUTH).json()["current"] == "v2"
    follower = Follower(c.app.state.services.model)  # type: ignore[attr-defined]
    assert follower.tick()  # what `ticketd run` does every renew_interval
    assert c.post("/api/v1/classify", json={"ticket_data": "hi"}, headers=AUTH).json()["model_version"] == "v2"
    assert c.get("/api/v1/train/0123456789abcdef", headers=AUTH).status_code == 404


def test_a_training_on_one_replica_is_seen_and_cancelled_through_another(
    replicas: Callable[[str], TestClient],
) -> None:
    a, b = replicas("replica-a"), replicas("replica-b")
    holder = a.app.state.services.retraining  # type: ignore[attr-defined]
    claim = holder.try_claim("schedule")  # a's cron trains
    assert claim is not None
    try:
        holder.note_progress({"event": "fine-tuning", "step": 2, "steps": 9})
        deadline = time.monotonic() + 10
        while (now := b.get("/api/v1/training", headers=AUTH).json())["progress"] is None:
            assert time.monotonic() < deadline, now
            time.sleep(0.1)
        assert now["running"] and now["started_by"] == "schedule" and not now["cancelling"]
        assert now["progress"] == {"event": "fine-tuning", "step": 2, "steps": 9}
        data = "text,queue,priority\n" + "".join(f"printer {i} jams,Q{i % 2},low\n" for i in range(12))
        assert b.post("/api/v1/train-data", content=data, headers=CSV).status_code == 201
        refused = b.post("/api/v1/train", json={}, headers=AUTH)
        assert refused.status_code == 409
        assert "the scheduled retrain on replica-a" in refused.json()["error"]["message"]
        cancelled = b.post("/api/v1/training/cancel", headers=AUTH)
        assert cancelled.status_code == 202 and cancelled.json()["cancelling"]
        assert holder.cancel.wait(10)  # a's training process is killed on this event
    finally:
        holder.release(claim)
    assert b.get("/api/v1/training", headers=AUTH).json()["running"] is False
    assert b.post("/api/v1/training/cancel", headers=AUTH).status_code == 409


def test_a_job_whose_replica_died_is_reported_failed_not_running_forever(
    replicas: Callable[[str], TestClient],
) -> None:
    import sqlalchemy as sa

    from daemon.state.uploads import DatabaseJobs

    a = replicas("replica-a")
    state: State = a.app.state.services.state  # type: ignore[attr-defined]
    running = {
        "job_id": "dead0001",
        "state": "running",
        "progress": {"phase": "training and scoring", "elapsed_s": 5.0},
        "dataset_version": "v1",
        "promote": "rule",
        "outcome": None,
        "version": None,
        "champion": None,
        "metrics": {},
        "reason": None,
    }
    DatabaseJobs(state, "replica-gone").publish("dead0001", running)
    fresh = a.get("/api/v1/train/dead0001", headers=AUTH).json()
    assert fresh["state"] == "running"  # just written: its replica may be between the lock and the next write
    with state.write() as conn:  # ... a minute later, and no replica holds the training lock
        conn.execute(sa.text("UPDATE training_jobs SET updated_at = updated_at - interval '1 minute'"))
    job = a.get("/api/v1/train/dead0001", headers=AUTH).json()
    assert job["state"] == "failed" and job["outcome"] == "failed"
    assert job["reason"] == "replica-gone, which ran this job, stopped before it finished"


def test_a_finished_job_is_published_before_the_training_lock_goes(
    replicas: Callable[[str], TestClient], sample_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Otherwise, between the release and the last write, another replica reads a released lock beside a
    "running" job older than the orphan limit and answers that the job's replica died (seen under load)."""
    from daemon.state.uploads import DatabaseJobs

    b = replicas("replica-b")
    services = b.app.state.services  # type: ignore[attr-defined]
    seen: list[str] = []
    release = services.retraining.release

    def observed(claim: Any) -> None:
        found = DatabaseJobs(services.state, "replica-b").get(job_id)
        seen.append(found[1]["state"] if found is not None else "missing")
        release(claim)

    monkeypatch.setattr(services.retraining, "release", observed)
    assert b.post("/api/v1/train-data", content=sample_csv.read_bytes(), headers=CSV).status_code == 201
    accepted = b.post("/api/v1/train", json={"promote": "always"}, headers=AUTH)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert _wait_job(b, job_id)["state"] == "succeeded"
    # The job is published first, so the release may still be on its way in the training thread.
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == ["succeeded"]
