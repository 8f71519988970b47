"""Quality run: stratified 80/20 split -> train -> evaluate against the baselines of the same run.

    python bench/quality.py [--data CSV] [--out DIR] [train options passed through after --]

Prints every candidate's validation scores, the held-out table per label and language, the
training time, and one JSON line. The trained model (with PyTorch weights) stays in DIR for
bench/classify.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "softoft-tickets" / "softoft-tickets-dev.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=ROOT / ".ticketd" / "quality")
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=13)
    args, train_args = parser.parse_known_args()
    train_args = [a for a in train_args if a != "--"]

    from daemon.cli import main as cli
    from daemon.ml.evaluate import summary

    args.out.mkdir(parents=True, exist_ok=True)
    train_csv, test_csv, model = args.out / "train.csv", args.out / "test.csv", args.out / "model"
    if model.exists():
        print(f"{model} exists: remove it to retrain", file=sys.stderr)
        return 2
    split = ["split", str(args.data), "--test-size", str(args.test_size), "--seed", str(args.seed)]
    if cli([*split, "--train-out", str(train_csv), "--test-out", str(test_csv)]) != 0:
        return 1
    started = time.monotonic()
    if cli(["train", str(train_csv), "--out", str(model), "--keep-torch", *train_args]) != 0:
        return 1
    train_seconds = time.monotonic() - started
    report_path = args.out / "report.json"
    if cli(["evaluate", "--model", str(model), str(test_csv), "--report", str(report_path)]) != 0:
        return 1
    report = json.loads(report_path.read_text())
    meta = json.loads((model / "metadata.json").read_text())

    print("\nvalidation candidates (selection split inside the training data)")
    for label, head in meta["heads"].items():
        for c in head["candidates"]:
            mark = "*" if c["tfidf_weight"] == head["tfidf_weight"] else " "
            print(
                f" {mark}{label:<9}{c['candidate']:<12}w={c['tfidf_weight']:<5}"
                f"acc {c['accuracy']:.3f}  macro-F1 {c['macro_f1']:.3f}"
            )
    print("\n" + summary(report))
    result: dict[str, object] = {"train_seconds": round(train_seconds, 1), "test_rows": report["data"]["rows"]}
    for label, m in report["labels"].items():
        base = m["baselines"]["tfidf_lr"]
        result[label] = {
            "chosen": meta["heads"][label]["chosen"],
            "tfidf_weight": meta["heads"][label]["tfidf_weight"],
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "ece": m["ece"],
            "coverage_at_90": m["coverage_at_90"],
            "baseline_accuracy": base["accuracy"],
            "baseline_macro_f1": base["macro_f1"],
            "beats_baseline": m["accuracy"] > base["accuracy"] and m["macro_f1"] > base["macro_f1"],
            "serving_precision": meta["heads"][label]["export"].get("serving_precision"),
            "int8_agreement": meta["heads"][label]["export"].get("int8_agreement"),
        }
    print(f"\ntraining time, all heads: {train_seconds / 60:.1f} min")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
