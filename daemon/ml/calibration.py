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


def expected_calibration_error(probs: Array, y: Array, n_bins: int = 15) -> float:
    """Top-1 ECE with equal-width bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def coverage_at(probs: Array, y: Array, target: float = 0.9) -> tuple[float, float | None]:
    """Largest share of tickets a confidence threshold can auto-route with accuracy >= target."""
    conf = probs.max(axis=1)
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
