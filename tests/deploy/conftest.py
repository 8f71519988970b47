"""The daemon tests' model store (a session's tiny trained model, promoted as `current`)."""

from tests.daemon.conftest import store

__all__ = ["store"]
