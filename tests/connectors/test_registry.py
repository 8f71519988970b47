"""Registry and shared config behaviour: entry points, did-you-mean, secrets from env and files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.base import Connector
from connectors.errors import ConnectorConfigError
from connectors.registry import available, connector_class, parse_config

ZNUNY = {"type": "znuny", "url": "http://helpdesk.local", "user": "agent1", "inbound_queues": ["Raw"]}


def test_every_builtin_connector_is_registered() -> None:
    assert {"znuny", "otrs", "otobo", "zammad", "imap"} <= set(available())
    for name in ("znuny", "otrs", "otobo", "zammad", "imap"):
        cls = connector_class(name)
        assert issubclass(cls, Connector)
        assert not getattr(cls, "__abstractmethods__", None), f"{name} leaves methods abstract"


def test_unknown_type_suggests_the_closest_and_lists_known() -> None:
    with pytest.raises(ConnectorConfigError) as exc:
        connector_class("zamad")
    message = str(exc.value)
    assert "Did you mean 'zammad'?" in message
    assert "imap" in message and "znuny" in message


def test_unknown_type_without_a_close_match_still_lists_known() -> None:
    with pytest.raises(ConnectorConfigError, match=r"Known: .*imap"):
        connector_class("servicenow")


def test_missing_type_is_a_config_error() -> None:
    with pytest.raises(ConnectorConfigError, match="no 'type'"):
        parse_config({"url": "http://x"})


def test_unknown_key_is_rejected_by_name() -> None:
    with pytest.raises(ValidationError, match="pasword"):
        parse_config({**ZNUNY, "password": "x", "pasword": "typo"})


def test_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZNUNY_PW", "s3cret")
    config = parse_config({**ZNUNY, "password": "${ZNUNY_PW}"})
    assert config.password.get_secret_value() == "s3cret"  # type: ignore[attr-defined]
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.model_dump())


def test_missing_environment_variable_names_key_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ValidationError, match="password: environment variable NOT_SET_ANYWHERE is not set"):
        parse_config({**ZNUNY, "password": "${NOT_SET_ANYWHERE}"})


def test_secret_from_file_is_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    config = parse_config({**ZNUNY, "password_file": str(secret)})
    assert config.password.get_secret_value() == "s3cret"  # type: ignore[attr-defined]


def test_unreadable_secret_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="password_file: cannot read secret file"):
        parse_config({**ZNUNY, "password_file": str(tmp_path / "missing")})


def test_secret_and_secret_file_together_are_rejected(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("a", encoding="utf-8")
    with pytest.raises(ValidationError, match="either 'password' or 'password_file'"):
        parse_config({**ZNUNY, "password": "b", "password_file": str(secret)})


def test_non_secret_fields_have_no_file_indirection(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="url_file"):
        parse_config({**ZNUNY, "password": "x", "url_file": str(tmp_path)})
