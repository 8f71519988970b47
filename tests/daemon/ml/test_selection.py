"""The near-tie rule: a costlier candidate has to be ahead by more than the noise of the split."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from daemon.ml.selection import _macro_f1, choose


def _flip(y: np.ndarray, share: float, n_classes: int, seed: int) -> np.ndarray:
    """Predictions that are wrong on `share` of the rows."""
    rng = np.random.default_rng(seed)
    pred = y.copy()
    wrong = rng.random(len(y)) < share
    pred[wrong] = (y[wrong] + 1 + rng.integers(0, n_classes - 1, wrong.sum())) % n_classes
    return pred


def test_macro_f1_matches_scikit_learn_on_present_classes() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, size=(5, 300))
    pred = np.where(rng.random((5, 300)) < 0.6, y, rng.integers(0, 6, size=(5, 300)))
    y[:, y[0] == 5] = 4  # class 5 absent from truth in some rows, as on small splits
    got = _macro_f1(y, pred, 6)
    want = [f1_score(t, p, labels=sorted(set(t) | set(p)), average="macro") for t, p in zip(y, pred, strict=True)]
    assert np.allclose(got, want)


def _swap(y: np.ndarray, pred: np.ndarray, fixed: int, broken: int, n_classes: int) -> np.ndarray:
    """`pred` with `fixed` wrong rows made right and `broken` right ones made wrong: another model, barely better."""
    out = pred.copy()
    wrong, right = np.flatnonzero(pred != y), np.flatnonzero(pred == y)
    out[wrong[:fixed]] = y[wrong[:fixed]]
    out[right[:broken]] = (y[right[:broken]] + 1) % n_classes
    return out


def test_a_near_tie_goes_to_the_simpler_candidate() -> None:
    y = np.random.default_rng(0).integers(0, 4, 700)
    simple = _flip(y, 0.40, 4, seed=1)
    costly = _swap(y, simple, fixed=32, broken=28, n_classes=4)  # 60 tickets differ, net +4 of 700: noise
    verdict = choose(["tfidf", "ensemble"], [simple, costly], y, 4)
    assert verdict["chosen"] == "tfidf"
    assert verdict["candidates"][1]["accuracy"] >= verdict["candidates"][0]["accuracy"]
    assert "within one standard error" in verdict["reason"]


def test_a_clear_gain_on_both_metrics_wins() -> None:
    y = np.random.default_rng(0).integers(0, 4, 3000)
    simple = _flip(y, 0.45, 4, seed=1)
    better = _flip(y, 0.35, 4, seed=2)
    verdict = choose(["tfidf", "ensemble w=0.5"], [simple, better], y, 4)
    assert verdict["chosen"] == "ensemble w=0.5"
    gain = verdict["candidates"][1]["vs_reference"]
    assert gain["accuracy"] > 2 * gain["accuracy_se"] > 0 and gain["macro_f1"] > 0
    assert verdict["candidates"][1]["admissible"]


def test_a_trade_of_one_metric_for_the_other_is_not_admissible() -> None:
    """The softoft case: word+char TF-IDF, -0.5 points accuracy and +2 macro-F1 in CV, lost accuracy held out."""
    y = np.repeat([0, 1, 2], [1200, 1200, 600])
    simple = _flip(y, 0.40, 3, seed=1)
    small_right = np.flatnonzero((y == 2) & (simple != y))[:66]  # 66 more right on the small class ...
    big_right = np.flatnonzero((y != 2) & (simple == y))[:75]  # ... and 75 fewer on the big ones
    trade = simple.copy()
    trade[small_right] = 2
    trade[big_right] = 2
    verdict = choose(["word C=10", "word+char C=10"], [simple, trade], y, 3)
    cand = verdict["candidates"][1]
    gain = cand["vs_reference"]
    assert -gain["accuracy_se"] < gain["accuracy"] < 0 < gain["macro_f1"]  # within the noise on accuracy, yet down
    assert not cand["admissible"] and verdict["chosen"] == "word C=10"
    assert "word+char C=10 worse than word C=10 on accuracy or macro-F1" in verdict["reason"]


def test_worse_on_one_metric_is_not_admissible() -> None:
    y = np.repeat([0, 1, 2], [900, 900, 200])  # a small class
    simple = _flip(y, 0.3, 3, seed=1)
    costly = y.copy()  # right on every ticket of the big classes...
    costly[y == 2] = 0  # ...and never on the small one: more accurate, lower macro-F1
    verdict = choose(["tfidf", "transformer"], [simple, costly], y, 3, seed=3)
    cand = verdict["candidates"][1]
    gain = cand["vs_reference"]
    assert gain["accuracy"] > 0 and gain["macro_f1"] < -gain["macro_f1_se"]
    assert not cand["admissible"] and verdict["chosen"] == "tfidf"
    assert "transformer worse than tfidf on accuracy or macro-F1" in verdict["reason"]


def test_the_simplest_within_one_standard_error_of_the_best_is_chosen() -> None:
    y = np.random.default_rng(0).integers(0, 3, 3000)
    names = ["tfidf", "ensemble w=0.8", "ensemble w=0.5"]
    base = _flip(y, 0.40, 3, seed=1)
    mid = _flip(y, 0.30, 3, seed=2)
    top = _swap(y, mid, fixed=40, broken=35, n_classes=3)  # a hair better than the middle one
    verdict = choose(names, [base, mid, top], y, 3)
    assert verdict["chosen"] == "ensemble w=0.8"
    assert verdict["candidates"][2]["within_1se_of_best"] and not verdict["candidates"][0]["within_1se_of_best"]
    assert "of the best (ensemble w=0.5)" in verdict["reason"]


def test_fold_standard_errors_see_a_gain_that_only_some_folds_show() -> None:
    """Cross-validated choices take their SE from the folds: a gain on two folds and a loss on two is no gain."""
    y = np.random.default_rng(0).integers(0, 4, 4000)
    folds = np.repeat([0, 1, 2, 3], 1000)
    simple = _flip(y, 0.40, 4, seed=1)
    costly = simple.copy()
    for f, (fixed, broken) in enumerate([(60, 0), (60, 0), (0, 40), (0, 40)]):
        rows = slice(f * 1000, (f + 1) * 1000)
        costly[rows] = _swap(y[rows], simple[rows], fixed=fixed, broken=broken, n_classes=4)
    pooled = choose(["word C=10", "word+char C=10"], [simple, costly], y, 4)
    by_fold = choose(["word C=10", "word+char C=10"], [simple, costly], y, 4, folds=folds)
    assert pooled["chosen"] == "word+char C=10"  # +1 point on 4000 fixed predictions looks certain...
    assert by_fold["chosen"] == "word C=10"  # ...but the folds disagree about it
    d = by_fold["candidates"][1]["vs_reference"]
    assert d["accuracy"] == 0.01 and d["accuracy_se"] > 0.03 and "Nadeau" in by_fold["standard_errors"]
