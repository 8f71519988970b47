"""Language mix and fit: from the column where set, detected where not; one warning when the base model does not fit."""

from __future__ import annotations

from pathlib import Path

from daemon.ml import language


def test_column_first_then_detection() -> None:
    texts = ["Der Drucker im zweiten Stock druckt nicht mehr, bitte um Hilfe", "The VPN is down since this morning"]
    assert language.languages(["fr", "en"], texts) == (["fr", "en"], "column")
    codes, source = language.languages(["", ""], texts)
    assert codes == ["de", "en"] and source == "detected"
    codes, source = language.languages(["", "en"], texts)
    assert codes == ["de", "en"] and source == "column, detected where empty"


def test_base_languages_from_the_model_card(tmp_path: Path) -> None:
    from daemon.ml.train import default_base_model

    assert language.base_languages(default_base_model()) == ["en"]  # the bundled MiniLM is English-only
    (tmp_path / "README.md").write_text("---\nlanguage:\n- de\n- EN\nlicense: mit\n---\n# card\n")
    assert language.base_languages(str(tmp_path)) == ["de", "en"]
    (tmp_path / "README.md").write_text("# a card without front matter\n")
    assert language.base_languages(str(tmp_path)) is None
    assert language.base_languages(str(tmp_path / "nowhere")) is None


def test_warns_once_when_most_tickets_are_foreign_to_the_base_model() -> None:
    warning = language.fit_warning({"de": 70, "en": 25, "fr": 5}, ["en"])
    assert warning is not None and warning.startswith("75% of the tickets")
    assert "de 70%" in warning and "--base DIR" in warning and "\n" not in warning
    assert language.fit_warning({"en": 56, "de": 44}, ["en"]) is None  # softoft: a minority is not "most"
    assert language.fit_warning({"de": 100}, None) is None  # a card that says nothing: no guess
    assert language.fit_warning({"de": 100}, ["multilingual"]) is None
    assert language.fit_warning({"unknown": 90, "en": 10}, ["en"]) is None
