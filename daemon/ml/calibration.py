"""Confidence calibration and the confidence-based metrics that auto-routing decisions rest on."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.ml.tfidf import softmax

Array = npt.NDArray[Any]


def log_probs(probs: Array) -> Array:
    """Log of probabilities, floored so a zero never becomes -inf."""
    out: Array = np.log(np.clip(probs, 1e-9, 1.0))
    return out


def combine(transformer_logits: Array | None, tfidf_probs: Array | None, weight: float) -> Array:
    """Ensemble scores: a weighted geometric mean of the two models' probabilities (log space)."""
    if transformer_logits is None or weight >= 1.0:
        assert tfidf_probs is not None
        return log_probs(tfidf_probs)
    tr = log_probs(softmax(np.asarray(transformer_logits, dtype=np.float64)))
    if tfidf_probs is None or weight <= 0.0:
        return tr
    mixed: Array = (1.0 - weight) * tr + weight * log_probs(tfidf_probs)
    return mixed


def calibrated(scores: Array, temperature: float) -> Array:
    """Probabilities after temperature scaling."""
    return softmax(np.asarray(scores, dtype=np.float64) / temperature)


def fit_temperature(scores: Array, y: Array) -> float:
    """Temperature minimising validation negative log-likelihood (Guo et al., 2017)."""
    from scipy.optimize import minimize_scalar

    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y)

    def nll(log_t: float) -> float:
        z = scores / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    # Never sharpen more than 2x: on a small, perfectly classified validation split the likelihood
    # keeps improving as T -> 0, which would print confidence 1.0 for every ticket.
    res = minimize_scalar(nll, bounds=(np.log(0.5), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def expected_calibration_error(probs: Array, y: Array, n_bins: int = 15, *, confidence: Array | None = None) -> float:
    """Top-1 ECE with equal-width bins; `confidence` replaces the top probability when a map serves it."""
    conf = probs.max(axis=1) if confidence is None else np.asarray(confidence, dtype=np.float64)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def coverage_at(
    probs: Array, y: Array, target: float = 0.9, *, confidence: Array | None = None
) -> tuple[float, float | None]:
    """Largest share of tickets a confidence threshold can auto-route with accuracy >= target."""
    from daemon.ml.thresholds import lowest_threshold

    conf = probs.max(axis=1) if confidence is None else np.asarray(confidence, dtype=np.float64)
    threshold = lowest_threshold(conf, probs.argmax(axis=1) == y, target, min_support=1)
    if threshold is None:
        return 0.0, None
    return float((conf >= threshold).mean()), threshold


ConfidenceMap = tuple[list[float], list[float]]

MIN_MAP_ROWS = 200  # below this a fitted map chases single tickets; temperature alone is steadier
MAP_FOLDS = 5
LOGISTIC_POINTS = 101  # a logistic map is served as this many points, like an isotonic one (numpy.interp)
MAP_KINDS = ("temperature", "logistic", "isotonic")  # simplest first: the one-SE rule prefers the earlier


def fit_confidence_map(confidence: Array, correct: Array) -> ConfidenceMap:
    """Monotone map from top-1 confidence to observed accuracy: centred isotonic regression.

    Temperature scaling has one parameter, so it cannot bend a model that is overconfident at the top and
    underconfident below (many-class, imbalanced heads). Isotonic regression (sklearn) can; centring each
    block's level on its mean confidence and interpolating between blocks keeps the map strictly increasing
    inside its range, so thresholds can still separate tickets. Levels get one pseudo-count of each outcome,
    so no ticket is printed as certainly right or certainly wrong.
    """
    from sklearn.isotonic import IsotonicRegression

    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(conf, hit)
    _, block = np.unique(fitted, return_inverse=True)
    size = np.bincount(block)
    centres = np.bincount(block, weights=conf) / size
    smoothed = np.maximum.accumulate((np.bincount(block, weights=hit) + 1.0) / (size + 2.0))
    return [round(float(v), 6) for v in centres], [round(float(v), 6) for v in smoothed]


def _logit(p: Array) -> Array:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    out: Array = np.log(q / (1 - q))
    return out


def fit_logistic_map(confidence: Array, correct: Array, floor: float = 0.0) -> ConfidenceMap | None:
    """Two-parameter map: accuracy = sigmoid(a * logit(confidence) + b), fitted by logistic regression (sklearn).

    Platt's scaling applied to the top-1 confidence. Two parameters are well determined by a few hundred
    tickets, where an isotonic map follows their noise; it still bends what one temperature cannot (a
    head that is overconfident everywhere but at the top). Served as points on [floor, 1] (floor: 1/classes,
    the lowest top-1 probability there is). None when the fit is not increasing: it would reorder tickets.
    """
    from sklearn.linear_model import LogisticRegression

    hit = np.asarray(correct, dtype=np.float64)
    if hit.min() == hit.max():
        return None
    fit = LogisticRegression(C=1e4).fit(_logit(confidence)[:, None], hit.astype(np.int64))
    a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if a <= 0:
        return None
    xs = np.linspace(floor, 1.0, LOGISTIC_POINTS)
    ys = 1.0 / (1.0 + np.exp(-(a * _logit(xs) + b)))
    return [round(float(v), 6) for v in xs], [round(float(v), 6) for v in ys]


def served_confidence(probs: Array, mapping: ConfidenceMap | None) -> Array:
    """The top-1 confidence a head serves: its top probability, through the confidence map when trained."""
    top: Array = probs.max(axis=1)
    return top if mapping is None else apply_confidence_map(top, mapping)


def apply_confidence_map(confidence: Array, mapping: ConfidenceMap) -> Array:
    """Mapped confidence: linear between the map's points, flat beyond its ends (numpy only, for serving)."""
    out: Array = np.interp(np.asarray(confidence, dtype=np.float64), mapping[0], mapping[1])
    return out


def choose_confidence_map(probs: Array, y: Array, seed: int, *, report: Array | None = None) -> dict[str, Any]:
    """Temperature alone, a logistic or an isotonic map: the simplest within one SE of the best held-out Brier score.

    Every row's mapped confidence comes from a map fitted on the other folds, so the comparison carries no
    optimism. The score is the Brier score of top-1 correctness, a proper scoring rule (binned ECE favours
    any map that bunches confidences into few values). Its standard error is that of the per-row
    difference to the best kind; within it, the simpler kind wins, as in the candidate choice
    (daemon.ml.selection). `report` (a boolean row mask) picks the rows whose ECE is reported, e.g. the
    validation split inside out-of-fold rows.
    """
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    rows = len(y)
    mask = np.ones(rows, dtype=bool) if report is None else np.asarray(report, dtype=bool)
    ece_temperature = expected_calibration_error(probs[mask], y[mask], confidence=conf[mask])
    out: dict[str, Any] = {"kept": False, "kind": "temperature", "rows": rows}
    out["ece_temperature"] = round(ece_temperature, 4)
    if rows < MIN_MAP_ROWS or correct.min() == correct.max():
        out["reason"] = f"{rows} calibration rows (a map needs {MIN_MAP_ROWS} with both outcomes)"
        return out
    floor = 1.0 / probs.shape[1]
    fitters = {
        "logistic": lambda c, h: fit_logistic_map(c, h, floor),
        "isotonic": fit_confidence_map,
    }
    fold = np.random.default_rng(seed).permutation(rows) % MAP_FOLDS
    served: dict[str, Array] = {"temperature": conf}
    for kind, fitter in fitters.items():
        crossfit = np.empty(rows)
        for k in range(MAP_FOLDS):
            held = fold == k
            mapping = fitter(conf[~held], correct[~held])
            crossfit[held] = conf[held] if mapping is None else apply_confidence_map(conf[held], mapping)
        served[kind] = crossfit
    loss = {kind: (c - correct) ** 2 for kind, c in served.items()}
    brier = {kind: float(v.mean()) for kind, v in loss.items()}
    best = min(MAP_KINDS, key=lambda k: (brier[k], MAP_KINDS.index(k)))
    se = {kind: float((loss[kind] - loss[best]).std(ddof=1) / np.sqrt(rows)) for kind in MAP_KINDS}
    chosen = next(k for k in MAP_KINDS if brier[k] <= brier[best] + se[k])
    out["cross_fitted"] = {
        kind: {
            "brier": round(brier[kind], 5),
            "brier_se_vs_best": round(se[kind], 5),
            "ece": round(expected_calibration_error(probs[mask], y[mask], confidence=served[kind][mask]), 4),
            "ece_all_rows": round(expected_calibration_error(probs, y, confidence=served[kind]), 4),
        }
        for kind in MAP_KINDS
    }
    out["ece_mapped"] = out["cross_fitted"][chosen]["ece"]
    scores = ", ".join(f"{k} {brier[k]:.4f}" for k in MAP_KINDS)
    if chosen == "temperature":
        out["reason"] = f"cross-fitted on {rows} rows, Brier {scores}: no map beats temperature alone beyond one SE"
        return out
    mapping = fitters[chosen](conf, correct)
    if mapping is None:  # the cross-fitted folds agreed on an increasing fit; all rows together did not
        out["reason"] = f"{chosen} map chosen on folds, but its fit on all rows is not increasing"
        return out
    out.update(
        kept=True,
        kind=chosen,
        reason=f"cross-fitted on {rows} rows, Brier {scores}: {chosen} map within one SE of the best ({best})",
        map={"x": mapping[0], "y": mapping[1]},
    )
    return out
