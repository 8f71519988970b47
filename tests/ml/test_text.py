from daemon.ml.text import MAX_SUBJECT_CHARS, analyze, clean, compose


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
