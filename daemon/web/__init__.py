"""The HTTP API (FastAPI): train-data upload, training jobs, classification, model versions, health, metrics.

`create_app(services)` builds the app; `daemon.web.server` runs it under uvicorn, inside `ticketd run`'s
event loop or alone for `ticketd serve`.
"""

from __future__ import annotations

from daemon.web.app import create_app
from daemon.web.services import Services

__all__ = ["Services", "create_app"]
