"""One secrets resolver for the daemon's sections and every connector's config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors import secrets
from connectors.zammad.config import ZammadConfig


def test_env_inside_a_connector_url_is_substituted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZAMMAD_HOST", "127.0.0.1:8443")
    monkeypatch.setenv("ZAMMAD_TOKEN", "t0ken")
    config = ZammadConfig.model_validate(
        {"type": "zammad", "url": "https://${ZAMMAD_HOST}/", "token": "${ZAMMAD_TOKEN}", "inbound_groups": ["Users"]}
    )
    assert str(config.url).startswith("https://127.0.0.1:8443")
    assert config.token is not None and config.token.get_secret_value() == "t0ken"


def test_a_missing_variable_names_the_key_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_HOST", raising=False)
    with pytest.raises(ValidationError, match=r"url: environment variable NO_SUCH_HOST is not set"):
        ZammadConfig.model_validate(
            {"type": "zammad", "url": "https://${NO_SUCH_HOST}/", "token": "x", "inbound_groups": ["Users"]}
        )


def test_nested_values_and_locations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Q", "Billing")
    monkeypatch.delenv("MISSING", raising=False)
    value, problems = secrets.substitute_env({"a": ["x-${Q}", {"b": "${MISSING}"}], "n": 3}, ("api",))
    assert value == {"a": ["x-Billing", {"b": "${MISSING}"}], "n": 3}
    assert [str(p) for p in problems] == ["api.a[1].b: environment variable MISSING is not set"]


def test_secret_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tokens").write_text("# rotated 2026-11\none\n\n  two  \n")
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    resolved, problems = secrets.resolve({"tokens_file": "${CREDENTIALS_DIRECTORY}/tokens"}, {"tokens": True})
    assert resolved == {"tokens": ["one", "two"]} and problems == []
    _, problems = secrets.resolve({"url_file": str(tmp_path / "empty")}, {"url": False}, ("state",))
    assert [str(p) for p in problems] == [f"state.url_file: secret file {str(tmp_path / 'empty')!r} is empty"]
    _, problems = secrets.resolve({"url": "x", "url_file": str(tmp_path / "tokens")}, {"url": False})
    assert [str(p) for p in problems] == ["url_file: give either 'url' or 'url_file', not both"]
    _, problems = secrets.resolve({"url_file": str(tmp_path / "nope")}, {"url": False})
    assert "url_file: cannot read secret file" in str(problems[0]) and "No such file" in str(problems[0])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://ticketd:pw/x@db:5432/ticketd", "postgresql+psycopg://ticketd:***@db:5432/ticketd"),
        ("https://agent:s3cret@127.0.0.1/otrs?SessionID=abc#top", "https://agent:***@127.0.0.1/otrs"),
        ("https://token@127.0.0.1:8443", "https://token@127.0.0.1:8443"),
        ("https://127.0.0.1/otrs", "https://127.0.0.1/otrs"),
        ("sqlite:////var/lib/ticketd/state.db", "sqlite:////var/lib/ticketd/state.db"),
    ],
)
def test_one_url_redactor(url: str, shown: str) -> None:
    assert secrets.redact_url(url) == shown
    assert "@" not in secrets.redact_url(url, user=False) and "s3cret" not in secrets.redact_url(url, user=False)
