"""CLI paths that need no transformer: TF-IDF-only training into a store, split, argument errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.cli import main
from daemon.ml.classifier import Classifier
from tests.support.paths import STARTER


@pytest.fixture
def terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`train` as a person runs it: stdout is a terminal, so its results come as sentences, not JSON lines."""
    # On the class: capsys gives the test's call another stream object than its fixtures see. stderr stays a pipe.
    monkeypatch.setattr(type(sys.stdout), "isatty", lambda stream: stream is sys.stdout)


def test_tfidf_only_training_into_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    assert main(["train", str(STARTER), "--store", str(root), "--promote", "--tfidf-only"]) == 0
    written, summary = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert written["event"] == "model written" and (written["version"], written["current"]) == ("v1", True)
    assert summary["event"] == "training summary" and summary["heads"]["queue"]["chosen"] == "tfidf"
    clf = Classifier.load(root)
    assert clf.model_dir.name == "v1"
    head = clf.heads["queue"]
    assert head.transformer is None and head.tfidf is not None
    assert not list(clf.model_dir.rglob("*.onnx"))
    meta = json.loads((clf.model_dir / "metadata.json").read_text())
    assert meta["heads"]["queue"]["chosen"] == "tfidf"
    assert meta["heads"]["queue"]["fine_tune"] == {}
    # The bundled demo data is cleanly separable by design; a real model must learn it.
    result = clf.classify("We were charged twice for the subscription, please refund.", subject="Invoice")
    assert result["queue"]["label"] == "Billing"
    assert not list((root / "versions").glob(".incoming-*"))


def test_train_refuses_a_non_empty_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("user data")
    assert main(["train", str(STARTER), "--out", str(tmp_path / "m"), "--tfidf-only"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "m" / "keep.txt").read_text() == "user data"


def test_offline_unless_download_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", str(STARTER), "--out", str(tmp_path / "m"), "--base", "bert-base-uncased"]
    assert main(args) == 2
    assert "--allow-download" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_split_writes_disjoint_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tr, te = tmp_path / "train.csv", tmp_path / "test.csv"
    assert main(["split", str(STARTER), "--test-size", "0.25", "--train-out", str(tr), "--test-out", str(te)]) == 0
    assert "90 training and 30 test tickets" in capsys.readouterr().out
    ids = [{line.split(",")[0] for line in p.read_text().splitlines()[1:]} for p in (tr, te)]
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 120


def test_classify_needs_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(STARTER), "--out", str(tmp_path / "m"), "--tfidf-only"]) == 0
    capsys.readouterr()
    assert main(["classify", "--model", str(tmp_path / "m")]) == 2
    assert "classify needs TEXT" in capsys.readouterr().err


def _with_a_lonely_queue(tmp_path: Path) -> Path:
    path = tmp_path / "lonely.csv"
    text = STARTER.read_text(encoding="utf-8").rstrip("\n")
    path.write_text(text + '\nlonely-1,Fax machine,"The fax in room 4 is jammed again.",Facilities,low,en\n')
    return path


def test_min_examples_leaves_rare_classes_out_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal: None
) -> None:
    data = _with_a_lonely_queue(tmp_path)
    assert main(["train", str(data), "--out", str(tmp_path / "m"), "--tfidf-only"]) == 2
    err = capsys.readouterr().err
    assert "queue label 'Facilities' has 1 example(s)" in err and "--min-examples N" in err
    assert main(["train", str(data), "--out", str(tmp_path / "m"), "--tfidf-only", "--min-examples", "2"]) == 0
    out = capsys.readouterr().out
    assert "left out 1 tickets of 1 queue classes with fewer than 2 examples: 'Facilities' (1)" in out
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["data"]["left_out"] == {"min_examples": 2, "tickets": 1, "classes": {"queue": {"Facilities": 1}}}
    assert "Facilities" not in meta["heads"]["queue"]["classes"] and meta["data"]["rows"] == 120
    assert main(["train", str(data), "--out", str(tmp_path / "n"), "--min-examples", "0"]) == 2
    assert "--min-examples 0: must be at least 1" in capsys.readouterr().err


def test_training_summary_shows_languages_and_the_tfidf_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal: None
) -> None:
    assert main(["train", str(STARTER), "--out", str(tmp_path / "m"), "--tfidf-only"]) == 0
    out = capsys.readouterr().out
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["data"]["languages_from"] == "column" and set(meta["data"]["languages"]) == {"en", "de"}
    assert f"languages (column): en {meta['data']['languages']['en'] / 120:.0%}" in out
    assert meta["base_model_languages"] == ["en"] and meta["language_warning"] is None  # most tickets are English
    cv = meta["heads"]["queue"]["tfidf"]["cross_validation"]
    assert cv["reference"] == "word C=10" and cv["folds"] == 4 and cv["rows"] == 120
    assert f"tfidf: {meta['heads']['queue']['tfidf']['features']} C=" in out


def test_a_budget_too_small_for_the_transformer_trains_tfidf_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal: None
) -> None:
    assert main(["train", str(STARTER), "--out", str(tmp_path / "m"), "--label", "queue", "--budget", "0.05"]) == 0
    out = capsys.readouterr().out
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    head = meta["heads"]["queue"]
    assert head["chosen"] == "tfidf" and head["fine_tune"]["plan"]["epochs"] == 0
    assert "min of the budget were left for this head" in head["fine_tune"]["skipped"]
    assert "transformer skipped: one epoch at 64 tokens with its evaluation and export needs about" in out
    assert not list((tmp_path / "m").rglob("*.onnx"))
    assert main(["train", str(STARTER), "--out", str(tmp_path / "n"), "--budget", "-1"]) == 2
    assert "--budget -1: must be a positive number of minutes" in capsys.readouterr().err


def test_a_trained_confidence_map_is_what_classify_and_evaluate_serve(tmp_path: Path) -> None:
    from daemon.ml.calibration import apply_confidence_map
    from daemon.ml.dataset import load_dataset
    from daemon.ml.evaluate import evaluate

    model = tmp_path / "m"
    assert main(["train", str(STARTER), "--out", str(model), "--tfidf-only"]) == 0
    meta = json.loads((model / "metadata.json").read_text())
    verdict = meta["heads"]["queue"]["confidence_map"]
    assert not verdict["kept"] and "calibration rows" in verdict["reason"]  # 120 tickets: too few for a map
    assert "confidence_map" not in json.loads((model / "queue" / "head.json").read_text())
    texts = load_dataset(STARTER).texts()
    raw = Classifier.load(model).predict_texts(texts)
    before = evaluate(model, STARTER, report_path=tmp_path / "before.json")["labels"]["queue"]

    # A map that says the model is much less sure than its probabilities: every output must go through it.
    mapping = ([0.2, 0.6, 1.0], [0.05, 0.3, 0.5])
    spec_path = model / "queue" / "head.json"
    spec = json.loads(spec_path.read_text())
    spec_path.write_text(json.dumps({**spec, "confidence_map": {"x": mapping[0], "y": mapping[1]}}))
    served = Classifier.load(model).predict_texts(texts)
    for r, s in zip(raw, served, strict=True):
        assert s["queue"]["label"] == r["queue"]["label"]  # a map changes confidence, never the label
        expected = float(apply_confidence_map(np.array([r["queue"]["confidence"]]), mapping)[0])
        assert abs(s["queue"]["confidence"] - expected) < 2e-3
        assert s["priority"] == r["priority"]  # the other head has no map
    after = evaluate(model, STARTER, report_path=tmp_path / "after.json")["labels"]["queue"]
    assert after["accuracy"] == before["accuracy"]
    assert after["ece"] > before["ece"] + 0.3
    # Coverage depends on the ranking only, which a monotone map keeps; the threshold is a served confidence.
    assert after["coverage_at_90"] == before["coverage_at_90"]
    assert after["threshold_at_90"] <= 0.5 < before["threshold_at_90"]


def test_training_writes_a_kept_confidence_map_into_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import daemon.ml.train as train_module
    from daemon.ml import calibration

    seen: list[int] = []

    def keep_always(probs: Any, y: Any, seed: int, *, report: Any = None) -> dict[str, Any]:
        # The real decision on these rows, then overruled: 120 demo tickets never earn a map of their own.
        verdict = calibration.choose_confidence_map(probs, y, seed, report=report)
        seen.append(len(y))
        return {**verdict, "kept": True, "ece_mapped": 0.0123, "map": {"x": [0.3, 0.9], "y": [0.1, 0.6]}}

    monkeypatch.setattr(train_module, "choose_confidence_map", keep_always)
    model = tmp_path / "m"
    assert main(["train", str(STARTER), "--out", str(model), "--tfidf-only"]) == 0
    meta = json.loads((model / "metadata.json").read_text())
    assert seen == [meta["data"]["rows"]] * 2  # TF-IDF alone calibrates on every out-of-fold row
    for label in ("queue", "priority"):
        head = meta["heads"][label]
        assert head["validation"]["ece"] == 0.0123 and head["confidence_map"]["kept"]
        assert "map" not in head["confidence_map"]  # the points live in head.json, once
        assert json.loads((model / label / "head.json").read_text())["confidence_map"] == {
            "x": [0.3, 0.9],
            "y": [0.1, 0.6],
        }
    result = Classifier.load(model).classify("We were charged twice for the subscription", subject="Invoice")
    assert all(0.1 <= r["confidence"] <= 0.6 for r in result.values())


def test_an_out_that_cannot_be_written_fails_before_any_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = main(["train", str(tmp_path / "no-such-data.csv"), "--out", str(blocker / "model"), "--tfidf-only"])
    err = capsys.readouterr().err
    assert code == 2 and f"--out {blocker / 'model'}: cannot be written" in err
    assert "no-such-data.csv" not in err and "Traceback" not in err  # refused before the data was looked at
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # and nothing was left behind


def test_a_store_that_cannot_be_written_fails_before_any_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = main(["train", str(tmp_path / "no-such-data.csv"), "--store", str(blocker / "store"), "--tfidf-only"])
    err = capsys.readouterr().err
    assert code == 2 and f"model store {blocker / 'store'}: cannot be written" in err
    assert "no-such-data.csv" not in err and "Traceback" not in err


def test_models_finds_the_store_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    assert main(["train", str(STARTER), "--store", str(root), "--promote", "--tfidf-only"]) == 0
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model: {{store: {root}}}\nconnectors:\n  - type: maildir\n    path: {tmp_path / 'mail'}\n", encoding="utf-8"
    )
    capsys.readouterr()
    assert main(["models", "--config", str(config), "list"]) == 0
    assert capsys.readouterr().out.startswith("* v1 ")


def test_a_bad_option_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--log-level", "loud", "models", "list"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "invalid choice: 'loud'" in err and "--help" in err


def test_every_option_says_what_it_is_for() -> None:
    import argparse

    from daemon.cli import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction | argparse._VersionAction) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "ticketd")
    assert missing == []
