"""Training jobs: 202 and a job to poll, one at a time, the promotion rule or "always", and the full round trip."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daemon.training import jobs
from daemon.training.champion import RetrainPolicy, RetrainResult
from tests.support.web import AUTH, services_of

CSV = {**AUTH, "content-type": "text/csv"}


def wait_for(client: TestClient, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/v1/train/{job_id}", headers=AUTH).json()
        if body["state"] in ("succeeded", "failed"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def upload(client: TestClient, path: Path) -> str:
    response = client.post("/api/v1/train-data", content=path.read_bytes(), headers=CSV)
    assert response.status_code == 201, response.text
    version: str = response.json()["version"]
    return version


def test_train_needs_data_and_a_known_version(client: TestClient, sample_csv: Path) -> None:
    none = client.post("/api/v1/train", headers=AUTH)
    assert none.status_code == 409
    assert none.json()["error"]["code"] == "no_dataset"
    upload(client, sample_csv)
    unknown = client.post("/api/v1/train", json={"dataset_version": "v7"}, headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_dataset"
    assert "v1" in unknown.json()["error"]["message"]


def test_bad_train_requests_are_422(client: TestClient) -> None:
    for body in (
        {"epochs": 0},
        {"epochs": "many"},
        {"promote": "sometimes"},
        {"labels": []},
        {"labels": ["category"]},
        {"dataset_version": "../v1"},
        {"learning_rate": 0.1},
        [],
    ):
        response = client.post("/api/v1/train", json=body, headers=AUTH)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "validation_error"


def test_unknown_job_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/train/0123456789abcdef", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_job"


def test_promote_always_trains_promotes_and_reloads(client: TestClient, sample_csv: Path) -> None:
    version = upload(client, sample_csv)
    accepted = client.post("/api/v1/train", json={"promote": "always", "epochs": 1}, headers=AUTH)
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]
    assert accepted.json()["dataset_version"] == version
    assert accepted.headers["location"] == f"/api/v1/train/{job_id}"
    job = wait_for(client, job_id)
    assert job["state"] == "succeeded", job
    assert job["outcome"] == "promoted"
    assert job["version"] == "v3" and job["champion"] == "v2"
    assert job["progress"]["phase"] == "done" and job["progress"]["elapsed_s"] > 0
    assert set(job["metrics"]["challenger"]) == {"queue", "priority"}
    assert job["metrics"]["challenger"]["queue"]["n"] == 40  # the newest 20% of 200 rows
    assert services_of(client).model.get().version == "v3"
    assert client.post("/api/v1/classify", json={"ticket_data": "hi"}, headers=AUTH).json()["model_version"] == "v3"
    assert 'ticketd_retrain_runs_total{outcome="promoted"} 1.0' in client.get("/metrics").text
    assert client.get("/api/v1/model", headers=AUTH).json()["version"] == "v3"


def test_one_job_at_a_time(client: TestClient, sample_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    seen: dict[str, Any] = {}

    def slow_retrain(rows: Any, store: Any, policy: RetrainPolicy, **kw: Any) -> RetrainResult:
        seen.update(rows=rows, policy=policy, **kw)
        release.wait(30)
        return RetrainResult("rejected", None, store.current(), {}, {}, "kept v2: stub")

    monkeypatch.setattr(jobs, "retrain", slow_retrain)
    upload(client, sample_csv)
    first = client.post("/api/v1/train", json={"labels": ["queue"], "epochs": 2}, headers=AUTH)
    assert first.status_code == 202
    second = client.post("/api/v1/train", headers=AUTH)
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "training_in_progress"
    assert error["details"][0]["job_id"] == first.json()["job_id"]
    # The job thread loads the dataset first; under load it may not have reached training yet.
    for _ in range(300):
        running = client.get(f"/api/v1/train/{first.json()['job_id']}", headers=AUTH).json()
        if running["progress"]["phase"].startswith("training"):
            break
        time.sleep(0.05)
    assert running["state"] == "running" and running["progress"]["phase"].startswith("training")
    release.set()
    done = wait_for(client, first.json()["job_id"], 30)
    assert done["state"] == "succeeded" and done["outcome"] == "rejected" and done["version"] is None
    assert services_of(client).model.get().version == "v2"  # nothing promoted, nothing reloaded
    # What retrain was given: every row in file order as time order, the request's labels and epochs.
    rows = seen["rows"]
    assert len(rows) == 200 and seen["new_since_last"] == 200
    assert [r.closed_at for r in rows] == sorted(r.closed_at for r in rows)
    assert seen["policy"].labels == ("queue",) and seen["policy"].epochs == 2
    assert seen["policy"].tolerance == 0.0 and seen["policy"].min_new_examples == 0
    assert client.post("/api/v1/train", headers=AUTH).status_code == 202  # free again


def test_promote_always_lifts_the_tolerance(
    client: TestClient, sample_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies: list[RetrainPolicy] = []

    def fake(rows: Any, store: Any, policy: RetrainPolicy, **kw: Any) -> RetrainResult:
        policies.append(policy)
        return RetrainResult("skipped", None, None, {}, {}, "stub")

    monkeypatch.setattr(jobs, "retrain", fake)
    upload(client, sample_csv)
    job = client.post("/api/v1/train", json={"promote": "always"}, headers=AUTH).json()
    assert wait_for(client, job["job_id"], 30)["outcome"] == "skipped"
    assert policies[0].tolerance == float("inf")


def test_a_failing_job_reports_why(client: TestClient) -> None:
    data = "text,priority\n" + "".join(f"ticket {i},{'low' if i % 2 else 'high'}\n" for i in range(10))
    assert client.post("/api/v1/train-data", content=data.encode(), headers=CSV).status_code == 201
    job = client.post("/api/v1/train", json={"labels": ["queue"]}, headers=AUTH).json()
    done = wait_for(client, job["job_id"], 30)
    assert done["state"] == "failed" and done["outcome"] == "failed"
    assert "none of the labels queue" in done["reason"]


def test_shutdown_cancels_the_running_job(
    make_client: Callable[..., TestClient], sample_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancelled = threading.Event()

    def waits(rows: Any, store: Any, policy: RetrainPolicy, *, cancel: threading.Event, **kw: Any) -> RetrainResult:
        if cancel.wait(30):
            cancelled.set()
        return RetrainResult("failed", None, None, {}, {}, "training was cancelled")

    monkeypatch.setattr(jobs, "retrain", waits)
    client = make_client()
    upload(client, sample_csv)
    job_id = client.post("/api/v1/train", headers=AUTH).json()["job_id"]
    client.__exit__(None, None, None)  # lifespan shutdown
    assert cancelled.is_set()
    assert services_of(client).jobs.get(job_id).state == "failed"  # type: ignore[union-attr]


@pytest.mark.slow
def test_round_trip_upload_train_classify(make_client: Callable[..., TestClient], sample_csv: Path) -> None:
    """No model at first; upload the sample tickets, train a tiny transformer, classify with it."""
    client = make_client(versions=0, policy=RetrainPolicy(min_new_examples=0, epochs=1, max_length=32))
    assert client.post("/api/v1/classify", json={"ticket_data": "x"}, headers=AUTH).status_code == 503
    assert client.get("/readyz").status_code == 503
    version = upload(client, sample_csv)
    job_id = client.post("/api/v1/train", json={"dataset_version": version}, headers=AUTH).json()["job_id"]
    job = wait_for(client, job_id)
    assert job["state"] == "succeeded", job
    assert job["outcome"] == "promoted" and job["version"] == "v1" and job["champion"] is None
    assert "no current model" in job["reason"]
    assert client.get("/readyz").status_code == 200
    ticket = {"subject": "Invoice wrong", "body": "The amount on my last invoice is wrong, please correct it."}
    response = client.post("/api/v1/classify", json=ticket, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "v1"
    assert body["predicted_label"] in services_of(client).model.get().labels["queue"]
    assert client.get("/api/v1/models", headers=AUTH).json()["current"] == "v1"


def test_one_training_slot_for_the_schedule_and_the_api_with_progress_and_a_cancel(client: TestClient) -> None:
    svc = services_of(client)
    assert client.get("/api/v1/training", headers=AUTH).json() == {
        "running": False,
        "started_by": None,
        "running_s": None,
        "cancelling": False,
        "progress": None,
    }
    assert client.post("/api/v1/training/cancel", headers=AUTH).status_code == 409
    claim = svc.retraining.try_claim("schedule")  # what the daemon's cron does before it trains
    assert claim is not None
    try:
        data = "text,queue,priority\n" + "".join(f"printer {i} jams,Q{i % 2},low\n" for i in range(12))
        assert client.post("/api/v1/train-data", content=data, headers=CSV).status_code == 201
        refused = client.post("/api/v1/train", json={}, headers=AUTH)
        assert refused.status_code == 409 and "the scheduled retrain" in refused.json()["error"]["message"]
        now = client.get("/api/v1/training", headers=AUTH).json()
        assert now["running"] and now["started_by"] == "schedule" and not now["cancelling"]
        assert now["progress"] is None  # no event from the training process yet
        svc.retraining.note_progress({"event": "fine-tuning", "label": "queue", "step": 3, "steps": 40})
        progress = client.get("/api/v1/training", headers=AUTH).json()["progress"]
        assert progress == {"event": "fine-tuning", "label": "queue", "step": 3, "steps": 40}
        cancelled = client.post("/api/v1/training/cancel", headers=AUTH)
        assert cancelled.status_code == 202 and cancelled.json()["cancelling"]
        assert svc.retraining.cancel.is_set()  # the holder's training process is killed on this event
    finally:
        svc.retraining.release(claim)
    assert client.get("/api/v1/training", headers=AUTH).json()["running"] is False
    assert client.get("/api/v1/training").status_code == 401
