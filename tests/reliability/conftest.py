"""Fixtures for the reliability suites: the daemon tests' model store (a tiny trained model)."""

from __future__ import annotations

from tests.daemon.conftest import store

__all__ = ["store"]
