"""The HTTP API (FastAPI): train-data upload, training jobs, classification, model versions, health, metrics.

`create_app(services)` builds the app; `daemon.api.server` runs it under uvicorn, inside `ticketd run`'s
event loop or alone for `ticketd serve`.
"""

from __future__ import annotations

from daemon.api.app import create_app
from daemon.api.services import Services

__all__ = ["Services", "create_app"]
