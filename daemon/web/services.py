"""What the API works with: the served model, its store, uploaded datasets, training jobs, metrics, readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.config import ApiSection, Config
from daemon.errors import ModelError
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder, Switched
from daemon.ml.store import ModelStore
from daemon.runtime.wiring import model_holder
from daemon.training.champion import RetrainPolicy, policy_from_config
from daemon.training.datasets import DatasetStore
from daemon.training.jobs import TrainingJobs
from daemon.training.lock import Retraining
from daemon.web.errors import api_error
from daemon.web.sessions import DatabaseSessions, MemorySessions, Sessions
from daemon.web.throttle import Throttle

if TYPE_CHECKING:
    from daemon.pipeline.routing import LabelRule
    from daemon.runtime.intake import PushReply
    from daemon.state import State

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
# `ticketd run`'s Daemon.receive_push: (connector, headers, raw body) -> reply; None under `ticketd serve`.
Hooks = Callable[[str, Mapping[str, str], bytes], "PushReply"]


def model_readiness(model: ModelHolder) -> Readiness:
    """Standalone `ticketd serve`: ready once a model is loaded."""

    def check() -> tuple[bool, dict[str, Any]]:
        version = model.get().version if model.loaded else None
        return model.loaded, {"model": {"loaded": model.loaded, "version": version}}

    return check


@dataclass
class DashboardSource:
    """What `ticketd run` lends the dashboard beyond the API's services (`ticketd serve` has none of it)."""

    state: Any  # daemon.state.State
    connectors: Callable[[], list[dict[str, Any]]]  # per connector: name, type, mode, state, failure, reason, ...
    rules: Callable[[], Mapping[str, Mapping[str, LabelRule]]]
    include_ticket_text: Callable[[], bool]
    ticket_url: Callable[[str, str], str | None]


@dataclass
class Services:
    """Shared by every request; `ticketd run` passes its own ModelHolder, Metrics and readiness check."""

    api: ApiSection
    model: ModelHolder
    datasets_dir: Path
    workdir: Path
    metrics: Metrics
    policy: RetrainPolicy
    readiness: Readiness | None = None
    retraining: Retraining = field(default_factory=Retraining)  # `ticketd run` shares its own with the cron
    dashboard: DashboardSource | None = None  # `ticketd run`'s state and connectors for /ui; None under `serve`
    hooks: Hooks | None = None  # pushes from the helpdesks; None under `serve`
    state: State | None = None  # several replicas on PostgreSQL: datasets and job descriptions are shared there
    replica: str = ""  # this replica's id, recorded with the jobs it runs
    datasets: DatasetStore = field(init=False)
    jobs: TrainingJobs = field(init=False)
    sessions: Sessions = field(init=False)  # the dashboard's: in the state database, in memory only without one
    throttle: Throttle = field(init=False)  # failed credentials per client (daemon/web/throttle.py)

    def __post_init__(self) -> None:
        from daemon.state.uploads import DatabaseDatasets, DatabaseJobs

        shared = self.state if self.state is not None and self.state.shared else None
        self.datasets = DatasetStore(self.datasets_dir, DatabaseDatasets(shared) if shared else None)
        self.jobs = TrainingJobs(self, DatabaseJobs(shared, self.replica) if shared else None)
        sessions_at = self.state if self.state is not None else getattr(self.dashboard, "state", None)
        self.sessions = DatabaseSessions(sessions_at) if sessions_at is not None else MemorySessions()
        self.throttle = Throttle(lambda: self.api.failed_auth_per_minute, self.metrics)
        if self.readiness is None:
            self.readiness = model_readiness(self.model)

    @property
    def store(self) -> ModelStore:
        """The model store the holder serves from (promote, rollback and training write here)."""
        return self.model.store

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        model: ModelHolder | None = None,
        metrics: Metrics | None = None,
        readiness: Readiness | None = None,
        retraining: Retraining | None = None,
        dashboard: DashboardSource | None = None,
        hooks: Hooks | None = None,
        state: State | None = None,
        replica: str = "",
    ) -> Services:
        """Datasets in `<model.store>/datasets`, training files in `<model.store>/retrain` (as the daemon's cron)."""
        holder = model or model_holder(config)
        root = Path(config.model.store)
        return cls(
            api=config.api,
            model=holder,
            datasets_dir=root / "datasets",
            workdir=root / "retrain",
            metrics=metrics or Metrics(),
            policy=policy_from_config(config),
            readiness=readiness,
            retraining=retraining or Retraining(),
            dashboard=dashboard,
            hooks=hooks,
            state=state,
            replica=replica,
        )

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """The readiness check in use."""
        assert self.readiness is not None
        return self.readiness()

    async def switch_model(self, change: Awaitable[Switched]) -> dict[str, Any]:
        """A promotion or rollback (daemon.ml.serving) for an API client or the dashboard, answered alike.

        What goes wrong is answered from the one error table (daemon.errors.ANSWERS), without server paths.
        """
        try:
            switched = await change
        except ModelError as exc:
            raise api_error(exc, str(exc).replace(str(self.store.root), "the model store")) from None
        self.note_model()
        return {"current": switched.current, "previous": switched.previous, "served_version": switched.served}

    def note_model(self) -> None:
        """Publish the served version as the info metric (after a load, promote, rollback or training)."""
        self.metrics.model_version(self.model.get().version if self.model.loaded else None)
