"""structlog set-up: JSON off a terminal, console on one; ticket text never logged by default.

One processor chain for everything the process logs: structlog's own events and, through the root
logger, every library that uses the standard `logging` module (uvicorn, APScheduler, Alembic, httpx,
transformers) and Python warnings. So redaction and the JSON format hold for every line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_REDACTED_KEYS = frozenset({"password", "token", "secret", "api_key", "authorization", "text", "body"})


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Keep secrets and ticket text out of logs even when a caller passes them by mistake."""
    for key in list(event_dict):
        if key.lower() in _REDACTED_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    """Look sys.stderr up on every use, so a replaced or closed stream is never written to."""
    return structlog.PrintLogger(file=sys.stderr)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler that, like `_stderr_logger`, writes to whatever sys.stderr is at the time."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


# Libraries whose INFO lines are per request or per job run: an access log of the helpdesk calls (URLs,
# which may carry query tokens) and "job executed" every few seconds. Their warnings and errors still show.
_QUIET_LIBRARIES = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "apscheduler": logging.WARNING,
    "alembic.runtime.plugins": logging.WARNING,  # "setup plugin ..." once per plugin at every start
}


def configure(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog, the root logger and warnings once for the whole process."""
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    tracebacks: list[Any] = [structlog.processors.dict_tracebacks] if use_json else []  # the console renders them
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tracebacks, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name, quiet in _QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(max(quiet, numeric))
    logging.captureWarnings(True)  # warnings.warn() -> the "py.warnings" logger -> the chain above


def get_logger(name: str) -> Any:
    """Return a bound structlog logger named after its module."""
    return structlog.get_logger(name)
