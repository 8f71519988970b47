"""The near-tie rule: a costlier candidate replaces a simpler one only when it is not measurably worse.

Validation sets of a few hundred tickets move accuracy and macro-F1 by a point or two between
random splits, so a candidate that "wins" by 0.002 has not won. Every candidate is scored on the
same tickets as the simplest one (the reference) and the paired difference gets a bootstrap
standard error. The rule:

1. A candidate is *admissible* when it is not worse than the reference on accuracy nor on macro-F1
   (the reference itself always is). A candidate that buys one metric with the other has not shown
   that it is better: admins, and the benchmark, judge both; on unseen tickets the traded metric is
   the one that drops (softoft, seed 13: word+char TF-IDF at -0.005 accuracy and +0.021 macro-F1 in
   cross-validation scored 1.4 points of accuracy below the baseline held out).
2. Score = the mean of accuracy and macro-F1. Of the admissible candidates, take the best; then,
   by the one-standard-error rule of cross-validated model choice (Breiman et al. 1984; Hastie,
   Tibshirani & Friedman, ESL 7.10), choose the *simplest* admissible candidate whose score is
   within one standard error of the best's (candidates are listed simplest first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BOOTSTRAP_ROUNDS = 400


def _macro_f1(y: IntArray, pred: IntArray, n_classes: int) -> npt.NDArray[np.float64]:
    """Macro-F1 of each row of `pred` (shape rounds x n) against the matching row of `y`.

    Classes absent from both truth and prediction are left out, as scikit-learn does with `labels=present`.
    """
    rounds = y.shape[0]
    offset = (np.arange(rounds) * n_classes)[:, None]
    size = rounds * n_classes
    hits = np.bincount((offset + y)[y == pred], minlength=size).reshape(rounds, n_classes)
    true_n = np.bincount((offset + y).ravel(), minlength=size).reshape(rounds, n_classes)
    pred_n = np.bincount((offset + pred).ravel(), minlength=size).reshape(rounds, n_classes)
    denom = true_n + pred_n
    present = denom > 0
    f1 = np.where(present, 2.0 * hits / np.maximum(denom, 1), 0.0)
    out: npt.NDArray[np.float64] = f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return out


def _metrics(y: IntArray, pred: IntArray, n_classes: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    acc: npt.NDArray[np.float64] = (y == pred).mean(axis=-1)
    return acc, _macro_f1(np.atleast_2d(y), np.atleast_2d(pred), n_classes)


def choose(
    names: Sequence[str],
    predictions: Sequence[Sequence[int] | npt.NDArray[Any]],
    y: Sequence[int] | npt.NDArray[Any],
    n_classes: int,
    *,
    seed: int = 0,
    rounds: int = BOOTSTRAP_ROUNDS,
    folds: npt.NDArray[Any] | None = None,
) -> dict[str, Any]:
    """Apply the rule to candidates listed simplest first; returns each one's scores and the verdict.

    With `folds` (each row's cross-validation fold), standard errors come from the spread of the
    per-fold scores, corrected for the overlap of the folds' training sets (Nadeau & Bengio 2003).
    That spread includes how much each model changes with its training rows, which a bootstrap
    over fixed predictions misses. Without `folds`, it is a paired bootstrap over the rows.
    """
    y_arr = np.asarray(y, dtype=np.int64)
    preds = [np.asarray(p, dtype=np.int64) for p in predictions]
    points = [_metrics(y_arr[None, :], p[None, :], n_classes) for p in preds]
    if folds is None:
        sample = np.random.default_rng(seed).integers(0, len(y_arr), size=(rounds, len(y_arr)))
        boots = [_metrics(y_arr[sample], p[sample], n_classes) for p in preds]
        method = f"paired bootstrap over {len(y_arr)} rows, {rounds} rounds"

        def se(values: npt.NDArray[np.float64]) -> float:
            return float(values.std())
    else:
        fold_ids = np.unique(folds)
        k = len(fold_ids)
        factor = float(np.sqrt(1 / k + 1 / (k - 1)))
        rows = [np.flatnonzero(folds == f) for f in fold_ids]
        boots = [
            (
                np.array([(y_arr[r] == p[r]).mean() for r in rows]),
                np.array([_macro_f1(y_arr[r][None, :], p[r][None, :], n_classes)[0] for r in rows]),
            )
            for p in preds
        ]
        method = f"{k} cross-validation folds, corrected for overlapping training sets (Nadeau & Bengio 2003)"

        def se(values: npt.NDArray[np.float64]) -> float:
            return float(values.std(ddof=1) * factor)

    scored: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        d_acc, d_f1 = boots[i][0] - boots[0][0], boots[i][1] - boots[0][1]
        point_d_acc = float(points[i][0][0] - points[0][0][0])
        point_d_f1 = float(points[i][1][0] - points[0][1][0])
        se_d_acc, se_d_f1 = se(d_acc), se(d_f1)
        scored.append(
            {
                "name": name,
                "accuracy": round(float(points[i][0][0]), 4),
                "accuracy_se": round(se(boots[i][0]), 4),
                "macro_f1": round(float(points[i][1][0]), 4),
                "macro_f1_se": round(se(boots[i][1]), 4),
                "vs_reference": {
                    "accuracy": round(point_d_acc, 4),
                    "accuracy_se": round(se_d_acc, 4),
                    "macro_f1": round(point_d_f1, 4),
                    "macro_f1_se": round(se_d_f1, 4),
                },
                "admissible": i == 0 or bool(point_d_acc >= 0.0 and point_d_f1 >= 0.0),
            }
        )
    score = [float(a[0] + f[0]) / 2 for a, f in points]
    boot_score = [(a + f) / 2 for a, f in boots]
    admissible = [i for i, s in enumerate(scored) if s["admissible"]]
    best = max(admissible, key=lambda i: (score[i], -i))
    chosen = best
    for i in admissible:  # simplest first
        gap_se = se(boot_score[best] - boot_score[i])
        scored[i]["within_1se_of_best"] = bool(score[i] >= score[best] - gap_se)
        if i < chosen and scored[i]["within_1se_of_best"]:
            chosen = i
    winner, top = scored[chosen], scored[best]
    inadmissible = [s["name"] for s in scored if not s["admissible"]]
    if chosen == 0:
        why = f"{winner['name']} (the simplest) kept"
        if best != 0:
            gap = score[best] - score[0]
            why += f": best-scoring {top['name']} is only {gap:+.4f} ahead, within one standard error"
    else:
        d = winner["vs_reference"]
        why = (
            f"{winner['name']} chosen over {scored[0]['name']}: "
            f"accuracy {d['accuracy']:+.4f} ± {d['accuracy_se']:.4f}, "
            f"macro-F1 {d['macro_f1']:+.4f} ± {d['macro_f1_se']:.4f}; no simpler candidate within one standard error"
        )
        if chosen != best:
            why += f" of the best ({top['name']})"
    if inadmissible:
        why += f"; {', '.join(inadmissible)} worse than {scored[0]['name']} on accuracy or macro-F1"
    return {
        "rule": "admissible: not worse than the simplest on accuracy nor on macro-F1; "
        "of those, the simplest within 1 SE of the best mean of accuracy and macro-F1",
        "standard_errors": method,
        "reference": scored[0]["name"],
        "chosen": winner["name"],
        "reason": why,
        "rows": len(y_arr),
        "candidates": scored,
    }
