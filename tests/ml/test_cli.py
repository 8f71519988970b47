"""CLI paths that need no transformer: TF-IDF-only training into a store, split, argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ml.classifier import Classifier
from tests.conftest import STARTER


def test_tfidf_only_training_into_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    assert main(["train", str(STARTER), "--store", str(root), "--promote", "--tfidf-only"]) == 0
    assert "as v1 (current)" in capsys.readouterr().out
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
