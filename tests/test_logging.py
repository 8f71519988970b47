from __future__ import annotations

import json

import pytest

from daemon.logging import configure, get_logger


def test_ticket_text_and_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", json=True)
    get_logger("t").info("classified", ticket_id=42, body="my password is hunter2", token="abc", queue="IT")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["body"] == "[redacted]" and line["token"] == "[redacted]"
    assert line["ticket_id"] == 42 and line["queue"] == "IT"
    assert "hunter2" not in json.dumps(line)


def test_logger_follows_a_replaced_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", json=True)
    log = get_logger("t")
    log.info("first")
    capsys.readouterr()
    log.info("second")
    assert "second" in capsys.readouterr().err
