"""MIME -> ticket fields, ids, cursors and config, without a server."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors._mail.message import parse_mail
from connectors._mail.priorities import priority_from_flags, priority_from_headers
from connectors.imap import ImapConfig
from connectors.imap.mapping import decode_cursor, encode_cursor, parse_ticket_id, ticket_id

FIXTURES = Path(__file__).with_name("fixtures")
LEVELS = ["high", "medium", "low"]


def mail(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_multipart_alternative_prefers_text_plain() -> None:
    parsed = parse_mail(mail("alternative.eml"))
    assert parsed.body == "Der Drucker im 3. Stock zeigt Fehler 41.\nGrüße, Anna"
    assert "HTML version" not in parsed.body
    assert parsed.message_id == "<alt-1@example.org>"
    assert parsed.date is not None and parsed.date.utcoffset() is not None
    assert parsed.defects == ()


def test_html_only_becomes_text_without_markup_or_scripts() -> None:
    parsed = parse_mail(mail("html_only.eml"))
    assert parsed.body == "Bitte überprüfen Sie die Bestellung.\nZeile zwei\nZeile drei"


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("subject_utf8.eml", "Rückfrage zur Rechnung € 42"),
        ("subject_latin1.eml", "Bestellung über Straße Nr. 5"),
    ],
)
def test_rfc2047_subjects_are_decoded(name: str, subject: str) -> None:
    assert parse_mail(mail(name)).subject == subject


def test_latin1_body_is_decoded_by_its_charset() -> None:
    assert parse_mail(mail("subject_latin1.eml")).body == "Lieferung für Straße fehlt."


def test_attachment_only_mail_has_empty_body_but_a_subject() -> None:
    parsed = parse_mail(mail("attachment_only.eml"))
    assert (parsed.subject, parsed.body) == ("Scan", "")


def test_broken_mail_yields_what_can_be_read() -> None:
    parsed = parse_mail(mail("broken.eml"))
    assert parsed.subject == "Kaputt üä"  # undeclared 8-bit header read as Latin-1
    assert parsed.message_id is None and parsed.date is None
    assert any("Date" in d for d in parsed.defects) and any("charset" in d for d in parsed.defects)


def test_garbage_never_raises() -> None:
    for raw in (b"", b"\x00\xff" * 50, b"Subject: =?utf-8?B?////?=\n\nx", b"Content-Type: multipart/mixed\n\n--"):
        parse_mail(raw)


@pytest.mark.parametrize(
    ("name", "priority"),
    [("attachment_only.eml", "high"), ("importance_low.eml", "low"), ("alternative.eml", None)],
)
def test_sender_priority_headers(name: str, priority: str | None) -> None:
    msg = BytesParser(policy=policy.default).parsebytes(mail(name))
    assert priority_from_headers(msg, LEVELS) == priority


def test_sender_priority_maps_only_to_configured_names() -> None:
    msg = BytesParser(policy=policy.default).parsebytes(b"X-Priority: 3 (Normal)\n\nx")
    assert priority_from_headers(msg, LEVELS) == "medium"
    assert priority_from_headers(msg, ["urgent", "normal"]) == "normal"
    assert priority_from_headers(msg, ["P1", "P2"]) is None


def test_priority_keyword_ignores_case() -> None:
    assert priority_from_flags(("\\Seen", "$priority_HIGH"), LEVELS) == "high"
    assert priority_from_flags(("$Priority_unknown",), LEVELS) is None


def test_ticket_ids_round_trip() -> None:
    assert ticket_id("<a/b@c>", "INBOX", 7, 3) == "<a/b@c>"
    assert parse_ticket_id("<a/b@c>") is not None and parse_ticket_id("<a/b@c>").message_id == "<a/b@c>"  # type: ignore[union-attr]
    positional = parse_ticket_id(ticket_id(None, "Queues/Rückfragen:x", 7, 3))
    assert positional is not None
    assert (positional.folder, positional.uidvalidity, positional.uid) == ("Queues/Rückfragen:x", 7, 3)
    assert parse_ticket_id("999999") is None
    assert parse_ticket_id("<>") is None


def test_cursor_round_trip_and_rejects_foreign_cursors() -> None:
    state = {"Queues/Übersicht": [12, 40], "INBOX": [1, 2]}
    assert decode_cursor(encode_cursor(state)) == {k: tuple(v) for k, v in state.items()}
    assert decode_cursor(None) == {}
    for bad in ("42", "imap1:!!!", "imap1:" + "W10=", "imap1:eyJhIjpbMV19"):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_config_defaults_secrets_and_rejections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    cfg = ImapConfig.model_validate({"type": "imap", "host": "mail", "user": "u", "password_file": str(secret_file)})
    assert cfg.password.get_secret_value() == "from-file"
    assert (cfg.effective_port, cfg.inbound_folder, cfg.priorities) == (993, "INBOX", LEVELS)
    assert "from-file" not in repr(cfg)
    monkeypatch.setenv("IMAP_PW", "from-env")
    cfg = ImapConfig.model_validate(
        {"type": "imap", "host": "mail", "user": "u", "password": "${IMAP_PW}", "ssl": False, "starttls": True}
    )
    assert (cfg.password.get_secret_value(), cfg.effective_port) == ("from-env", 143)
    base = {"type": "imap", "host": "mail", "user": "u", "password": "p"}
    for extra in ({"folder": "x"}, {"starttls": True}, {"priorities": ["very high"]}, {"priorities": ["a", "A"]}):
        with pytest.raises(ValidationError):
            ImapConfig.model_validate(base | extra)


def test_what_is_not_a_mail() -> None:
    assert parse_mail(mail("broken.eml")).is_mail  # damaged, but a mail: delivered with what could be read
    assert parse_mail(b"Subject: hi\n\nbody").is_mail
    for raw in (b"", b"\x00\xff" * 50, bytes(range(256)), b"just a note\nsecond line\n", b"key: value\n"):
        assert not parse_mail(raw).is_mail, raw
