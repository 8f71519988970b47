"""The daemon's commands when something stands in the way: one line on stderr and the table's exit code."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.errors import ConnectorConfigError
from daemon.cli import main
from daemon.training.lock import Claim, Retraining


def _maildir_config(tmp_path: Path, **connection: Any) -> Path:
    mail = tmp_path / "mail"
    for sub in ("cur", "new", "tmp"):
        (mail / sub).mkdir(parents=True, exist_ok=True)
    config = {
        "model": {"store": str(tmp_path / "models")},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"enabled": False},
        "log": {"level": "warning", "json": True},
        "connectors": [{"type": "maildir", "name": "local", "path": str(mail), **connection}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_bootstrap_while_another_training_holds_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was an AttributeError (`.outcome` of None) and exit 1; now one line naming who trains, and 75 (try later)."""
    path = _maildir_config(tmp_path)
    monkeypatch.setattr(Retraining, "try_claim", lambda self, who: None)  # another replica holds the cluster's lock
    monkeypatch.setattr(Retraining, "running", lambda self: Claim("api", time.monotonic() - 12, "replica-b"))
    assert main(["bootstrap", "--config", str(path)]) == 75
    out, err = capsys.readouterr()
    assert "local: 0 closed tickets harvested" in out
    assert err == (
        "ticketd: error: bootstrap: another training is running: a training job started through the API on "
        "replica-b (running 12 s); try again when it has finished\n"
    )
    assert not (tmp_path / "models" / "current").exists()


def test_check_config_rejects_a_maildir_folder_with_an_empty_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was 'ok', and then a ConnectorConfigError traceback at `run`; now the file, line and key of the folder."""
    path = _maildir_config(tmp_path, queue_folders={"Billing": "Queues/Billing", "Sales": "INBOX..Sales"})
    line = path.read_text().splitlines().index("    Sales: INBOX..Sales") + 1
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ticketd: error: {path}:{line}: connectors[0].queue_folders.Sales: folder 'INBOX..Sales' has an empty level\n"
    )


def test_a_connector_error_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A connector's configuration error at run time (not one check-config can see) is the user's to fix: exit 2."""
    import daemon.cli.service

    def run(args: Any) -> int:
        raise ConnectorConfigError("maildir inbound_folder 'Support': no folder '.Support' in /srv/mail")

    monkeypatch.setitem(daemon.cli.service.COMMANDS, "run", run)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "ticketd: error: connector configuration: maildir inbound_folder 'Support': no folder '.Support' in /srv/mail\n"
    )
