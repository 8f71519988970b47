"""Training jobs: one at a time, in a worker thread that runs `retrain` (which trains in a child process).

Jobs live in memory: a restart forgets them (the trained versions and the daemon's log remain). The dataset's
row order is taken as time order, oldest first: the newest `retrain.holdout_share` of the rows is the holdout
both the new model and the current one are scored on, as in the daemon's own retraining.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from daemon.errors import TicketdError, TrainingBusy
from daemon.logging import get_logger
from daemon.ml.dataset import load_dataset
from daemon.state.records import TrainingRow
from daemon.state.uploads import KEEP_JOBS
from daemon.training.champion import RetrainResult, retrain
from daemon.training.lock import Claim

if TYPE_CHECKING:
    from daemon.metrics import Metrics
    from daemon.ml.serving import ModelHolder
    from daemon.ml.store import ModelStore
    from daemon.state.uploads import DatabaseJobs
    from daemon.training.champion import RetrainPolicy
    from daemon.training.datasets import DatasetStore
    from daemon.training.lock import Retraining

log = get_logger(__name__)


class Services(Protocol):
    """What a training job uses of the API's services (daemon.web.services.Services is one)."""

    datasets: DatasetStore
    policy: RetrainPolicy
    workdir: Path
    metrics: Metrics
    model: ModelHolder
    retraining: Retraining

    @property
    def store(self) -> ModelStore: ...

    def note_model(self) -> None: ...


_ORPHANED_AFTER_S = 10.0  # a shared job still "running" this long after its replica let the training lock go
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class Job:
    """One training request and what became of it."""

    id: str
    dataset_version: str
    promote: Literal["rule", "always"]
    labels: tuple[str, ...] | None
    epochs: int | None
    state: Literal["queued", "running", "succeeded", "failed"] = "queued"
    phase: str = "queued"
    created: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result: RetrainResult | None = None
    reason: str | None = None

    def elapsed(self) -> float:
        """Seconds since the job was accepted (frozen once it finished)."""
        return round((self.finished or time.monotonic()) - self.created, 1)


class JobConflict(Exception):
    """A training job is already queued or running."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


class TrainingJobs:
    """Accepts at most one job at a time and runs it in a daemon thread."""

    def __init__(self, services: Services, shared: DatabaseJobs | None = None) -> None:
        self.services = services
        self.shared = shared  # several replicas: every job's description, for any replica to answer about
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._claim: Claim | None = None

    def get(self, job_id: str) -> Job | None:
        """A job by id, if still remembered."""
        with self._lock:
            return self._jobs.get(job_id)

    def lookup(self, job_id: str) -> dict[str, Any] | None:
        """GET /train/{job}: a job of this replica, or (several replicas) one another replica runs or ran."""
        job = self.get(job_id)
        if job is not None:
            return self.describe(job)
        found = self.shared.get(job_id) if self.shared is not None else None
        if found is None:
            return None
        replica, description, written = found
        if description["state"] in ("queued", "running"):
            age = (datetime.now(UTC) - written).total_seconds()
            training = self.services.retraining.running()
            if age > _ORPHANED_AFTER_S and (training is None or training.replica != replica):
                # Its replica holds no training lock any more and wrote nothing since: it died mid-job.
                description["state"], description["outcome"] = "failed", "failed"
                description["reason"] = f"{replica}, which ran this job, stopped before it finished"
            else:  # elapsed goes on where the owner last wrote it
                progress = description["progress"]
                progress["elapsed_s"] = round(progress["elapsed_s"] + age, 1)
        return description

    def _publish(self, job: Job) -> None:
        """Several replicas: the job's description as it is now, for the others to answer GET /train/{job}."""
        if self.shared is None:
            return
        try:
            self.shared.publish(job.id, self.describe(job))
        except TicketdError as exc:  # the job goes on; other replicas see its last written state meanwhile
            log.warning("api_train_status_not_shared", job=job.id, error=str(exc))

    def active(self) -> Job | None:
        """The queued or running job, if any."""
        with self._lock:
            return next((j for j in self._jobs.values() if j.state in ("queued", "running")), None)

    def start(
        self,
        dataset_version: str,
        *,
        promote: Literal["rule", "always"] = "rule",
        labels: tuple[str, ...] | None = None,
        epochs: int | None = None,
    ) -> Job:
        """Queue a job and start its thread; JobConflict while a job is unfinished, TrainingBusy while cron trains."""
        with self._lock:
            busy = next((j for j in self._jobs.values() if j.state in ("queued", "running")), None)
            if busy is not None:
                raise JobConflict(busy)
            claim = self.services.retraining.try_claim("api")
            if claim is None:
                raise TrainingBusy(self.services.retraining.busy_with())
            self._claim = claim
            job = Job(uuid.uuid4().hex, dataset_version, promote, labels, epochs)
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
            self._thread = threading.Thread(target=self._run, args=(job,), name=f"train-{job.id[:8]}", daemon=True)
        log.info("api_train_queued", job=job.id, dataset=dataset_version, promote=promote)
        self._publish(job)
        self._thread.start()
        return job

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel a running job (its training process is killed) and wait for the thread; for server shutdown."""
        holder = self.services.retraining.holder
        if holder is not None and holder is self._claim:
            self.services.retraining.stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _rows(self, job: Job) -> tuple[list[TrainingRow], tuple[str, ...]]:
        svc = self.services
        dataset = load_dataset(svc.datasets.csv_path(job.dataset_version))
        wanted = job.labels or svc.policy.labels
        labels = tuple(name for name in wanted if name in dataset.label_names)
        if not labels:
            raise TicketdError(
                f"dataset {job.dataset_version} has none of the labels {', '.join(wanted)} "
                f"(it has {', '.join(dataset.label_names)})"
            )
        rows = [
            TrainingRow(
                connector="upload",
                ticket_id=e.id,
                text=e.text,
                queue=e.labels.get("queue", ""),
                priority=e.labels.get("priority"),
                language=e.language or None,
                closed_at=_EPOCH + timedelta(seconds=i),  # the row order, oldest first
                harvested_at=_EPOCH + timedelta(seconds=i),  # never read by retrain; as closed_at, not "now"
            )
            for i, e in enumerate(dataset.examples)
        ]
        return rows, labels

    def _run(self, job: Job) -> None:
        svc = self.services
        job.state, job.phase = "running", "loading dataset"
        try:
            self._publish(job)
            rows, labels = self._rows(job)
            policy = dataclasses.replace(svc.policy, labels=labels, min_new_examples=0)
            if job.epochs is not None:
                policy = dataclasses.replace(policy, epochs=job.epochs)
            if job.promote == "always":
                policy = dataclasses.replace(policy, tolerance=float("inf"))  # no label can be "worse"
            job.phase = f"training and scoring ({len(rows)} rows, labels {', '.join(labels)})"
            self._publish(job)
            result = retrain(
                rows,
                svc.store,
                policy,
                new_since_last=len(rows),
                workdir=svc.workdir,
                cancel=svc.retraining.cancel,
                progress=svc.retraining.note_progress,
            )
            job.result = result
            svc.metrics.retrain(result.outcome)
            if result.outcome == "promoted":
                job.phase = "loading the new model"
                svc.model.load()
                svc.note_model()
            job.reason = result.reason
            job.state = "failed" if result.outcome == "failed" else "succeeded"
        except (TicketdError, OSError, ValueError) as exc:
            job.reason, job.state = str(exc), "failed"
        except Exception as exc:  # a worker thread must always leave the job finished
            log.error("api_train_crashed", job=job.id, error_type=type(exc).__name__, exc_info=exc)
            job.reason, job.state = f"internal error ({type(exc).__name__}); see the daemon's log", "failed"
        finally:
            job.phase = "done"
            job.finished = time.monotonic()
            self._publish(job)  # before the lock goes: a released lock beside a "running" job reads as a dead replica
            if self._claim is not None:
                svc.retraining.release(self._claim)
            outcome = job.result.outcome if job.result else None
            log.info("api_train_finished", job=job.id, state=job.state, outcome=outcome)

    @staticmethod
    def describe(job: Job) -> dict[str, Any]:
        """The job as GET /api/v1/train/{job} answers it."""
        result = job.result
        metrics: dict[str, dict[str, dict[str, Any]]] = {}
        if result is not None:
            metrics = {"challenger": result.challenger_metrics, "champion": result.champion_metrics}
        return {
            "job_id": job.id,
            "state": job.state,
            "progress": {"phase": job.phase, "elapsed_s": job.elapsed()},
            "dataset_version": job.dataset_version,
            "promote": job.promote,
            "outcome": result.outcome if result else ("failed" if job.state == "failed" else None),
            "version": result.version if result else None,
            "champion": result.champion if result else None,
            "metrics": metrics,
            "reason": job.reason,
        }
