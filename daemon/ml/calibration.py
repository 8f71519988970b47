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
    conf = probs.max(axis=1) if confidence is None else np.asarray(confidence, dtype=np.float64)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    order = np.argsort(-conf, kind="stable")
    conf, correct = conf[order], correct[order]
    cum_acc = np.cumsum(correct) / np.arange(1, len(conf) + 1)
    # Only cut where the confidence changes: a threshold cannot split tied tickets.
    cut = np.r_[conf[1:] != conf[:-1], True]
    ok = np.flatnonzero(cut & (cum_acc >= target))
    if ok.size == 0:
        return 0.0, None
    k = int(ok[-1])
    return (k + 1) / len(conf), float(conf[k])


ConfidenceMap = tuple[list[float], list[float]]

MIN_MAP_ROWS = 200  # below this an isotonic fit chases single tickets; temperature alone is steadier
MAP_FOLDS = 5


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


def apply_confidence_map(confidence: Array, mapping: ConfidenceMap) -> Array:
    """Mapped confidence: linear between the map's points, flat beyond its ends (numpy only, for serving)."""
    out: Array = np.interp(np.asarray(confidence, dtype=np.float64), mapping[0], mapping[1])
    return out


def choose_confidence_map(probs: Array, y: Array, seed: int, *, report: Array | None = None) -> dict[str, Any]:
    """Fit a confidence map and keep it only if it scores better on rows it was not fitted on.

    Every row's mapped confidence comes from a map fitted on the other folds, so the comparison with
    temperature alone carries no optimism. `report` (a boolean row mask) picks the rows whose ECE is
    reported, e.g. the validation split inside out-of-fold rows.
    """
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    rows = len(y)
    mask = np.ones(rows, dtype=bool) if report is None else np.asarray(report, dtype=bool)
    ece_temperature = expected_calibration_error(probs[mask], y[mask], confidence=conf[mask])
    out: dict[str, Any] = {"kept": False, "rows": rows, "ece_temperature": round(ece_temperature, 4)}
    if rows < MIN_MAP_ROWS or correct.min() == correct.max():
        out["reason"] = f"{rows} calibration rows (a map needs {MIN_MAP_ROWS} with both outcomes)"
        return out
    fold = np.random.default_rng(seed).permutation(rows) % MAP_FOLDS
    crossfit = np.empty(rows)
    for k in range(MAP_FOLDS):
        held = fold == k
        crossfit[held] = apply_confidence_map(conf[held], fit_confidence_map(conf[~held], correct[~held]))
    ece_mapped = expected_calibration_error(probs[mask], y[mask], confidence=crossfit[mask])
    all_temperature = expected_calibration_error(probs, y, confidence=conf)
    all_mapped = expected_calibration_error(probs, y, confidence=crossfit)
    # The decision uses the Brier score of top-1 correctness, a proper scoring rule: binned ECE favours any
    # map that bunches confidences into few values, so on an already calibrated model it would keep noise.
    brier_temperature = float(np.mean((conf - correct) ** 2))
    brier_mapped = float(np.mean((crossfit - correct) ** 2))
    out["ece_mapped"] = round(ece_mapped, 4)
    out["all_rows"] = {
        "ece_temperature": round(all_temperature, 4),
        "ece_mapped": round(all_mapped, 4),
        "brier_temperature": round(brier_temperature, 5),
        "brier_mapped": round(brier_mapped, 5),
    }
    if brier_mapped >= brier_temperature:
        out["reason"] = "a map fitted on other folds did not lower the Brier score of top-1 confidence"
        return out
    mapping = fit_confidence_map(conf, correct)
    out.update(
        kept=True,
        reason=(
            f"cross-fitted on {rows} rows: Brier {brier_temperature:.4f} -> {brier_mapped:.4f}, "
            f"ECE {all_temperature:.3f} -> {all_mapped:.3f}"
        ),
        map={"x": mapping[0], "y": mapping[1]},
    )
    return out
