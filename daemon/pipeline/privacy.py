"""Personal data out of the training store: addresses and numbers become placeholders before text is kept.

A harvested ticket's text is kept for months to retrain on; the people in it did not agree to that.
E-mail addresses, phone numbers, IBANs and payment-card numbers are replaced by `[email]`, `[phone]`,
`[iban]` and `[card]` before the row is stored (`privacy.scrub` in the config; all four by default).
Phone numbers are found by `phonenumbers` (libphonenumber's matcher, for the configured regions and
any number written with its +country code); IBANs and card numbers must pass their checksum
(`python-stdnum`), so an order or invoice number is not mistaken for one. The placeholder keeps the
fact that the ticket mentions a card or an IBAN, which is evidence for the queue, without the number.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from daemon.config import PrivacySection

Kind = Literal["email", "phone", "iban", "card"]
KINDS: tuple[Kind, ...] = ("email", "iban", "card", "phone")  # the order they are replaced in
PLACEHOLDER: dict[Kind, str] = {"email": "[email]", "phone": "[phone]", "iban": "[iban]", "card": "[card]"}
DEFAULT_REGIONS = ("DE", "AT", "CH", "GB", "US")

# Candidates only; each is confirmed by its checksum (IBAN, card) before it is replaced.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ \u00a0]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d+-])\d(?:[ \u00a0-]?\d){12,18}(?![\d-])")


def addresses(text: str) -> list[str]:
    """The e-mail addresses in a text (what `ticketd forget --email` is matched against)."""
    return _EMAIL.findall(text)


def digest(address: str) -> str:
    """How a forgotten address is remembered: SHA-256 of its trimmed, lower-cased form, never the address."""
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def _iban_spans(text: str) -> Iterator[tuple[int, int]]:
    from stdnum import iban

    for match in _IBAN.finditer(text):
        # The pattern may run on into the next word ("DE89 ... 00 ist"); shrink until the checksum holds.
        candidate = match.group()
        while candidate:
            if iban.is_valid(candidate):
                yield match.start(), match.start() + len(candidate)
                break
            cut = max(candidate.rfind(" "), candidate.rfind("\u00a0"))
            if cut <= 4:
                break
            candidate = candidate[:cut]


def _card_spans(text: str) -> Iterator[tuple[int, int]]:
    from stdnum import luhn

    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn.is_valid(digits):
            yield match.span()


def _phone_spans(text: str, regions: Iterable[str]) -> Iterator[tuple[int, int]]:
    import phonenumbers

    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            before = text[match.start - 1] if match.start else " "
            after = text[match.end] if match.end < len(text) else " "
            if before.isalnum() or before in "-_/#" or after.isalnum() or after in "-_":
                continue  # part of an identifier ("INV-2024-000123"), not a number to call
            yield match.start, match.end


def _replace(text: str, spans: Iterable[tuple[int, int]], placeholder: str) -> tuple[str, int]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + placeholder + text[end:]
    return text, len(merged)


@dataclass(frozen=True)
class Scrubber:
    """Replaces the configured kinds of personal data in a text; an empty `kinds` keeps text as it is."""

    kinds: frozenset[Kind] = frozenset(KINDS)
    regions: tuple[str, ...] = DEFAULT_REGIONS

    @classmethod
    def configured(cls, section: PrivacySection) -> Scrubber:
        """The scrubber the config's `privacy` section asks for."""
        return cls(frozenset(section.scrub), tuple(section.phone_regions))

    def scrub(self, text: str) -> tuple[str, dict[Kind, int]]:
        """The text with placeholders, and how many of each kind were replaced (for the log, never the values)."""
        found: dict[Kind, int] = {}
        for kind in KINDS:
            if kind not in self.kinds:
                continue
            if kind == "email":
                spans: Iterable[tuple[int, int]] = (m.span() for m in _EMAIL.finditer(text))
            elif kind == "iban":
                spans = list(_iban_spans(text))
            elif kind == "card":
                spans = list(_card_spans(text))
            else:
                spans = list(_phone_spans(text, self.regions))
            text, n = _replace(text, spans, PLACEHOLDER[kind])
            if n:
                found[kind] = n
        return text, found

    def __call__(self, text: str) -> str:
        return self.scrub(text)[0]
