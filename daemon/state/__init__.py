"""Persistent daemon state: the exactly-once routing ledger, connector cursors, training store and retrain runs.

`State` (store.py) is composed of one class per topic over the engine (engine.py); records.py holds the plain
records it takes and returns.
"""

from __future__ import annotations

from daemon.state.records import LedgerEntry, TrainingRow
from daemon.state.sessions import session_digest
from daemon.state.store import State

__all__ = ["LedgerEntry", "State", "TrainingRow", "session_digest"]
