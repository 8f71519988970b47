"""The connector's configuration: unknown keys, secrets from files and the environment, derived paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.registry import parse_config
from connectors.znuny import ZnunyConfig

BASE = {"type": "znuny", "url": "https://helpdesk.example.org/", "user": "agent1", "inbound_queues": ["Raw"]}


def test_defaults_and_base_url() -> None:
    cfg = ZnunyConfig.model_validate({**BASE, "password": "pw"})
    assert (
        cfg.base_url
        == "https://helpdesk.example.org/znuny/nph-genericinterface.pl/Webservice/GenericTicketConnectorREST"
    )
    assert (cfg.new_state_types, cfg.closed_state_types, cfg.timezone, cfg.note_subject) == (
        ["new", "open"],
        ["closed"],
        "UTC",
        "ticketd",
    )
    assert "5 very high" in cfg.priorities


@pytest.mark.parametrize(("kind", "prefix"), [("otrs", "/otrs/"), ("otobo", "/otobo/")])
def test_prefix_follows_the_type(kind: str, prefix: str) -> None:
    cfg = parse_config({**BASE, "type": kind, "password": "pw", "webservice": "My Service"})
    assert isinstance(cfg, ZnunyConfig)
    assert prefix in cfg.base_url and cfg.base_url.endswith("/Webservice/My%20Service")


def test_the_agent_interface_link_of_a_ticket() -> None:
    cfg = ZnunyConfig.model_validate({**BASE, "password": "pw"})
    assert cfg.agent_url("42") == "https://helpdesk.example.org/znuny/index.pl?Action=AgentTicketZoom;TicketID=42"
    root = ZnunyConfig.model_validate({**BASE, "password": "pw", "path_prefix": ""})
    assert root.agent_url("7 8") == "https://helpdesk.example.org/index.pl?Action=AgentTicketZoom;TicketID=7%208"


def test_secrets_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    cfg = ZnunyConfig.model_validate({**BASE, "password_file": str(tmp_path / "pw")})
    assert cfg.password is not None and cfg.password.get_secret_value() == "from-file"
    monkeypatch.setenv("ZNUNY_SID", "abc")
    cfg = ZnunyConfig.model_validate({**BASE, "user": None, "session_id": "${ZNUNY_SID}"})
    assert cfg.session_id is not None and cfg.session_id.get_secret_value() == "abc"
    assert "from-file" not in repr(ZnunyConfig.model_validate({**BASE, "password_file": str(tmp_path / "pw")}))


@pytest.mark.parametrize(
    "bad",
    [
        {"password": "pw", "colour": "red"},
        {"password": "pw", "inbound_queues": []},
        {},
        {"password": "pw", "url": "helpdesk.example.org"},
        {"password": "pw", "timezone": "Mars/Olympus"},
        {"password": "pw", "type": "zammad"},
    ],
)
def test_invalid_configs_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as info:
        ZnunyConfig.model_validate({**BASE, **bad})
    assert "pw'" not in str(info.value)
