"""Text normalisation shared by training and serving, so both see exactly the same input."""

from __future__ import annotations

import itertools
import re
import unicodedata

from connectors._text import first_part
from connectors._text import html_to_text as _html_to_text

MAX_SUBJECT_CHARS = 300
MAX_TEXT_CHARS = 4000
_HTML_HINT = re.compile(r"<\s*(?:html|body|div|p|br|span|table|td|tr|ul|ol|li|a|b|i|strong|em|font|h\d)\b", re.I)
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w\w+")


def html_to_text(value: str) -> str:
    """Strip markup only when the value looks like HTML, so '<name>' placeholders in plain text survive."""
    return _html_to_text(value, separator=" ") if _HTML_HINT.search(value) else value


def clean(value: str | None) -> str:
    """HTML to text, NFC and collapsed whitespace, of the first_part only: a huge body costs no more than the bound."""
    if not value:
        return ""
    return _WS.sub(" ", unicodedata.normalize("NFC", html_to_text(first_part(value)))).strip()


def compose(subject: str | None, body: str | None, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Join subject and body; truncation cuts the body, never the subject, since subjects carry most signal."""
    subj = clean(subject)[:MAX_SUBJECT_CHARS]
    text = clean(body)
    joined = f"{subj}. {text}" if subj and text else subj or text
    return joined[:max_chars].rstrip()


def analyze(text: str, chars: bool = True) -> list[str]:
    """TF-IDF features: word uni/bigrams, plus in-word character 3-5-grams that help with German compounds."""
    words = _WORD.findall(text.lower())
    feats = [f"w:{w}" for w in words]
    feats.extend(f"b:{a} {b}" for a, b in itertools.pairwise(words))
    if not chars:
        return feats
    for w in words:
        padded = f" {w} "
        n_chars = len(padded)
        for n in (3, 4, 5):
            feats.extend(f"c:{padded[i : i + n]}" for i in range(n_chars - n + 1))
    return feats
