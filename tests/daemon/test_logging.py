from __future__ import annotations

import io
import json
import sys

import pytest

from daemon.logging import configure, get_logger


def test_ticket_text_and_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", json=True)
    get_logger("t").info("classified", ticket_id=42, body="my password is hunter2", token="abc", queue="IT")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["body"] == "[redacted]" and line["token"] == "[redacted]"
    assert line["ticket_id"] == 42 and line["queue"] == "IT"
    assert "hunter2" not in json.dumps(line)


def test_logger_follows_a_replaced_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    configure("info", json=True)
    log = get_logger("t")
    before, after = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", before)
    log.info("first")
    monkeypatch.setattr(sys, "stderr", after)  # swapped after configure() and after the logger wrote once
    log.info("second")
    assert "first" in before.getvalue() and "second" not in before.getvalue()
    assert "second" in after.getvalue()
