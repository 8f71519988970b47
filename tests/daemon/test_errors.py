"""The one exception tree: drawn once (in daemon/errors.py), with unique names, and one table of answers."""

from __future__ import annotations

import inspect
import re
from types import ModuleType

import pytest

import connectors.errors
import daemon.errors
from daemon.errors import ANSWERS, TicketdError, answer, cli_line

MODULES = (daemon.errors, connectors.errors)
_NODE = re.compile(r"^(?P<indent>(?:[│ ] {3})*)(?:[├└]── )?(?P<name>[A-Z]\w+)\s")


def _defined(module: ModuleType) -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    ]


def _drawn() -> dict[str, str | None]:
    """Each class drawn in daemon/errors.py's docstring, with the parent the drawing gives it."""
    doc = daemon.errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        match = _NODE.match(line + " ")
        if match is None or (not stack and match["name"] != "TicketdError"):
            continue
        depth = len(match["indent"]) // 4 + (0 if match["name"] == "TicketdError" else 1)
        del stack[depth:]
        parents[match["name"]] = stack[-1] if stack else None
        stack.append(match["name"])
    return parents


def test_one_root_shared_by_daemon_and_connectors() -> None:
    assert daemon.errors.TicketdError is connectors.errors.TicketdError
    for cls in (*_defined(daemon.errors), *_defined(connectors.errors)):
        assert issubclass(cls, TicketdError), cls


def test_class_names_are_unique_across_both_modules() -> None:
    names = [cls.__name__ for module in MODULES for cls in _defined(module)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert "ConfigError" not in {cls.__name__ for cls in _defined(connectors.errors)}


def test_the_drawing_names_every_class_under_its_real_parent() -> None:
    drawn = _drawn()
    defined = {cls.__name__: cls for module in MODULES for cls in _defined(module)}
    assert set(drawn) == set(defined), f"missing: {set(defined) - set(drawn)}, stale: {set(drawn) - set(defined)}"
    for name, cls in defined.items():
        base = cls.__bases__[0].__name__
        assert drawn[name] == (None if base == "Exception" else base), name
    assert "├──" not in (connectors.errors.__doc__ or ""), "the tree is drawn once, in daemon/errors.py"


def test_every_class_has_its_own_answer() -> None:
    for module in MODULES:
        for cls in _defined(module):
            assert cls in ANSWERS, cls.__name__


def test_answer_walks_the_mro() -> None:
    class Nested(daemon.errors.UnknownVersionError):
        pass

    assert answer(Nested("v9")) is ANSWERS[daemon.errors.UnknownVersionError]
    assert answer(KeyError("x")) is ANSWERS[Exception]
    assert answer(KeyError("x")).exit_code == 1 and answer(KeyError("x")).status == 500


@pytest.mark.parametrize(
    ("exc", "exit_code", "status", "code"),
    [
        (daemon.errors.ConfigError("c.yaml:3: api.port: bad"), 2, 500, "internal_error"),
        (daemon.errors.DatasetError("empty queue label", file="t.csv", line=5), 2, 400, "invalid_dataset"),
        (daemon.errors.NoModelError("no model loaded"), 2, 503, "no_model"),
        (daemon.errors.ModelError("cannot load"), 2, 500, "model_load_failed"),
        (daemon.errors.UnknownVersionError("no model version 'v9'"), 2, 404, "unknown_version"),
        (daemon.errors.NothingToRollBackError("nothing to roll back to"), 2, 409, "nothing_to_roll_back"),
        (daemon.errors.UnservableModelError("v2 cannot serve"), 2, 422, "model_not_servable"),
        (daemon.errors.StateError("locked"), 2, 503, "state_unavailable"),
        (daemon.errors.TrainingBusy("the scheduled retrain (running 3 s)"), 75, 409, "training_in_progress"),
        (connectors.errors.ConnectorConfigError("maildir: bad folder"), 2, 500, "internal_error"),
        (connectors.errors.TransientError("timed out"), 75, 503, "unavailable"),
        (connectors.errors.PushRejected("bad signature"), 2, 401, "unauthorized"),
    ],
)
def test_the_table(exc: BaseException, exit_code: int, status: int, code: str) -> None:
    found = answer(exc)
    assert (found.exit_code, found.status, found.code) == (exit_code, status, code)
    assert "\n" not in cli_line(exc, "run") and str(exc) in cli_line(exc, "run")


def test_cli_lines() -> None:
    assert cli_line(daemon.errors.StateError("locked"), "report") == "ticketd: error: locked"
    busy = daemon.errors.TrainingBusy("the scheduled retrain (running 3 s)")
    assert cli_line(busy, "bootstrap") == (
        "ticketd: error: bootstrap: another training is running: the scheduled retrain (running 3 s); "
        "try again when it has finished"
    )
    assert cli_line(ValueError("x"), "run") == "ticketd: error: run failed unexpectedly (ValueError); see the log above"
