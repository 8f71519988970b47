"""Personal data out of the training store: what is replaced, and what must stay (daemon/pipeline/privacy.py)."""

from __future__ import annotations

import pytest

from daemon.pipeline.privacy import Scrubber

SCRUB = Scrubber()

# (text, scrubbed): English and German formats, and look-alikes that must stay.
CASES = [
    ("Mail me at max.mustermann@example.de please", "Mail me at [email] please"),
    ("Reply to j.doe+billing@mail.example.co.uk.", "Reply to [email]."),
    ("Ruf mich an: 030 1234567 oder +49 151 23456789", "Ruf mich an: [phone] oder [phone]"),
    ("Tel. 089/12345678, Fax 089 12345679", "Tel. [phone], Fax [phone]"),
    ("Bitte unter (030) 1234567 zurückrufen.", "Bitte unter [phone] zurückrufen."),
    ("Österreich: +43 1 5123456, Schweiz 044 668 18 00", "Österreich: [phone], Schweiz [phone]"),
    ("Call (415) 555-2671 or +1 415-555-2671", "Call [phone] or [phone]"),
    ("UK office 020 7946 0958, mobile 07700 900123", "UK office [phone], mobile [phone]"),
    ("IBAN: DE89 3704 0044 0532 0130 00 bitte", "IBAN: [iban] bitte"),
    ("Überweisung an DE89370400440532013000.", "Überweisung an [iban]."),
    ("GB82 WEST 1234 5698 7654 32 is my account", "[iban] is my account"),
    ("card 4111 1111 1111 1111 exp 12/27", "card [card] exp 12/27"),
    ("Kreditkarte 5500-0000-0000-0004 wurde belastet", "Kreditkarte [card] wurde belastet"),
    # Look-alikes: no checksum, an identifier, a date, an address of a machine.
    ("Order 1234567890123 shipped on 2024-01-15", "Order 1234567890123 shipped on 2024-01-15"),
    ("Invoice INV-2024-000123, ticket #4521, version 10.2.3", "Invoice INV-2024-000123, ticket #4521, version 10.2.3"),
    ("Kundennummer 12345678, Vertrag 987654321", "Kundennummer 12345678, Vertrag 987654321"),
    ("server 192.168.1.20 port 8080 down since 14:30", "server 192.168.1.20 port 8080 down since 14:30"),
    ("IBAN DE89 3704 0044 0532 0130 01 (typo)", "IBAN DE89 3704 0044 0532 0130 01 (typo)"),
    ("card 4111 1111 1111 1112", "card 4111 1111 1111 1112"),
    ("user@localhost and @handle", "user@localhost and @handle"),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:32] for c in CASES])
def test_personal_data_becomes_placeholders_and_look_alikes_stay(text: str, expected: str) -> None:
    assert SCRUB(text) == expected


def test_counts_per_kind_and_only_the_configured_kinds() -> None:
    text = "mail a@example.org, IBAN DE89370400440532013000, card 4111111111111111, call +49 30 1234567"
    assert SCRUB.scrub(text)[1] == {"email": 1, "iban": 1, "card": 1, "phone": 1}
    only_mail = Scrubber(frozenset({"email"}))
    assert only_mail(text) == "mail [email], IBAN DE89370400440532013000, card 4111111111111111, call +49 30 1234567"
    assert Scrubber(frozenset())(text) == text


def test_a_national_number_needs_its_region() -> None:
    assert Scrubber(regions=("US",))("Ruf an: 030 1234567") == "Ruf an: 030 1234567"
    assert Scrubber(regions=("DE",))("Ruf an: 030 1234567") == "Ruf an: [phone]"
    assert Scrubber(regions=())("call +49 30 1234567") == "call +49 30 1234567"  # no region, no matcher


def test_the_config_names_an_unknown_region() -> None:
    from pydantic import ValidationError

    from daemon.config import PrivacySection

    with pytest.raises(ValidationError, match="unknown phone region 'XX'"):
        PrivacySection(phone_regions=["XX"])
    assert PrivacySection(phone_regions=["de"]).phone_regions == ["DE"]
