"""`State`: the one object callers use, composed of the state's topics, each a class over the one engine.

    engine.py     Database: open and migrate, read()/write(fence), error translation
    ledger.py     Ledger: routing ledger, cursors, the ledger's aggregates for dashboard and reports
    training.py   TrainingStore: harvested training rows, retrain run history
    retention.py  Retention: purge by age, forget a ticket or an address
    sessions.py   DashboardSessions: dashboard logins shared by every replica
    cluster.py    Cluster: leases, replica heartbeats, NOTIFY, advisory-lock sessions (PostgreSQL)

Repositories beside it take the engine (a `Database`): model_versions.py (the shared model store) and
uploads.py (uploaded datasets, training jobs, the training running now).
"""

from __future__ import annotations

from daemon.state.cluster import Cluster
from daemon.state.ledger import Ledger
from daemon.state.model_versions import DatabaseVersions
from daemon.state.retention import Retention
from daemon.state.sessions import DashboardSessions
from daemon.state.training import TrainingStore


class State(Ledger, TrainingStore, Retention, DashboardSessions, Cluster):
    """Sync access to the state database; every write commits before it returns."""

    def model_versions(self, who: str) -> DatabaseVersions | None:
        """The model store's database side on PostgreSQL (several replicas share it); None on SQLite."""
        return DatabaseVersions(self, who) if self.shared else None
