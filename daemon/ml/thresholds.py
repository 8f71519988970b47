"""Confidence thresholds for a precision target, per class and global: one rule for training, serving and reports.

A class's threshold is the lowest confidence at which the unseen tickets predicted as that class, at or
above it, reach the target precision, estimated conservatively: their hits are pooled with PRIOR_TICKETS
pseudo-tickets at the precision all classes together have at that confidence (an empirical-Bayes posterior
mean), and at least MIN_SUPPORT of the class's own tickets must be above it. A class with little evidence
therefore behaves like the pool and cannot be trusted by luck (5 of 5 right where the pool is 60% right is
an estimated 73%), while the pool never lifts a class above its own record (5 of 6 right stays 83% where the
pool is 98% right); a class that earns it routes lower, one that errs more routes higher, and one that never
reaches the target has no threshold: it is never routed automatically. The global threshold is the same
rule on all classes at once: what one fixed threshold fitted for the target would be, the comparison every
report shows.

The evidence (each unseen ticket's predicted class, served confidence and whether it was right: the
validation split, or for a TF-IDF-alone head its cross-validated out-of-fold rows) is stored with the
model, so a different target (the config's, the dashboard's advisor) is one call away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_TARGET = 0.9
MIN_SUPPORT = 5  # a class's own unseen tickets at or above its threshold, at least
PRIOR_TICKETS = 10.0  # weight of the pooled precision in a class's estimate, in tickets

Array = npt.NDArray[Any]


def _descending(confidence: Array, correct: Array) -> tuple[Array, Array, Array]:
    """Confidences high to low, cumulative hits, and where a cut is possible (ties cannot be split)."""
    conf = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    conf = conf[order]
    hits = np.cumsum(np.asarray(correct, dtype=np.float64)[order])
    cut = np.r_[conf[1:] != conf[:-1], True] if conf.size else np.zeros(0, dtype=bool)
    return conf, hits, cut


def pooled_precision(confidence: Array, correct: Array) -> tuple[Array, Array]:
    """Precision of all tickets at or above each confidence: (confidences descending, precision)."""
    conf, hits, _ = _descending(confidence, correct)
    return conf, hits / np.arange(1, len(conf) + 1)


def lowest_threshold(
    confidence: Array,
    correct: Array,
    target: float,
    *,
    prior: tuple[Array, Array] | None = None,
    min_support: int = MIN_SUPPORT,
) -> float | None:
    """The lowest confidence whose tickets at or above it reach `target`; None if none does.

    With `prior` (pooled_precision of all classes), a class's precision is shrunk toward the pool's.
    """
    conf, hits, cut = _descending(confidence, correct)
    if conf.size == 0:
        return None
    n = np.arange(1, len(conf) + 1, dtype=np.float64)
    estimate = hits / n
    if prior is not None:
        pool_conf, pool_precision = prior
        # The pool's precision at or above each of this class's confidences (pool_conf is descending).
        at = np.searchsorted(-pool_conf, -conf, side="right") - 1
        shrunk = (hits + PRIOR_TICKETS * pool_precision[np.clip(at, 0, None)]) / (n + PRIOR_TICKETS)
        # Shrinkage only ever lowers the estimate: a class whose own tickets do worse than the pool is judged by them.
        estimate = np.minimum(shrunk, estimate)
    ok = np.flatnonzero(cut & (n >= min_support) & (estimate >= target))
    return None if ok.size == 0 else float(conf[ok[-1]])


@dataclass(frozen=True)
class Evidence:
    """Validation tickets of one head as the served model scored them: predicted class, confidence, right."""

    classes: list[str]
    predicted: Array  # class index
    confidence: Array
    correct: Array  # bool

    @classmethod
    def from_scores(cls, classes: Sequence[str], predicted: Array, confidence: Array, y: Array) -> Evidence:
        """Evidence from arrays of predicted and true class indices."""
        predicted = np.asarray(predicted, dtype=np.int64)
        return cls(list(classes), predicted, np.round(np.asarray(confidence, dtype=np.float64), 4), predicted == y)

    def to_json(self) -> dict[str, list[int] | list[float]]:
        """Compact lists for head.json."""
        return {
            "predicted": [int(v) for v in self.predicted],
            "confidence": [float(v) for v in self.confidence],
            "correct": [int(v) for v in self.correct],
        }

    @classmethod
    def from_json(cls, classes: Sequence[str], data: Mapping[str, Sequence[float]]) -> Evidence:
        """The inverse of to_json; raises ValueError on lists that do not line up."""
        predicted = np.asarray(data["predicted"], dtype=np.int64)
        confidence = np.asarray(data["confidence"], dtype=np.float64)
        correct = np.asarray(data["correct"], dtype=bool)
        if not len(predicted) == len(confidence) == len(correct):
            raise ValueError("predicted, confidence and correct differ in length")
        if len(predicted) and (predicted.min() < 0 or predicted.max() >= len(classes)):
            raise ValueError("a predicted class index outside the head's classes")
        return cls(list(classes), predicted, confidence, correct)


@dataclass(frozen=True)
class Thresholds:
    """Per class the lowest confidence that routes it (None: never), and the one global threshold."""

    target: float
    per_class: dict[str, float | None]
    global_threshold: float | None
    support: dict[str, int]  # validation tickets predicted as each class

    def for_class(self, name: str) -> float | None:
        """The threshold for a predicted class; a class the evidence never saw is never routed."""
        return self.per_class.get(name)

    def to_json(self) -> dict[str, Any]:
        """For head.json, metadata.json and reports."""
        return {
            "target": self.target,
            "min_support": MIN_SUPPORT,
            "prior_tickets": PRIOR_TICKETS,
            "per_class": self.per_class,
            "global": self.global_threshold,
            "support": self.support,
        }


def fit(evidence: Evidence, target: float) -> Thresholds:
    """Per-class and global thresholds for `target` precision."""
    pool = pooled_precision(evidence.confidence, evidence.correct)
    per_class: dict[str, float | None] = {}
    support: dict[str, int] = {}
    for k, name in enumerate(evidence.classes):
        mine = evidence.predicted == k
        support[name] = int(mine.sum())
        per_class[name] = lowest_threshold(evidence.confidence[mine], evidence.correct[mine], target, prior=pool)
    overall = lowest_threshold(evidence.confidence, evidence.correct, target)
    return Thresholds(target, per_class, overall, support)


def routed(
    classes: Sequence[str],
    predicted: Array,
    confidence: Array,
    correct: Array,
    threshold: Mapping[str, float | None],
    target: float | None = None,
) -> dict[str, Any]:
    """Share of tickets a threshold per class would route, and the precision among them."""
    limit = np.array([np.inf if threshold.get(c) is None else threshold[c] for c in classes], dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.int64)
    go = np.asarray(confidence, dtype=np.float64) >= limit[predicted]
    hit = np.asarray(correct, dtype=bool)
    n = int(go.sum())
    right = int(hit[go].sum())
    below = []  # classes whose routed tickets here fall short of the target (given it), on MIN_SUPPORT or more
    for k, name in enumerate(classes):
        mine = go & (predicted == k)
        if target is not None and mine.sum() >= MIN_SUPPORT and hit[mine].mean() < target:
            below.append(name)
    return {
        "routed_share": round(n / len(go), 4) if len(go) else 0.0,
        "routed_precision": round(right / n, 4) if n else None,
        "routed": n,
        "classes_below_target": below,
    }
