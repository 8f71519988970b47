"""Scrubbing personal data before storage must not cost the model: the softoft dev file, 80/20, two seeds.

The model trains on scrubbed text (what the training store holds) and is scored on tickets as they
arrive (serving classifies the helpdesk's text as it is). TF-IDF + LR, the baseline every quality
claim is measured against: the head most sensitive to changed tokens. Target: the mean macro-F1
delta per label >= -0.005. Prints a table, then one JSON line. About 2 minutes on 2 cores.

    python bench/privacy.py [--data softoft-tickets-dev.csv]
"""

from __future__ import annotations

from pathlib import Path

SOFTOFT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "softoft-tickets" / "softoft-tickets-dev.csv"
MAX_DROP = 0.005  # macro-F1 per label, mean of two splits


def main() -> int:
    import argparse
    import json
    import sys

    from sklearn.metrics import f1_score

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from daemon.ml.dataset import load_dataset, stratified_split
    from daemon.ml.tfidf import baseline_tfidf_lr
    from daemon.pipeline.privacy import Scrubber

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SOFTOFT, help="labelled tickets (default: the softoft dev file)")
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    scrub = Scrubber()
    deltas: dict[str, list[float]] = {"queue": [], "priority": []}
    for seed in (13, 29):  # two splits: one split's noise is as large as the effect looked for
        train, test = stratified_split(dataset, test_size=0.2, seed=seed)
        scrubbed = [scrub.scrub(t) for t in train.texts()]
        changed = sum(1 for _, found in scrubbed if found)
        print(f"\nseed {seed}: scrubbed {changed} of {len(train)} training tickets")
        for label in deltas:
            scores = []
            for texts in (train.texts(), [t for t, _ in scrubbed]):
                model = baseline_tfidf_lr(texts, train.labels(label), seed=13)
                scores.append(f1_score(test.labels(label), model.predict(test.texts()), average="macro"))
            deltas[label].append(scores[1] - scores[0])
            raw, clean = scores
            print(f"{label:<9} macro-F1 raw {raw:.4f} scrubbed {clean:.4f} delta {clean - raw:+.4f}")
    means = {label: sum(d) / len(d) for label, d in deltas.items()}
    met = all(m >= -MAX_DROP for m in means.values())
    print(json.dumps({"macro_f1_delta_mean": {k: round(m, 4) for k, m in means.items()}, "target_met": met}))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
