"""Quality on unseen tickets: every dev dataset, two seeds, ticketd against the TF-IDF + LR baseline of the same split.

    python bench/quality.py [--datasets softoft-tickets,endava-it-tickets] [--seeds 13,29]
                            [--minutes-per-1k 2.2] [--out DIR] [--rows N] [--tfidf-only]

`--rows N --tfidf-only` is the smoke mode the test suite runs (the first N tickets, seconds).

For each dataset in ../shared/datasets and each seed: a stratified 80/20 split, `ticketd train
--budget M --min-examples 1` on the 80 (M scales with training rows x labels, so the whole run stays
near 80 minutes on 2 cores), `ticketd evaluate` on the 20, whose baseline is trained on the same 80.
Prints per dataset and label: accuracy and macro-F1 as mean ± standard deviation over the seeds,
ECE, coverage at 90% precision, the worst single-split difference to the baseline, what the
transformer added on validation and the training minutes; then one JSON line.

Target: ticketd >= baseline on the mean of accuracy and of macro-F1 for every dataset and label,
never more than 1 point worse in a single split, ECE <= 0.05.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runs from a checkout too
DATASETS = ROOT.parent / "shared" / "datasets"
NAMES = ("softoft-tickets", "softoft-german-normalized", "endava-it-tickets", "itsm-assignment-groups")
WORST_ALLOWED = -0.01
MAX_ECE = 0.05


def _ms(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f}±{sd:.3f}"


def _run(
    name: str, seed: int, out: Path, minutes_per_1k: float, rows: int | None = None, tfidf_only: bool = False
) -> dict[str, Any]:
    """One split: train and evaluate; returns per label ticketd's and the baseline's held-out scores."""
    from daemon.cli import main as cli
    from daemon.ml.dataset import load_dataset

    data = DATASETS / name / f"{name}-dev.csv"
    work = out / f"{name}-{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if rows is not None:
        import csv
        import itertools

        with data.open(newline="", encoding="utf-8") as src, (work / "head.csv").open("w", newline="") as dst:
            csv.writer(dst).writerows(itertools.islice(csv.reader(src), rows + 1))  # the header, then N tickets
        data = work / "head.csv"
    train_csv, test_csv, model = work / "train.csv", work / "test.csv", work / "model"
    split = ["split", str(data), "--test-size", "0.2", "--seed", str(seed)]
    if cli([*split, "--train-out", str(train_csv), "--test-out", str(test_csv)]) != 0:
        raise SystemExit(f"{name}: split failed")
    train = load_dataset(train_csv, min_examples=1)
    budget = max(3.0, minutes_per_1k * len(train) * len(train.label_names) / 1000)
    started = time.monotonic()
    args = ["train", str(train_csv), "--out", str(model), "--seed", str(seed), "--budget", f"{budget:.1f}"]
    if cli([*args, "--min-examples", "1", *(["--tfidf-only"] if tfidf_only else [])]) != 0:
        raise SystemExit(f"{name}: training failed")
    minutes = (time.monotonic() - started) / 60
    report_path = work / "report.json"
    if cli(["evaluate", "--model", str(model), str(test_csv), "--report", str(report_path)]) != 0:
        raise SystemExit(f"{name}: evaluation failed")
    report = json.loads(report_path.read_text())
    meta = json.loads((model / "metadata.json").read_text())
    result: dict[str, Any] = {"budget_minutes": round(budget, 1), "train_minutes": round(minutes, 2), "labels": {}}
    for label, m in report["labels"].items():
        head = meta["heads"][label]
        base = m["baselines"]["tfidf_lr"]
        result["labels"][label] = {
            "chosen": f"{head['chosen']} w={head['tfidf_weight']:g}",
            "tfidf": f"{head['tfidf']['features']} C={head['tfidf']['C']:g}",
            "calibration": (head.get("confidence_map") or {}).get("kind", "temperature"),
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "ece": m["ece"],
            "coverage_at_90": m["coverage_at_90"],
            "baseline_accuracy": base["accuracy"],
            "baseline_macro_f1": base["macro_f1"],
            "baseline_ece": base["ece"],
            "baseline_coverage_at_90": base["coverage_at_90"],
            "transformer_added": head.get("transformer_added"),
            "fine_tune": {k: head["fine_tune"].get(k) for k in ("epochs", "max_length", "seconds", "skipped")},
            "per_language_weights": head.get("per_language_weights"),
            "per_language": {lang: r["accuracy"] for lang, r in m.get("per_language", {}).items()},
        }
    shutil.copy(model / "metadata.json", work / "metadata.json")
    shutil.rmtree(model, ignore_errors=True)  # ~100 MB per model; the report and metadata say what it was
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(NAMES))
    parser.add_argument("--seeds", default="13,29")
    parser.add_argument("--minutes-per-1k", type=float, default=2.2, help="training budget per 1,000 rows x labels")
    parser.add_argument("--out", type=Path, default=ROOT / ".ticketd" / "quality")
    parser.add_argument("--rows", type=int, help="only the first N tickets of each dataset (smoke mode)")
    parser.add_argument("--tfidf-only", action="store_true", help="skip the transformer (smoke mode)")
    args = parser.parse_args()
    names = [n for n in args.datasets.split(",") if n]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    missing = [n for n in names if not (DATASETS / n / f"{n}-dev.csv").is_file()]
    if missing:
        print(f"datasets not found under {DATASETS}: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs: dict[str, list[dict[str, Any]]] = {}
    started = time.monotonic()
    for name in names:
        for seed in seeds:
            print(f"\n=== {name}, seed {seed}", flush=True)
            runs.setdefault(name, []).append(
                _run(name, seed, args.out, args.minutes_per_1k, args.rows, args.tfidf_only)
            )

    header = (
        f"{'dataset':<26}{'label':<9}{'ticketd acc':>13}{'base acc':>13}{'ticketd F1':>13}{'base F1':>13}"
        f"{'ECE':>7}{'base':>6}{'cov90':>7}{'base':>6}{'worst Δ':>9}{'min':>6}  chosen per seed"
    )
    print("\n" + header + "\n" + "-" * len(header))
    summary: dict[str, Any] = {}
    ok = True
    for name, splits in runs.items():
        for label in splits[0]["labels"]:
            rows = [s["labels"][label] for s in splits]
            acc, bacc = [r["accuracy"] for r in rows], [r["baseline_accuracy"] for r in rows]
            f1, bf1 = [r["macro_f1"] for r in rows], [r["baseline_macro_f1"] for r in rows]
            deltas = [a - b for a, b in zip(acc, bacc, strict=True)] + [a - b for a, b in zip(f1, bf1, strict=True)]
            worst = min(deltas)
            ece = statistics.mean(r["ece"] for r in rows)
            meets = (
                statistics.mean(acc) >= statistics.mean(bacc)
                and statistics.mean(f1) >= statistics.mean(bf1)
                and worst >= WORST_ALLOWED
                and max(r["ece"] for r in rows) <= MAX_ECE
            )
            ok &= meets
            minutes = statistics.mean(s["train_minutes"] for s in splits)
            chosen = "; ".join(f"{r['chosen']}, {r['calibration']}" for r in rows)
            print(
                f"{name:<26}{label:<9}{_ms(acc):>13}{_ms(bacc):>13}{_ms(f1):>13}{_ms(bf1):>13}"
                f"{ece:>7.3f}{statistics.mean(r['baseline_ece'] for r in rows):>6.3f}"
                f"{statistics.mean(r['coverage_at_90'] for r in rows):>7.3f}"
                f"{statistics.mean(r['baseline_coverage_at_90'] for r in rows):>6.3f}"
                f"{worst:>+9.3f}{minutes:>6.1f}  {chosen}" + ("" if meets else "  MISS")
            )
            summary.setdefault(name, {})[label] = {
                "accuracy_mean": round(statistics.mean(acc), 4),
                "baseline_accuracy_mean": round(statistics.mean(bacc), 4),
                "macro_f1_mean": round(statistics.mean(f1), 4),
                "baseline_macro_f1_mean": round(statistics.mean(bf1), 4),
                "worst_split_delta": round(worst, 4),
                "ece_mean": round(ece, 4),
                "meets_target": meets,
                "splits": rows,
            }
        summary[name]["train_minutes"] = [s["train_minutes"] for s in splits]

    print("\nwhat the transformer added on validation (best candidate with it, against TF-IDF alone)")
    for name, splits in runs.items():
        for label in splits[0]["labels"]:
            for seed, s in zip(seeds, splits, strict=True):
                r = s["labels"][label]
                added, fine = r["transformer_added"], r["fine_tune"]
                if added:
                    text = (
                        f"acc {added['accuracy']:+.3f}±{added['accuracy_se']:.3f}, "
                        f"F1 {added['macro_f1']:+.3f}±{added['macro_f1_se']:.3f}, "
                        f"{fine['epochs']} ep × {fine['max_length']} tok, {(fine['seconds'] or 0) / 60:.1f} min, "
                        + ("kept" if added["kept"] else "not kept")
                    )
                else:
                    text = f"skipped: {fine.get('skipped')}"
                print(f"  {name:<26}{label:<9}seed {seed:<4}{text}")
    total = (time.monotonic() - started) / 60
    print(f"\nwhole run: {total:.1f} min; target met on every dataset and label: {ok}")
    print(json.dumps({"minutes": round(total, 1), "seeds": seeds, "meets_target": ok, "datasets": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
