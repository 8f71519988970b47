import gc
import unicodedata
from typing import Any

import bs4
import pytest

import connectors._text
from connectors._text import MAX_RAW_CHARS, first_part
from connectors._text import html_to_text as connector_html_to_text
from connectors.znuny.mapping import article_text
from daemon.ml.text import MAX_SUBJECT_CHARS, MAX_TEXT_CHARS, analyze, clean, compose


def test_html_is_converted_to_text() -> None:
    html = "<html><body><p>Printer <b>offline</b></p><script>alert(1)</script><br>since&nbsp;9:00</body></html>"
    assert clean(html) == "Printer offline since 9:00"


def test_placeholders_in_plain_text_survive() -> None:
    assert clean("Dear <name>, your account <acc_num> is locked") == ("Dear <name>, your account <acc_num> is locked")


def test_whitespace_is_collapsed() -> None:
    assert clean("a\r\n\n  b\t c ") == "a b c"


def test_truncation_keeps_the_subject() -> None:
    text = compose("VPN down", "x " * 5000, max_chars=100)
    assert text.startswith("VPN down. ")
    assert len(text) <= 100


def test_overlong_subject_is_capped_but_body_still_follows() -> None:
    text = compose("s" * 1000, "body")
    assert text == "s" * MAX_SUBJECT_CHARS + ". body"


def test_missing_parts() -> None:
    assert compose(None, "only body") == "only body"
    assert compose("only subject", "") == "only subject"
    assert compose(None, None) == ""


def test_analyzer_features() -> None:
    feats = analyze("VPN Ausfall")
    assert "w:vpn" in feats and "w:ausfall" in feats
    assert "b:vpn ausfall" in feats
    assert "c: vp" in feats and "c:fall " in feats


def test_table_cells_stay_separate_words() -> None:
    # The classifier's side of the one html_to_text: adjacent elements never fuse into one token.
    assert clean("<table><tr><td>VPN</td><td>down</td></tr></table><div>since<br>9:00</div>") == "VPN down since 9:00"


# --------------------------------------------------------------------------------------- the raw bound (issue 39)

WORD_STYLES = "".join(
    f'p.MsoNormal{i}, li.MsoNormal{i}, div.MsoNormal{i}\n\t{{margin:0cm; font-size:11.0pt; font-family:"Calibri",'
    f"sans-serif; mso-style-priority:{i};}}\n"
    for i in range(100)
)  # ~14 KB: the largest <head> of the 1,128 Outlook mails measured for MAX_RAW_CHARS


def outlook_mail(paragraphs: int, tail: str = "") -> str:
    """Outlook's HTML: Word's styles in <head>, every line a styled span (markup ~3x the text), then `tail`."""
    lines = "".join(
        f'<p class=MsoNormal><span lang=DE style=\'font-size:11.0pt;font-family:"Calibri",sans-serif;'
        f"color:#1F497D'>Zeile {n}: der VPN-Tunnel bricht nach dem Update ab, Fehler 809.<o:p></o:p></span></p>"
        for n in range(paragraphs)
    )
    return (
        f'<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style><!--\n{WORD_STYLES}--></style></head>'
        f"<body lang=DE><div class=WordSection1>{lines}{tail}</div></body></html>"
    )


def unbounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """What extraction read before the bound: everything (raising=False, so this also runs on the old code)."""
    monkeypatch.setattr(connectors._text, "MAX_RAW_CHARS", 10**12, raising=False)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every markup BeautifulSoup is given."""
    seen: list[int] = []

    class Recording(bs4.BeautifulSoup):
        def __init__(self, markup: str, *args: Any, **kwargs: Any) -> None:
            seen.append(len(markup))
            super().__init__(markup, *args, **kwargs)

    monkeypatch.setattr(bs4, "BeautifulSoup", Recording)
    return seen


def test_a_huge_html_body_is_cut_before_it_is_parsed(parsed: list[int]) -> None:
    huge = outlook_mail(2, tail="<table><tr><td><div><span><b>x</b></span></div></td></tr></table>" * 40_000)
    assert len(huge) > 2_000_000
    assert compose("VPN", huge).startswith("VPN. Zeile 0: der VPN-Tunnel bricht")
    assert connector_html_to_text(huge).startswith("Zeile 0:")  # Znuny, Zammad, IMAP and Maildir bodies
    assert article_text({"Body": huge, "MimeType": "text/html"}).startswith("Zeile 0:")
    assert len(parsed) == 3 and max(parsed) <= MAX_RAW_CHARS


def test_a_huge_plain_body_is_cut_before_it_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = "Der Drucker im zweiten Stock druckt nur leere Seiten. " * 100_000
    seen: list[int] = []
    real = unicodedata.normalize

    def recording(form: Any, text: str) -> str:
        seen.append(len(text))
        return real(form, text)

    monkeypatch.setattr(unicodedata, "normalize", recording)
    cut = compose(None, plain)
    assert seen and max(seen) <= MAX_RAW_CHARS
    unbounded(monkeypatch)
    assert cut == compose(None, plain) and len(cut) >= MAX_TEXT_CHARS - 1  # -1: a trailing space is stripped


def test_a_big_mail_gives_the_model_the_same_text_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    # A long Outlook reply chain with a pasted screenshot: 1.4 MB, most of it past the bound.
    screenshot = f'<p><img src="data:image/png;base64,{"iVBORw0KGgo" * 100_000}"></p>'
    mail = outlook_mail(1500, tail=screenshot)
    assert len(mail) > 4 * MAX_RAW_CHARS
    cut = compose("VPN bricht ab", mail)
    unbounded(monkeypatch)
    assert cut == compose("VPN bricht ab", mail) and len(cut) == MAX_TEXT_CHARS


def test_typical_mail_is_read_whole() -> None:
    mail = outlook_mail(40)  # ~21 KB; the median Outlook mail measured is 7 KB
    assert first_part(mail) is mail
    assert clean(mail).startswith("Zeile 0: der VPN-Tunnel bricht nach dem Update ab, Fehler 809. Zeile 1:")


def test_a_tag_the_cut_splits_is_dropped_not_read_as_text() -> None:
    raw = "<p>" + "a" * (MAX_RAW_CHARS - 10) + "<span style='color:#1F497D'>b</span></p>"
    assert first_part(raw) == raw[: MAX_RAW_CHARS - 7]
    assert first_part(first_part(raw)) == first_part(raw)
    assert connector_html_to_text(raw) == "a" * (MAX_RAW_CHARS - 10)


def test_the_tree_is_freed_at_once_not_left_to_the_collector() -> None:
    html = outlook_mail(2, tail="<table><tr><td><div><span><b>x</b></span></div></td></tr></table>" * 3_000)
    gc.collect()
    gc.disable()  # only what html_to_text leaves behind is counted
    try:
        connector_html_to_text(html)
        assert gc.collect() < 100  # a tree left to the collector is ~60,000 objects here
    finally:
        gc.enable()
