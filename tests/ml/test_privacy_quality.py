"""Scrubbing personal data before storage must not cost the model: the softoft dev file, 80/20, same seed.

The model trains on scrubbed text (what the training store holds) and is scored on tickets as they
arrive (serving classifies the helpdesk's text as it is). TF-IDF + LR, the baseline every quality
claim is measured against: seconds per run, and the head most sensitive to changed tokens.
"""

from __future__ import annotations

from pathlib import Path

from tests.servers import unavailable

SOFTOFT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "softoft-tickets" / "softoft-tickets-dev.csv"
MAX_DROP = 0.005  # macro-F1, per label


def test_scrubbed_training_text_keeps_macro_f1_within_half_a_point() -> None:
    from sklearn.metrics import f1_score

    from daemon.ml.dataset import load_dataset, stratified_split
    from daemon.ml.tfidf import baseline_tfidf_lr
    from daemon.privacy import Scrubber

    if not SOFTOFT.is_file():
        unavailable(f"no dev dataset at {SOFTOFT}")
    train, test = stratified_split(load_dataset(SOFTOFT), test_size=0.2, seed=13)
    scrub = Scrubber()
    scrubbed = [scrub.scrub(t) for t in train.texts()]
    changed = sum(1 for _, found in scrubbed if found)
    assert changed > 0  # the file does hold addresses and numbers to scrub
    rows = {}
    for label in ("queue", "priority"):
        scores = []
        for texts in (train.texts(), [t for t, _ in scrubbed]):
            model = baseline_tfidf_lr(texts, train.labels(label), seed=13)
            scores.append(f1_score(test.labels(label), model.predict(test.texts()), average="macro"))
        rows[label] = (scores[0], scores[1], scores[1] - scores[0])
    print(f"\nscrubbed {changed} of {len(train)} training tickets")
    for label, (raw, clean, delta) in rows.items():
        print(f"{label:<9} macro-F1 raw {raw:.4f} scrubbed {clean:.4f} delta {delta:+.4f}")
    assert all(delta >= -MAX_DROP for _, _, delta in rows.values()), rows
