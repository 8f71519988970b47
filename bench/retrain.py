"""Retraining cost against store size, and held-out quality against the fine-tuning cap.

    python bench/retrain.py [--sizes 5000,10000,20000,50000] [--full-sizes 50000]
                            [--quality-datasets softoft-tickets,endava-it-tickets] [--caps 1000,2000,0]
                            [--seeds 13,29] [--max-length 128] [--out DIR]

Time: a training CSV of N rows is built from the softoft dev file (rows repeat under new ids, close
times spread over a year, oldest first, as a retrain writes them) and `ticketd train` runs on it
with the options a retrain passes under the default config (`retrain.budget_minutes`, epochs,
`max_length`, `finetune_cap`). Every size trains TF-IDF only (the part whose cost grows with the
store); the `--full-sizes` also fine-tune both transformer heads, so their minutes are the whole retrain.

Quality: each dataset is split 80/20 (stratified) once per `--seeds` seed; `ticketd train` runs once
per cap (0: no cap) with that seed, epochs and `--max-length`, and `ticketd evaluate` scores the 20%.
The delta to the uncapped run of the same split isolates the cap; the JSON line's deltas are the
mean over the seeds (one split of 940 tickets has a macro-F1 standard error of about 0.015).
Prints both tables, then one JSON line.

Run it alone on the machine: it is hours of CPU at the default sizes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runs from a checkout too
DATASETS = ROOT.parent / "shared" / "datasets"
SOURCE = DATASETS / "softoft-tickets" / "softoft-tickets-dev.csv"
TARGET_MINUTES = 30.0
TARGET_DELTA = 0.01


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _ticketd(*args: str, log: Path) -> None:
    """Run the command line in its own process, as the retrain does; its log goes to a file."""
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.run([sys.executable, "-m", "daemon", *args], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"ticketd {args[0]} failed (exit {proc.returncode}); see {log}")


def store_csv(source: Path, n: int, path: Path) -> None:
    """N training rows as a retrain writes them: id, text, labels, language, closed_at (oldest first)."""
    from daemon.ml.dataset import load_dataset, write_csv

    ds = load_dataset(source, min_examples=1)
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    year = 365 * 86400
    rows = [replace(ds.examples[i % len(ds)], id=f"r{i}", closed_at=start + year * i / n) for i in range(n)]
    write_csv(replace(ds, examples=tuple(rows)), path)


def _keep(work: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Append one run's result to results.jsonl at once: hours of runs are not lost to a later failure."""
    with (work / "results.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    return result


def retrain_options() -> list[str]:
    """The options a retrain passes to `ticketd train` under the default config."""
    from daemon.config.schema import RetrainSection
    from daemon.training.champion import policy_from_section, training_size_args

    return training_size_args(policy_from_section(RetrainSection(), ("queue", "priority")))


def time_size(n: int, full: bool, work: Path, extra: list[str]) -> dict[str, Any]:
    """One training on an N-row store; minutes and where they went."""
    data, model = work / f"store-{n}.csv", work / f"model-{n}-{'full' if full else 'tfidf'}"
    store_csv(SOURCE, n, data)
    shutil.rmtree(model, ignore_errors=True)
    args = ["train", str(data), "--out", str(model), *retrain_options(), "--min-examples", "1", *extra]
    started = time.monotonic()
    _ticketd(*args, *([] if full else ["--tfidf-only"]), log=work / f"{model.name}.log")
    minutes = (time.monotonic() - started) / 60
    meta = json.loads((model / "metadata.json").read_text())
    shutil.rmtree(model, ignore_errors=True)
    heads = meta["heads"]
    return _keep(
        work,
        {
            "rows": n,
            "mode": "both heads" if full else "TF-IDF only",
            "minutes": round(minutes, 2),
            "tfidf_s": {k: h["tfidf"]["seconds"] for k, h in heads.items()},
            "tfidf_cv_rows": {k: h["tfidf"]["cross_validation"]["rows"] for k, h in heads.items()},
            "fine_tune_s": {k: h["fine_tune"].get("seconds") for k, h in heads.items()},
            "fine_tune_rows": {k: h["fine_tune"].get("rows") for k, h in heads.items()},
            "fine_tune_plan": {
                k: {p: h["fine_tune"].get(p) for p in ("epochs", "max_length", "epochs_run")} for k, h in heads.items()
            },
            "validation_rows": meta["data"]["validation_rows"],
        },
    )


def quality(
    name: str, caps: list[int], work: Path, extra: list[str], rows: int | None, seed: int
) -> list[dict[str, Any]]:
    """Held-out macro-F1 and accuracy per cap, on one 80/20 split."""
    data = DATASETS / name / f"{name}-dev.csv"
    if rows is not None:
        head = work / f"{name}-head.csv"
        with data.open(newline="", encoding="utf-8") as src, head.open("w", newline="", encoding="utf-8") as dst:
            reader = csv.reader(src)
            csv.writer(dst).writerows(row for i, row in enumerate(reader) if i <= rows)
        data = head
    train_csv, test_csv = work / f"{name}-s{seed}-train.csv", work / f"{name}-s{seed}-test.csv"
    split = ["split", str(data), "--test-size", "0.2", "--seed", str(seed)]
    _ticketd(*split, "--train-out", str(train_csv), "--test-out", str(test_csv), log=work / f"{name}-split.log")
    from daemon.ml.dataset import load_dataset

    n_train = len(load_dataset(train_csv, min_examples=1))
    out: list[dict[str, Any]] = []
    for cap in sorted(caps, key=lambda c: c or 10**9, reverse=True):  # uncapped first
        if cap >= n_train:  # the sample would be every row: the uncapped run, trained again for nothing
            out += [{**r, "cap": cap} for r in out if r["cap"] == 0]
            continue
        model, report = work / f"{name}-s{seed}-cap{cap}", work / f"{name}-s{seed}-cap{cap}.json"
        shutil.rmtree(model, ignore_errors=True)
        args = ["train", str(train_csv), "--out", str(model), "--seed", str(seed), "--min-examples", "1"]
        started = time.monotonic()
        _ticketd(*args, "--finetune-cap", str(cap), *extra, log=work / f"{model.name}.log")
        minutes = (time.monotonic() - started) / 60
        _ticketd("evaluate", "--model", str(model), str(test_csv), "--report", str(report), log=work / "eval.log")
        meta = json.loads((model / "metadata.json").read_text())
        shutil.rmtree(model, ignore_errors=True)
        labels = json.loads(report.read_text())["labels"]
        for label, m in labels.items():
            head = meta["heads"][label]
            out.append(
                _keep(
                    work,
                    {
                        "dataset": name,
                        "seed": seed,
                        "cap": cap,
                        "label": label,
                        "fine_tune_rows": head["fine_tune"].get("rows"),
                        "train_rows": meta["data"]["train_rows"],
                        "chosen": f"{head['chosen']} w={head['tfidf_weight']:g}",
                        "macro_f1": m["macro_f1"],
                        "accuracy": m["accuracy"],
                        "fine_tune_s": head["fine_tune"].get("seconds"),
                        "minutes": round(minutes, 2),
                    },
                )
            )
    return out


def main() -> int:
    from daemon.ml.sampling import DEFAULT_FINETUNE_CAP

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_ints, default=[5000, 10000, 20000, 50000])
    parser.add_argument("--full-sizes", type=_ints, default=[50000], help="sizes that also fine-tune (slow)")
    parser.add_argument("--quality-datasets", default="softoft-tickets,endava-it-tickets")
    parser.add_argument("--caps", type=_ints, default=[1000, 2000, 0], help="fine-tuning caps to compare; 0: none")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per ticket in the quality runs")
    parser.add_argument("--epochs", type=int, default=3, help="epochs in the quality runs")
    parser.add_argument("--seeds", type=_ints, default=[13, 29], help="one 80/20 split per seed")
    parser.add_argument("--rows", type=int, help="quality runs on the first N tickets only (smoke mode)")
    parser.add_argument("--out", type=Path, default=ROOT / ".ticketd" / "bench-retrain")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # The uncapped run every delta is taken against, and the default cap the target is about.
    args.caps += [c for c in (DEFAULT_FINETUNE_CAP, 0) if c not in args.caps]

    timing = [time_size(n, n in args.full_sizes, args.out, []) for n in args.sizes]
    for n in args.full_sizes:
        if n not in args.sizes:
            timing.append(time_size(n, True, args.out, []))
    print(f"\nretrain time against store size ({os.cpu_count()} cores, fine-tuning cap {DEFAULT_FINETUNE_CAP})")
    print(
        f"{'rows':>7} {'mode':<12}{'minutes':>8}{'tfidf s q/p':>16}{'cv rows':>9}{'fine-tune s q/p':>18}{'ft rows':>9}"
    )
    for t in timing:
        tf = "/".join(f"{v:.0f}" for v in t["tfidf_s"].values())
        ft = "/".join("-" if v is None else f"{v:.0f}" for v in t["fine_tune_s"].values())
        ft_rows = max((v or 0) for v in t["fine_tune_rows"].values()) or "-"
        cv = max(t["tfidf_cv_rows"].values())
        print(f"{t['rows']:>7} {t['mode']:<12}{t['minutes']:>8.1f}{tf:>16}{cv:>9}{ft:>18}{ft_rows!s:>9}")

    extra = ["--max-length", str(args.max_length), "--epochs", str(args.epochs)]
    names = [n for n in args.quality_datasets.split(",") if n]
    runs = [
        r for name in names for seed in args.seeds for r in quality(name, args.caps, args.out, extra, args.rows, seed)
    ]
    uncapped = {(r["dataset"], r["seed"], r["label"]): r for r in runs if r["cap"] == 0}
    print(f"\nheld-out quality against the cap (80/20, {args.epochs} epochs, {args.max_length} tokens)")
    print(
        f"{'dataset':<20}{'seed':>5} {'label':<10}{'cap':>6}{'ft rows':>8}{'macro-F1':>10}{'delta':>8}{'acc':>7}"
        f"{'ft s':>7}  chosen"
    )
    per_seed: dict[tuple[str, str, str], list[float]] = {}
    for r in runs:
        ref = uncapped[(r["dataset"], r["seed"], r["label"])]
        delta = round(r["macro_f1"] - ref["macro_f1"], 4)
        per_seed.setdefault((r["dataset"], str(r["cap"]), r["label"]), []).append(delta)
        print(
            f"{r['dataset']:<20}{r['seed']:>5} {r['label']:<10}{r['cap'] or 'none':>6}{r['fine_tune_rows'] or '-':>8}"
            f"{r['macro_f1']:>10.4f}{delta:>+8.4f}{r['accuracy']:>7.3f}{r['fine_tune_s'] or 0:>7.0f}  {r['chosen']}"
        )
    deltas: dict[str, dict[str, dict[str, float]]] = {}
    for (name, cap, label), values in per_seed.items():
        deltas.setdefault(name, {}).setdefault(cap, {})[label] = round(sum(values) / len(values), 4)
    print(f"\nmean delta over seeds {','.join(map(str, args.seeds))}:")
    for (name, cap, label), values in per_seed.items():
        if cap != "0":
            print(
                f"{name:<20} {label:<10}{cap:>6}{deltas[name][cap][label]:>+8.4f}"
                f"  ({', '.join(f'{v:+.4f}' for v in values)})"
            )

    full = [t for t in timing if t["mode"] == "both heads"]
    largest = max(full, key=lambda t: t["rows"]) if full else None
    # At the default cap; "binding" says whether the cap was below the rows the transformer had to learn from.
    at_cap = {name: by_cap[str(DEFAULT_FINETUNE_CAP)] for name, by_cap in deltas.items()}
    binding = {
        name: any(
            (r["fine_tune_rows"] or 0) > DEFAULT_FINETUNE_CAP for r in runs if r["dataset"] == name and r["cap"] == 0
        )
        for name in deltas
    }
    softoft = at_cap.get("softoft-tickets", {})
    summary: dict[str, Any] = {
        "default_cap": DEFAULT_FINETUNE_CAP,
        "largest_full_rows": largest["rows"] if largest else None,
        "retrain_minutes_50k": next((t["minutes"] for t in full if t["rows"] == 50000), None),
        "retrain_minutes_largest": largest["minutes"] if largest else None,
        "macro_f1_delta_at_cap": min(softoft.values()) if softoft else None,
        "macro_f1_delta_at_cap_by_dataset": at_cap,
        "cap_binding": binding,
        "macro_f1_delta_by_cap": deltas,
        "macro_f1_delta_per_seed": {f"{n}/{c}/{lab}": v for (n, c, lab), v in per_seed.items() if c != "0"},
        "seeds": args.seeds,
        "tfidf_only_minutes": {str(t["rows"]): t["minutes"] for t in timing if t["mode"] == "TF-IDF only"},
    }
    summary["meets_target"] = bool(
        summary["retrain_minutes_50k"] is not None
        and summary["retrain_minutes_50k"] <= TARGET_MINUTES
        and summary["macro_f1_delta_at_cap"] is not None
        and summary["macro_f1_delta_at_cap"] >= -TARGET_DELTA
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
