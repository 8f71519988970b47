"""config.example.yaml must stay valid: every connector entry passes its connector's own schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def test_every_example_connector_validates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # load_config splits off each entry's `routing:` block and validates the rest with the connector's model.
    monkeypatch.setenv("ZNUNY_PASSWORD", "pw")
    monkeypatch.setenv("ZAMMAD_TOKEN", "tok")
    text = EXAMPLE.read_text(encoding="utf-8")
    for name, content in (("imap-password", "pw\n"), ("api-tokens", "token-0123456789-0123456789-abcdef\n")):
        (tmp_path / name).write_text(content, encoding="utf-8")
        text = text.replace(f"/etc/ticketd/{name}", str(tmp_path / name))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(text, encoding="utf-8")
    configs = [entry.connection for entry in load_config(config_file).connectors]
    assert [c.type for c in configs] == ["znuny", "zammad", "imap"]
    assert all(c.name for c in configs)
