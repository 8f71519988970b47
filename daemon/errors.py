"""ticketd's one exception tree, and the one table that says how the CLI and the API answer each error.

Every error a user can cause derives from one root, `TicketdError`. It lives in `connectors/errors.py`,
the bottom of the import graph (connectors never import the daemon), and is re-exported here; the
connectors' branch is defined there, the daemon's here. This is the only drawing of the whole tree:

TicketdError                  one clear line at the CLI, never a traceback
├── ConfigError               the daemon's configuration file is invalid (names file, line and YAML path)
├── DatasetError              bad training data (names file, line, column)
├── ModelError                a model directory that cannot be loaded or is inconsistent
│   ├── NoModelError          no model is loaded yet, or the store has no current version
│   └── ModelStoreError       versions, the `current` pointer, promote/rollback
│       ├── UnknownVersionError     no stored version of that name
│       ├── NothingToRollBackError  the promotion history has no earlier version (left)
│       └── UnservableModelError    a version that fails to load or classify is never made current
├── StateError                the state database cannot be opened, migrated or used (names the URL, never its password)
├── TrainingError             training cannot run (missing extra, bad base model, ...)
│   └── TrainingBusy          another training holds the cluster's one training claim: try again later
├── Fenced                    a write by a replica that lost the lease: refused, not failed
└── ConnectorError            connectors/errors.py: what a connector raises (the coordinator's policy per class)
    ├── TransientError        the helpdesk is unreachable or failing: retry later with backoff
    ├── AuthError             credentials rejected: stop polling, report not ready
    ├── TicketError           this one ticket cannot be read or written: skip it, keep going
    ├── ConnectorConfigError  the connector cannot be built from its configuration (names the key)
    ├── PushRejected          a push request is not from the helpdesk (no or a wrong signature/token)
    └── NotReady              a pushed ticket exists but is not complete yet (no article): ask again shortly

`ANSWERS` below maps each class to the CLI's exit code and line and to the API's HTTP status and error
code; `answer(exc)` finds the entry of the nearest class in `exc`'s MRO. The CLI (`daemon/cli`) and the
web layer (`daemon/web/errors.api_error`) ask it instead of deciding on their own. Exit codes: 0 ok,
1 a bug (anything outside the tree; the log has the traceback), 2 an error the user can fix,
75 (sysexits' EX_TEMPFAIL) nothing is wrong but now is not the time: try again later, 130 Ctrl-C.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.errors import (
    AuthError,
    ConnectorConfigError,
    ConnectorError,
    NotReady,
    PushRejected,
    TicketdError,
    TicketError,
    TransientError,
)

__all__ = [
    "ANSWERS",
    "Answer",
    "ConfigError",
    "DatasetError",
    "Fenced",
    "ModelError",
    "ModelStoreError",
    "NoModelError",
    "NothingToRollBackError",
    "StateError",
    "TicketdError",
    "TrainingBusy",
    "TrainingError",
    "UnknownVersionError",
    "UnservableModelError",
    "answer",
    "cli_line",
]


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


class NoModelError(ModelError):
    """Nothing to classify with yet: no model is loaded, or the store has no current version."""


class ModelStoreError(ModelError):
    """The model store cannot perform the requested version operation."""


class UnknownVersionError(ModelStoreError):
    """The store holds no version of that name; the message lists the versions it has."""


class NothingToRollBackError(ModelStoreError):
    """A rollback with no earlier version to return to (the promotion history holds one entry, or it is gone)."""


class UnservableModelError(ModelStoreError):
    """A stored version failed to load or to classify a probe ticket, so `current` was left as it was."""


class StateError(TicketdError):
    """The state database is unreachable, locked, corrupt, from a newer ticketd, or its URL is unusable."""


class TrainingError(TicketdError):
    """Training cannot start or finish."""


class TrainingBusy(TrainingError):
    """Another training (a scheduled retrain, an API job, another replica's) holds the one training claim."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"another training is running: {holder}; try again when it has finished")
        self.holder = holder


class Fenced(TicketdError):
    """A write by a replica that no longer owns the lease (another replica took it over): refused, not failed."""


@dataclass(frozen=True)
class Answer:
    """How ticketd answers one class of error at the CLI and over HTTP."""

    exit_code: int  # the CLI's exit status
    cli: str  # the CLI's one line on stderr; {message} is str(exc), {command} the subcommand, {kind} the class name
    status: int  # the HTTP status the API answers with
    code: str  # the API's `error.code`


_ERROR = "ticketd: error: {message}"
_LATER = 75  # EX_TEMPFAIL

ANSWERS: dict[type[BaseException], Answer] = {
    # Anything outside the tree is a bug: the CLI logs its traceback, the API hides it (500).
    Exception: Answer(
        1, "ticketd: error: {command} failed unexpectedly ({kind}); see the log above", 500, "internal_error"
    ),
    TicketdError: Answer(2, _ERROR, 500, "internal_error"),
    ConfigError: Answer(2, _ERROR, 500, "internal_error"),
    DatasetError: Answer(2, _ERROR, 400, "invalid_dataset"),
    ModelError: Answer(2, _ERROR, 500, "model_load_failed"),
    NoModelError: Answer(2, _ERROR, 503, "no_model"),
    ModelStoreError: Answer(2, _ERROR, 409, "model_store_conflict"),
    UnknownVersionError: Answer(2, _ERROR, 404, "unknown_version"),
    NothingToRollBackError: Answer(2, _ERROR, 409, "nothing_to_roll_back"),
    UnservableModelError: Answer(2, _ERROR, 422, "model_not_servable"),
    StateError: Answer(2, _ERROR, 503, "state_unavailable"),
    TrainingError: Answer(2, _ERROR, 500, "training_failed"),
    TrainingBusy: Answer(_LATER, "ticketd: error: {command}: {message}", 409, "training_in_progress"),
    Fenced: Answer(_LATER, _ERROR, 409, "fenced"),
    ConnectorError: Answer(2, "ticketd: error: connector: {message}", 502, "connector_error"),
    TransientError: Answer(
        _LATER, "ticketd: error: helpdesk unreachable, try again later: {message}", 503, "unavailable"
    ),
    AuthError: Answer(2, "ticketd: error: helpdesk credentials rejected: {message}", 502, "connector_auth_failed"),
    TicketError: Answer(2, "ticketd: error: connector: {message}", 502, "ticket_unusable"),
    ConnectorConfigError: Answer(2, "ticketd: error: connector configuration: {message}", 500, "internal_error"),
    PushRejected: Answer(2, _ERROR, 401, "unauthorized"),
    NotReady: Answer(_LATER, _ERROR, 503, "not_ready"),
}


def answer(exc: BaseException) -> Answer:
    """The entry of the nearest class in `exc`'s MRO; anything outside the tree is a bug (exit 1, HTTP 500)."""
    for cls in type(exc).__mro__:
        found = ANSWERS.get(cls)
        if found is not None:
            return found
    return ANSWERS[Exception]


def cli_line(exc: BaseException, command: str) -> str:
    """The CLI's one line for `exc`, raised by subcommand `command`."""
    return answer(exc).cli.format(message=exc, command=command, kind=type(exc).__name__)
