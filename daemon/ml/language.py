"""Language fit: which languages the tickets are in, and whether the base model was trained on them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

UNKNOWN = "unknown"
MOST = 0.5  # warn when more than this share of tickets is in languages the base model does not list


def detect(texts: Sequence[str]) -> list[str]:
    """Language codes from py3langid (numpy only, offline); UNKNOWN for every text when it is not installed."""
    try:
        import py3langid
    except ImportError:
        return [UNKNOWN] * len(texts)
    return [str(py3langid.classify(t[:1000])[0]) if t.strip() else UNKNOWN for t in texts]


def languages(column: Sequence[str], texts: Sequence[str]) -> tuple[list[str], str]:
    """Each ticket's language: the data's `language` column where set, detected where not; and the source."""
    missing = [i for i, v in enumerate(column) if not v]
    if not missing:
        return list(column), "column"
    found = detect([texts[i] for i in missing])
    out = list(column)
    for i, code in zip(missing, found, strict=True):
        out[i] = code
    source = "detected" if len(missing) == len(column) else "column, detected where empty"
    if all(code == UNKNOWN for code in found):
        source = "column" if len(missing) < len(column) else "unknown (install py3langid to detect)"
    return out, source


def base_languages(base: str) -> list[str] | None:
    """The languages a local Hugging Face model's card declares (`language:` in README.md), None if it says none."""
    card = Path(base) / "README.md"
    try:
        text = card.read_text(encoding="utf-8")
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    try:
        front = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return None
    value: Any = front.get("language") if isinstance(front, dict) else None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    return sorted({str(v).lower() for v in value})


def mix(codes: Sequence[str]) -> dict[str, int]:
    """Tickets per language, largest first."""
    return dict(Counter(codes).most_common())


def fit_warning(counts: dict[str, int], base_langs: list[str] | None) -> str | None:
    """One line when most tickets are in languages the base model was not trained on; None if it fits."""
    if not base_langs or "multilingual" in base_langs:
        return None
    known = {code: n for code, n in counts.items() if code != UNKNOWN}
    total = sum(known.values())
    foreign = {code: n for code, n in known.items() if code not in base_langs}
    if not total or sum(foreign.values()) <= MOST * total:
        return None
    share = sum(foreign.values()) / total
    listed = ", ".join(f"{code} {n / total:.0%}" for code, n in list(foreign.items())[:4])
    return (
        f"{share:.0%} of the tickets are in languages the base model does not list ({listed}; it lists "
        f"{', '.join(base_langs)}): train with --base DIR pointing at a multilingual Hugging Face model (see README)"
    )
