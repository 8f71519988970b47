"""Routing at a precision target: per-class thresholds against one global threshold, on held-out tickets.

    python bench/thresholds.py [--datasets softoft-tickets,endava-it-tickets] [--seeds 13]
                               [--target 0.9] [--tfidf-only] [--budget MINUTES] [--rows N] [--out DIR]

Each dataset's dev file is split 80/20 (stratified, per seed); `ticketd train --target-precision`
fits both kinds of threshold on its validation split (daemon/ml/thresholds.py) and `ticketd evaluate`
applies them to the 20%. Per dataset and label: the share of held-out tickets routed and the precision
among them, for the per-class thresholds and for one global threshold, and the classes whose routed
held-out tickets fall short of the target (5 or more routed). Prints the table, then one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"


def _ticketd(*args: str, log: Path) -> None:
    """The command line in its own process; its log goes to a file."""
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.run([sys.executable, "-m", "daemon", *args], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"ticketd {args[0]} failed (exit {proc.returncode}); see {log}")


def run(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One split: train with the target, evaluate the held-out part; the evaluate report's routing fields."""
    data = DATASETS / name / f"{name}-dev.csv"
    work = args.out / f"{name}-s{seed}"
    work.mkdir(parents=True, exist_ok=True)
    if args.rows is not None:
        head = work / "head.csv"
        with data.open(newline="", encoding="utf-8") as src, head.open("w", newline="", encoding="utf-8") as dst:
            csv.writer(dst).writerows(row for i, row in enumerate(csv.reader(src)) if i <= args.rows)
        data = head
    train_csv, test_csv, model = work / "train.csv", work / "test.csv", work / "model"
    split = ["split", str(data), "--test-size", "0.2", "--seed", str(seed)]
    _ticketd(*split, "--train-out", str(train_csv), "--test-out", str(test_csv), log=work / "split.log")
    train = ["train", str(train_csv), "--out", str(model), "--seed", str(seed), "--min-examples", "1"]
    train += ["--target-precision", f"{args.target:g}"]
    if args.tfidf_only:
        train.append("--tfidf-only")
    if args.budget is not None:
        train += ["--budget", f"{args.budget:g}"]
    if model.exists():
        import shutil

        shutil.rmtree(model)
    _ticketd(*train, log=work / "train.log")
    report = work / "report.json"
    _ticketd("evaluate", "--model", str(model), str(test_csv), "--report", str(report), log=work / "evaluate.log")
    labels = json.loads(report.read_text(encoding="utf-8"))["labels"]
    keys = (
        "n",
        "routed_share",
        "routed_precision",
        "global_routed_share",
        "global_routed_precision",
        "classes_below_target",
        "global_classes_below_target",
    )
    return {label: {k: m.get(k) for k in keys} for label, m in labels.items()}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="softoft-tickets,endava-it-tickets")
    parser.add_argument("--seeds", default="13")
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--tfidf-only", action="store_true", help="train without the transformer (fast)")
    parser.add_argument("--budget", type=float, help="minutes per training")
    parser.add_argument("--rows", type=int, help="the first N tickets of each file only (smoke mode)")
    parser.add_argument("--out", type=Path, default=ROOT / ".ticketd" / "bench-thresholds")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    results = {name: {seed: run(name, seed, args) for seed in seeds} for name in args.datasets.split(",") if name}
    model = "TF-IDF only" if args.tfidf_only else "default model"
    print(f"held-out routing at target precision {args.target:g} ({model}; 80/20 split per seed)")
    print(
        f"{'dataset':<20}{'seed':>5} {'label':<9}{'per-class routed %':>19}{'prec %':>8}{'below':>6}"
        f"{'global routed %':>17}{'prec %':>8}{'below':>6}"
    )
    more, meets = True, True
    for name, by_seed in results.items():
        for seed, labels in by_seed.items():
            for label, m in labels.items():
                print(
                    f"{name:<20}{seed:>5} {label:<9}{_pct(m['routed_share']):>19}{_pct(m['routed_precision']):>8}"
                    f"{len(m['classes_below_target'] or []):>6}{_pct(m['global_routed_share']):>17}"
                    f"{_pct(m['global_routed_precision']):>8}{len(m['global_classes_below_target'] or []):>6}"
                )
                more &= (m["routed_share"] or 0) > (m["global_routed_share"] or 0)
                meets &= m["routed_precision"] is None or m["routed_precision"] >= args.target
    summary = {
        "target_precision": args.target,
        "tfidf_only": args.tfidf_only,
        "seeds": seeds,
        "results": {name: {str(s): v for s, v in by_seed.items()} for name, by_seed in results.items()},
        "per_class_routes_more_everywhere": more,
        "per_class_meets_target_everywhere": meets,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
