"""Persistent daemon state: the exactly-once routing ledger, connector cursors, training store and retrain runs."""

from __future__ import annotations

from daemon.state.database import LedgerEntry, State, TrainingRow, session_digest

__all__ = ["LedgerEntry", "State", "TrainingRow", "session_digest"]
