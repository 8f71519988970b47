"""A Maildir folder with an empty level is refused by the config model (so check-config names it), not at run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.maildir import MaildirConfig, MaildirConnector


@pytest.mark.parametrize(
    ("settings", "loc", "folder"),
    [
        ({"queue_folders": {"Sales": "INBOX..Sales"}}, ("queue_folders", "Sales"), "INBOX..Sales"),
        ({"queue_folders": {"Sales": "Queues//Sales"}}, ("queue_folders", "Sales"), "Queues//Sales"),
        ({"queue_folders": {"Sales": "Queues/Sales/"}}, ("queue_folders", "Sales"), "Queues/Sales/"),
        ({"inbound_folder": "Support..L2"}, ("inbound_folder",), "Support..L2"),
        ({"queue_root": "Queues/"}, ("queue_root",), "Queues/"),
    ],
)
def test_an_empty_level_is_a_validation_error_at_its_key(
    tmp_path: Path, settings: dict[str, Any], loc: tuple[str, ...], folder: str
) -> None:
    with pytest.raises(ValidationError) as info:
        MaildirConfig(type="maildir", path=tmp_path, **settings)
    (error,) = info.value.errors()
    assert error["loc"] == loc
    assert f"folder {folder!r} has an empty level" in error["msg"]


def test_folders_the_connector_can_hold_still_validate(tmp_path: Path) -> None:
    config = MaildirConfig(
        type="maildir",
        path=tmp_path,
        inbound_folder="INBOX",
        queue_root="Queues",
        queue_folders={"Billing": "Queues/Billing", "L2": "Support.L2", "Inbox": ""},
    )
    MaildirConnector(config)  # builds: nothing the model accepted is refused later
    assert config.queue_folders == {"Billing": "Queues/Billing", "L2": "Support.L2", "Inbox": ""}
