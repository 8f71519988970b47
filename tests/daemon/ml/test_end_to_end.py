"""Train -> export -> classify -> evaluate on the 200-ticket sample, with a tiny epoch budget."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ml.classifier import Classifier
from daemon.ml.dataset import load_dataset
from daemon.ml.evaluate import evaluate
from tests.support.paths import ROOT, STARTER

pytestmark = pytest.mark.slow


def test_metadata_records_provenance_and_choices(tiny_model: Path, sample_csv: Path) -> None:
    meta = json.loads((tiny_model / "metadata.json").read_text())
    assert meta["data"]["sha256"] == hashlib.sha256(sample_csv.read_bytes()).hexdigest()
    assert meta["data"]["rows"] == meta["data"]["train_rows"] + meta["data"]["validation_rows"]
    assert meta["label_names"] == ["queue", "priority"]
    assert "all-minilm" in meta["base_model"].lower() or "minilm" in meta["base_model"].lower()
    for v in ("torch", "transformers", "onnxruntime", "optimum"):
        assert meta["library_versions"][v] != "not installed"
    ds = load_dataset(sample_csv)
    for label in ("queue", "priority"):
        head = meta["heads"][label]
        assert head["classes"] == sorted(set(ds.labels(label)))
        assert head["chosen"] in {"transformer", "ensemble"}
        assert head["reason"].startswith(f"{head['chosen']}") or " chosen over " in head["reason"]
        assert "1 SE" in head["rule"]
        assert len(head["candidates"]) == 2
        for c in head["candidates"]:  # every candidate's score comes with its uncertainty
            assert 0 < c["accuracy_se"] < 0.5 and c["macro_f1_se"] > 0 and "vs_reference" in c
        cv = head["tfidf"]["cross_validation"]
        assert (
            cv["rows"] == meta["data"]["rows"]
            and len(cv["candidates"]) == 6
            and cv["chosen"] == (f"{head['tfidf']['features']} C={head['tfidf']['C']:g}")
        )
        assert head["temperature"] > 0
        assert head["export"]["fp32_agreement"] == 1.0
        assert head["export"]["fp32_max_abs_logit_diff"] < 1e-3  # the fp32 export is the PyTorch model
        spec = json.loads((tiny_model / label / "head.json").read_text())
        assert spec["serving_precision"] == head["export"]["serving_precision"]
        assert (tiny_model / label / spec["onnx_files"][spec["serving_precision"]]).is_file()
        assert json.loads((tiny_model / label / "labels.json").read_text()) == head["classes"]


def test_classify_output_shape(tiny_model: Path) -> None:
    clf = Classifier.load(tiny_model)
    result = clf.classify("Our invoice was charged twice", subject="Billing problem")
    assert set(result) == {"queue", "priority"}
    for label, out in result.items():
        assert out["label"] in clf.heads[label].classes
        assert 0.0 < out["confidence"] <= 1.0


def test_serving_imports_neither_torch_nor_transformers(tiny_model: Path) -> None:
    code = (
        "import sys, json\n"
        "from daemon.ml.classifier import Classifier\n"
        f"clf = Classifier.load({str(tiny_model)!r})\n"
        "r = clf.classify('VPN down', subject='urgent')\n"
        "print(json.dumps({'result': r, 'heavy': sorted(m for m in ('torch', 'transformers', 'sklearn') "
        "if m in sys.modules)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    payload = json.loads(out.stdout)
    assert payload["heavy"] == []
    assert set(payload["result"]) == {"queue", "priority"}


def test_cli_classify_text_and_jsonl(
    tiny_model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["classify", "--model", str(tiny_model), "--subject", "Refund", "where is my money"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert set(single) == {"queue", "priority"}

    import io

    lines = [
        json.dumps({"id": "a", "subject": "Invoice", "body": "wrong amount"}),
        json.dumps("plain string ticket"),
        "{not json",
        json.dumps({"id": "b", "text": "<p>VPN</p>"}),
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["classify", "--model", str(tiny_model), "--jsonl"]) == 1  # one bad line
    captured = capsys.readouterr()
    rows = [json.loads(x) for x in captured.out.splitlines()]
    assert [r.get("id") for r in rows] == ["a", None, None, "b"]
    assert rows[2] == {"line": 3, "error": "line 3: invalid JSON (Expecting property name enclosed in double quotes)"}
    assert set(rows[1]) == {"queue", "priority"}
    assert "line 3" in captured.err


def test_int8_and_fp32_heads_agree_with_each_other(tiny_model: Path, sample_csv: Path) -> None:
    texts = load_dataset(sample_csv).texts()[:60]
    fp32 = Classifier.load(tiny_model, precision="fp32").predict_texts(texts)
    served = Classifier.load(tiny_model).predict_texts(texts)
    agree = sum(a["queue"]["label"] == b["queue"]["label"] for a, b in zip(fp32, served, strict=True))
    assert agree / len(texts) >= 0.95


def test_evaluate_report(tiny_model: Path, sample_csv: Path, tmp_path: Path) -> None:
    report = evaluate(tiny_model, sample_csv, report_path=tmp_path / "report.json")
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["labels"].keys() == {"queue", "priority"}
    for m in on_disk["labels"].values():
        for key in (
            "accuracy",
            "macro_f1",
            "weighted_f1",
            "ece",
            "coverage_at_90",
            "threshold_at_90",
            "per_class",
            "confusion",
            "per_language",
            "baselines",
        ):
            assert key in m, key
        assert set(m["baselines"]) == {"majority", "tfidf_lr"}
        assert set(m["per_language"]) == set(load_dataset(sample_csv).languages())
        total = sum(sum(row) for row in m["confusion"]["matrix"])
        assert total == report["data"]["rows"]
        assert 0.0 <= m["ece"] <= 1.0
        png = Path(m["confusion_png"])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert m["baselines"]["majority"]["accuracy"] <= m["baselines"]["tfidf_lr"]["accuracy"]
        assert m["target_precision"] == 0.9


def test_evaluate_routes_by_the_thresholds_the_model_serves(tiny_model: Path, sample_csv: Path, tmp_path: Path) -> None:
    from daemon.ml.classifier import Classifier

    report = evaluate(tiny_model, sample_csv, report_path=tmp_path / "report.json")["labels"]
    clf = Classifier.load(tiny_model)
    data = load_dataset(sample_csv)
    served = clf.predict_texts(data.texts())
    for label, head in clf.heads.items():
        assert head.routing is not None
        per_class, single = head.routing.per_class, head.routing.global_threshold
        go = [p[label] for p in served if per_class.get(p[label]["label"]) is not None
              and p[label]["confidence"] >= per_class[p[label]["label"]] - 1e-4]  # fmt: skip
        m = report[label]
        assert m["routed_share"] == pytest.approx(len(go) / len(data), abs=0.011)
        assert m["class_thresholds"] == per_class and m["global_threshold"] == single
        both = ("routed_precision", "global_routed_precision", "global_routed_share")
        assert all(m[k] is None or 0.0 <= m[k] <= 1.0 for k in both)


def test_models_cli_promote_and_rollback(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.ml.store import ModelStore

    store = ModelStore(tmp_path / "store")
    for _ in range(2):
        store.add(tiny_model)
    root = str(store.root)
    assert main(["models", "--root", root, "promote", "v1"]) == 0
    assert main(["models", "--root", root, "promote", "v2"]) == 0
    assert main(["models", "--root", root, "list"]) == 0
    out = capsys.readouterr().out
    assert "* v2" in out and "  v1" in out
    assert main(["models", "--root", root, "rollback"]) == 0
    assert "current -> v1" in capsys.readouterr().out
    assert Classifier.load(root).model_dir == store.versions_dir / "v1"
    assert main(["models", "--root", root, "promote", "v7"]) == 2
    assert "no model version 'v7'" in capsys.readouterr().err


def test_cli_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,subject,body,queue\n1,a,b,X\n2,a,b,X\n3,a,b,Y\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    exe = shutil.which("ticketd") or str(Path(sys.executable).parent / "ticketd")
    res = subprocess.run(
        [exe, "train", str(bad), "--out", str(tmp_path / "m")], capture_output=True, text=True, env=env
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"ticketd: error: {bad}:4 column 'queue': queue label 'Y' has 1 example(s); at least 2 are needed "
        "to train and validate it (merge it into another label, add tickets, or leave such classes out with "
        "--min-examples N)"
    )
    assert "Traceback" not in res.stderr
    res = subprocess.run(
        [exe, "classify", "--model", str(tmp_path / "nothing"), "hi"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 2 and "no model here" in res.stderr and "Traceback" not in res.stderr


def test_train_off_a_terminal_prints_only_json_lines(tmp_path: Path) -> None:
    """A real fine-tuning run with stdout to a pipe: the Trainer's printed dicts used to land between the results."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    model = tmp_path / "m"
    args = ["train", str(STARTER), "--out", str(model), "--label", "queue", "--epochs", "1", "--max-length", "32"]
    res = subprocess.run(
        [sys.executable, "-m", "daemon", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["heads"]["queue"]["fine_tune"]["epochs_run"] == 1  # the Trainer ran, with its callbacks
    events = []
    for line in res.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line on stdout: {line[:200]!r}")
    assert all(isinstance(e, dict) for e in events)
    assert [e["event"] for e in events] == ["model written", "training summary"]
    written, summary = events
    assert written["path"] == str(model) and written["version"] is None and written["seconds"] > 0
    queue = summary["heads"]["queue"]
    assert queue["chosen"] == meta["heads"]["queue"]["chosen"]
    assert queue["validation"]["rows"] == meta["data"]["validation_rows"]
    assert summary["languages"] == meta["data"]["languages"]
    logged = [json.loads(line) for line in res.stderr.splitlines()]  # the libraries' chatter: JSON log lines
    assert not [e for e in logged if "not sharded" in e["event"]]  # transformers' misfiring tensor-parallel check
