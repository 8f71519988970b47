"""structlog set-up: JSON off a terminal, console on one; secrets and ticket text never logged by default.

One processor chain for everything the process logs: structlog's own events and, through the root
logger, every library that uses the standard `logging` module (uvicorn, APScheduler, Alembic, httpx,
transformers), Python warnings, and exceptions nobody caught (in the main thread, other threads and
the event loop). So redaction and the JSON format hold for every line.

What keeps secrets and ticket text out, whatever fails:
- exceptions are rendered without frame locals (structlog's default dict tracebacks and rich's console
  tracebacks show every local variable: request bodies, tokens, passwords);
- keys that name a secret or ticket text (`token`, `password`, `body`, ...) are redacted at any depth;
- every secret value the config holds (`hide`, called by the config loader) is replaced wherever it
  appears, in messages and exception texts too; pydantic's echo of a rejected input (`input_value=`) is cut.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from types import TracebackType
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

REDACTED = "[redacted]"
_REDACTED_KEYS = frozenset({"password", "token", "secret", "api_key", "authorization", "text", "body", "cookie"})
_REDACTED_SUFFIXES = ("_password", "_token", "_secret", "_api_key", "-authorization", "_cookie", "-cookie")
MIN_HIDDEN_CHARS = 8  # shorter values would match ordinary words; such secrets are too weak to rely on anyway
_MAX_DEPTH = 12  # deeper structures are cut: a hostile nested value must not exhaust the recursion limit
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=)", re.DOTALL)

_hidden: set[str] = set()
_hidden_pattern: re.Pattern[str] | None = None
_hidden_lock = threading.Lock()


def hide(values: Iterable[str | None]) -> None:
    """Never log these values (the config's tokens, passwords and URL passwords), wherever they turn up."""
    global _hidden_pattern
    with _hidden_lock:
        fresh = {v for v in values if v and len(v) >= MIN_HIDDEN_CHARS} - _hidden
        if not fresh:
            return
        _hidden.update(fresh)
        ordered = sorted(_hidden, key=len, reverse=True)  # a secret that contains another is replaced whole
        _hidden_pattern = re.compile("|".join(re.escape(v) for v in ordered))


def _secret_key(key: Any) -> bool:
    name = str(key).lower()
    return name in _REDACTED_KEYS or name.endswith(_REDACTED_SUFFIXES)


def _clean_text(value: str) -> str:
    pattern = _hidden_pattern
    if pattern is not None:
        value = pattern.sub(REDACTED, value)
    if "input_value=" in value:
        value = _PYDANTIC_INPUT.sub(f"input_value={REDACTED}", value)
    return value


def _clean(value: Any, depth: int = 0) -> Any:
    """A copy of a logged value with secret keys redacted and hidden values replaced, at every depth."""
    if isinstance(value, str):
        return _clean_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return "[nested too deeply]"
    if isinstance(value, Mapping):
        return {k: REDACTED if _secret_key(k) else _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return _clean_text(str(value))  # the renderers would print repr()/str(): clean what they would show


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Keep secrets and ticket text out of logs even when a caller passes them by mistake, at any depth."""
    for key in list(event_dict):
        if key in ("exc_info", "stack_info") or key.startswith("_"):
            continue  # rendered (without locals) later in the chain and cleaned by `_scrub`; or structlog's own
        event_dict[key] = REDACTED if _secret_key(key) else _clean(event_dict[key])
    return event_dict


def _scrub(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The last step before rendering: the rendered exception and stack pass the same cleaning."""
    for key in ("exception", "stack"):
        if key in event_dict:
            event_dict[key] = _clean(event_dict[key])
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


def _uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None, thread: str | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    fields = {"thread": thread} if thread else {}
    get_logger("ticketd").error("uncaught exception", error_type=kind.__name__, exc_info=(kind, exc, tb), **fields)


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None and not issubclass(args.exc_type, SystemExit):
        name = args.thread.name if args.thread is not None else None
        _uncaught(args.exc_type, args.exc_value, args.exc_traceback, name or "?")


def configure(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog, the root logger, warnings and uncaught exceptions once for the whole process."""
    use_json = not sys.stderr.isatty() if json is None else json
    if use_json:
        renderer: Any = structlog.processors.JSONRenderer()
        # Frames as file, line and function only: locals would put request bodies and credentials in the log.
        exceptions: Any = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    else:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        exceptions = structlog.processors.format_exc_info  # the plain traceback text, then cleaned like the rest
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    tail: list[Any] = [exceptions, _scrub, renderer]
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
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
    sys.excepthook = lambda kind, exc, tb: _uncaught(kind, exc, tb, None)
    threading.excepthook = _thread_hook


def get_logger(name: str) -> Any:
    """Return a bound structlog logger named after its module."""
    return structlog.get_logger(name)
