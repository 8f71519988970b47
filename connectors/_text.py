"""Plain text from what helpdesks store: HTML bodies become readable text, whitespace is tidied."""

from __future__ import annotations

import re

_BLANK_LINES = re.compile(r"\n\s*\n+")
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")
_BLOCKS = ["p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol"]
# Raw characters of a body that are read at all, HTML or plain. html.parser builds a Python object per tag and
# string: 9.6 MB of heavy markup took 15 s and left the API process 800 MB bigger. The bound must still yield
# the 4000 characters the classifier reads (daemon.ml.text.MAX_TEXT_CHARS). Measured on 2,328 HTML mails of a
# public mailing-list archive (1,128 of them Outlook's, <head>/<style> up to 14 KB, markup-to-text ratio median
# 3.7, p99 10.5, max 44): the longest raw prefix any mail needed for an unchanged 4000-character model text was
# 37 KB, for a whole text 88 KB; 4000 characters at the worst ratio plus the largest head is ~190 KB. At 256 KiB
# no mail there was cut at all (the largest was 243 KB); the worst markup for its size (nothing but nested
# one-letter elements) costs ~0.5 s and ~25 MB to parse at the bound, Outlook-like markup ~0.2 s.
MAX_RAW_CHARS = 256 * 1024


def first_part(raw: str) -> str:
    """The first MAX_RAW_CHARS, less a tag the cut split: html_to_text and clean() share it, so all cut alike."""
    if len(raw) <= MAX_RAW_CHARS:
        return raw
    cut = raw[:MAX_RAW_CHARS]
    split = cut.rfind("<")
    return cut[:split] if split > cut.rfind(">") else cut


def html_to_text(html: str, separator: str = "") -> str:
    """Visible text of an HTML body; scripts, styles and markup dropped, paragraphs kept as lines.

    `separator` goes between the text of adjacent elements: "" keeps `<b>in</b>line` one word as a
    reader sees it; the classifier passes " " so that table cells never fuse into one token.
    """
    import warnings

    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(first_part(html), "html.parser")
    for tag in soup(["script", "style", "head"]):
        tag.decompose()
    for br in soup("br"):
        br.replace_with("\n")
    for block in soup(_BLOCKS):
        block.append("\n")
    text = soup.get_text(separator)
    for child in list(soup.contents):
        child.decompose()  # the tree is all reference cycles: freed here by refcount, not left to the collector
    return tidy(text)


def tidy(text: str) -> str:
    """Collapse runs of spaces and blank lines; keep single line breaks."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
