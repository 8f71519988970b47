"""The project's exception tree; every error a user can cause derives from TicketdError.

TicketdError
├── ConfigError           invalid configuration file (names file, line and YAML path)
├── DatasetError          bad training data (names file, line, column)
├── ModelError            a model directory that cannot be loaded or is inconsistent
│   └── ModelStoreError   versions, the `current` pointer, promote/rollback
│       └── UnservableModelError  a version that fails to load or classify is never made current
├── StateError            the state database cannot be opened, migrated or used (names the URL, never its password)
└── TrainingError         training cannot run (missing extra, bad base model, ...)
"""

from __future__ import annotations


class TicketdError(Exception):
    """Base class so the CLI can print any user-facing error without a traceback."""


class ConfigError(TicketdError):
    """The configuration cannot be used; each problem in the message names file, line and YAML path."""

    def __init__(self, message: str, *, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


class DatasetError(TicketdError):
    """Training data is unusable; the message names the culprit."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, column: str | None = None
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        where = ":".join(str(p) for p in (file, line) if p is not None)
        if column is not None:
            where = f"{where} column {column!r}" if where else f"column {column!r}"
        super().__init__(f"{where}: {message}" if where else message)


class ModelError(TicketdError):
    """A model directory is missing, incomplete or inconsistent."""


class ModelStoreError(ModelError):
    """The model store cannot perform the requested version operation."""


class UnservableModelError(ModelStoreError):
    """A stored version failed to load or to classify a probe ticket, so `current` was left as it was."""


class StateError(TicketdError):
    """The state database is unreachable, locked, corrupt, from a newer ticketd, or its URL is unusable."""


class TrainingError(TicketdError):
    """Training cannot start or finish."""


class Fenced(TicketdError):
    """A write by a replica that no longer owns the lease (another replica took it over): refused, not failed."""
