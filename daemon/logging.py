"""structlog set-up: JSON off a terminal, console on one; ticket text never logged by default."""

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


def configure(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog once for the whole process."""
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """Return a bound structlog logger named after its module."""
    return structlog.get_logger(name)
