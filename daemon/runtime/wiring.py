"""What `ticketd run` and `ticketd serve` both build from a config, in one place: state, model holder, sharing."""

from __future__ import annotations

from daemon.config import Config
from daemon.ml.serving import ModelHolder
from daemon.runtime.leadership import default_replica_id
from daemon.state import State
from daemon.training.lock import Retraining


def replica_id(config: Config) -> str:
    """This process's name among replicas: `cluster.replica_id`, or one made from the host and process."""
    return config.cluster.replica_id or default_replica_id()


def model_holder(config: Config) -> ModelHolder:
    """The model this process classifies with, from `model.store`."""
    return ModelHolder(config.model.store, threads=config.model.threads)


def open_state(config: Config) -> State:
    """The state database of `state.url`, migrated to this release's schema."""
    return State.open(config.state.url)


def share(state: State, replica: str, model: ModelHolder, retraining: Retraining) -> None:
    """Replicas on PostgreSQL: model versions and the cluster's one training live in the shared database."""
    if state.shared:
        model.share(state.model_versions(replica))
        retraining.share(state, replica)
