"""config.example.yaml must stay valid: every connector entry passes its connector's own schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connectors.registry import parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def test_every_example_connector_validates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZNUNY_PASSWORD", "pw")
    monkeypatch.setenv("ZAMMAD_TOKEN", "tok")
    text = EXAMPLE.read_text(encoding="utf-8")
    password_file = tmp_path / "imap-password"
    password_file.write_text("pw\n", encoding="utf-8")
    entries = yaml.safe_load(text.replace("/etc/ticketd/imap-password", str(password_file)))["connectors"]
    configs = [parse_config(entry) for entry in entries]
    assert [c.type for c in configs] == ["znuny", "zammad", "imap"]
    assert all(c.name for c in configs)
