"""Plain text from what helpdesks store: HTML bodies become readable text, whitespace is tidied."""

from __future__ import annotations

import re

_BLANK_LINES = re.compile(r"\n\s*\n+")
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")
_BLOCKS = ["p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol"]


def html_to_text(html: str, separator: str = "") -> str:
    """Visible text of an HTML body; scripts, styles and markup dropped, paragraphs kept as lines.

    `separator` goes between the text of adjacent elements: "" keeps `<b>in</b>line` one word as a
    reader sees it; the classifier passes " " so that table cells never fuse into one token.
    """
    import warnings

    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head"]):
        tag.decompose()
    for br in soup("br"):
        br.replace_with("\n")
    for block in soup(_BLOCKS):
        block.append("\n")
    return tidy(soup.get_text(separator))


def tidy(text: str) -> str:
    """Collapse runs of spaces and blank lines; keep single line breaks."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
