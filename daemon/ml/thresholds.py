"""Confidence thresholds for a precision target set the way admins set it: one target per label, a threshold per class.

`target_precision` asks that *all routed tickets of a label together* are right at least that often; the rule
routes as many tickets as it can under that, choosing one confidence threshold per class. On a head's evidence
(each unseen ticket's predicted class, served confidence and whether it was right: the validation split, or
for a TF-IDF-alone head its cross-validated out-of-fold rows, kept with the model) and a Policy:

1. **A class's precision is estimated conservatively.** At or above a cut, its hits are pooled with
   PRIOR_TICKETS pseudo-tickets at the precision all classes have at that confidence (an empirical-Bayes
   posterior mean), but never above its own record: 5 of 5 right where the pool is 60% right is an estimated
   73%, and 5 of 6 stays 83% where the pool is 98%. A cut needs MIN_SUPPORT of the class's own tickets at or
   above it, so a class with fewer evidence tickets is switched off: "not enough closed tickets: N, needs M".
2. **Floors and opt-outs.** A class with a floor (`min_precision`) is cut only where its own estimate meets the
   floor; it still counts in the pooled target. An `always_route` class routes every ticket that has text and
   counts too; a `never_route` class is left out of everything.
3. **The pooled constraint, with an evidence bound.** The thresholds maximise the routed evidence tickets
   subject to: the one-sided 95% Wilson lower bound of their pooled estimated precision (the sum of the
   classes' estimated hits over the routed count) is at or above the target. The search walks every class's
   upper concave hull of (tickets, estimated hits) in order of marginal precision (the textbook greedy for
   coverage under a pooled precision), keeps the longest walk that meets the bound, then tries the best
   partial next step. If one threshold for every class (same policy, estimate and bound: the `global`
   figure every report shows) routes more, it is used instead. The result is checked against the bound, so
   it always meets it and never routes fewer evidence tickets than one global threshold. A class routed down
   to its least confident evidence ticket has no evidence below it; there it routes as low as the global
   threshold does (the same evidence tickets either way).

Why this bound: the estimate alone was met on the evidence but missed on unseen tickets (softoft queue,
target 0.9: 87.2% per class, 87.1% with one threshold), because choosing where to cut on the same tickets
that judge the cut favours lucky stretches. The shrinkage removes the luck of small classes, the lower bound
that of the pool; 95% one-sided is the same level the live report flags a shortfall at (its upper bound below
the target), so a fit that passes here is one the report would not call clearly short on the same evidence.
Wilson rather than the normal approximation because it stays inside [0, 1] and honest near 1 with few tickets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_TARGET = 0.9
MIN_SUPPORT = 5  # a class's own unseen tickets at or above its threshold, at least
PRIOR_TICKETS = 10.0  # weight of the pooled precision in a class's estimate, in tickets
Z_ONE_SIDED_95 = 1.6449  # the fit's lower bound and the live report's upper bound: one-sided 95%

Array = npt.NDArray[Any]


def wilson(successes: float, n: float, z: float = Z_ONE_SIDED_95) -> tuple[float, float]:
    """One-sided Wilson score bounds (lower, upper) of a proportion; (0, 1) without trials."""
    if n <= 0:
        return 0.0, 1.0
    lower, upper = _wilson(np.array([successes], dtype=np.float64), np.array([n], dtype=np.float64), z)
    return float(lower[0]), float(upper[0])


def _wilson(successes: Array, n: Array, z: float = Z_ONE_SIDED_95) -> tuple[Array, Array]:
    """Vectorised Wilson bounds for n > 0."""
    p = np.clip(successes / n, 0.0, 1.0)
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return np.maximum(0.0, (centre - spread) / scale), np.minimum(1.0, (centre + spread) / scale)


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


def _shrunk(conf: Array, hits: Array, n: Array, prior: tuple[Array, Array] | None) -> Array:
    """Estimated precision at or above each cut: shrunk toward the pool's there, never above the class's own."""
    own = hits / n
    if prior is None:
        return own
    pool_conf, pool_precision = prior
    # The pool's precision at or above each of this class's confidences (pool_conf is descending).
    at = np.searchsorted(-pool_conf, -conf, side="right") - 1
    shrunk = (hits + PRIOR_TICKETS * pool_precision[np.clip(at, 0, None)]) / (n + PRIOR_TICKETS)
    return np.minimum(shrunk, own)


def lowest_threshold(
    confidence: Array,
    correct: Array,
    target: float,
    *,
    prior: tuple[Array, Array] | None = None,
    min_support: int = MIN_SUPPORT,
) -> float | None:
    """The lowest confidence whose tickets at or above it reach `target` on their own; None if none does.

    With `prior` (pooled_precision of all classes), a class's precision is shrunk toward the pool's.
    """
    conf, hits, cut = _descending(confidence, correct)
    if conf.size == 0:
        return None
    n = np.arange(1, len(conf) + 1, dtype=np.float64)
    ok = np.flatnonzero(cut & (n >= min_support) & (_shrunk(conf, hits, n, prior) >= target))
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
class Policy:
    """What one label's routing asks of its thresholds; class names are the model's (resolved by the caller)."""

    target: float = DEFAULT_TARGET
    floors: tuple[tuple[str, float], ...] = ()  # (class, min_precision), sorted: hashable for the serving cache
    never: frozenset[str] = frozenset()
    always: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        target: float,
        floors: Mapping[str, float] | None = None,
        never: Sequence[str] | frozenset[str] = (),
        always: Sequence[str] | frozenset[str] = (),
    ) -> Policy:
        """A policy from plain collections."""
        return cls(target, tuple(sorted((floors or {}).items())), frozenset(never), frozenset(always))

    def floor(self, name: str) -> float | None:
        """The class's min_precision, if it has one."""
        return dict(self.floors).get(name)


@dataclass(frozen=True)
class Figure:
    """Routed evidence tickets and their estimated precision with its one-sided 95% Wilson bounds."""

    tickets: int  # evidence tickets in scope (all of the label's, or the class's predicted ones)
    routed: int
    correct: int  # right among the routed, as counted
    estimate: float | None  # estimated precision (shrunk per class, summed for a pool)
    lower: float | None
    upper: float | None

    @classmethod
    def of(cls, tickets: int, routed: int, correct: int, hits: float) -> Figure:
        """From counts and estimated hits."""
        if routed <= 0:
            return cls(tickets, 0, 0, None, None, None)
        lower, upper = wilson(hits, routed)
        return cls(tickets, routed, correct, round(hits / routed, 4), round(lower, 4), round(upper, 4))

    @property
    def coverage(self) -> float | None:
        """Share of the tickets in scope that are routed."""
        return round(self.routed / self.tickets, 4) if self.tickets else None

    def to_json(self) -> dict[str, Any]:
        """For head.json, reports and pages."""
        return {
            "tickets": self.tickets,
            "routed": self.routed,
            "correct": self.correct,
            "coverage": self.coverage,
            "estimate": self.estimate,
            "lower": self.lower,
            "upper": self.upper,
        }


_STATES = (
    ("not enough closed tickets", "too_few_tickets"),
    ("its estimated precision", "below_floor"),
    ("left out", "left_out"),
)


@dataclass(frozen=True)
class ClassFit:
    """One class under the rule: its threshold (None: never routed), its figure, and why it is not routed."""

    name: str
    threshold: float | None
    figure: Figure
    floor: float | None = None
    reason: str | None = None  # why it is never routed (or "always_route"); None when the rule routes it

    @property
    def state(self) -> str:
        """Why it is (not) routed, as one word: routed, always_route, never_route, too_few_tickets, below_floor,
        left_out or no_cut (the metrics' states)."""
        reason = self.reason
        if reason is None or reason in ("always_route", "never_route"):
            return reason or "routed"
        for start, state in _STATES:
            if reason.startswith(start):
                return state
        return "no_cut"

    def below_pooled(self, pooled: float | None) -> bool:
        """Routed at an estimated precision under its label's pooled one."""
        estimate = self.figure.estimate
        return self.threshold is not None and estimate is not None and pooled is not None and estimate < pooled

    def marks(self, pooled: float | None) -> list[str]:
        """What a report marks the class with: below the pooled figure, floored, switched off, forced."""
        out = []
        if self.threshold is None and self.reason is not None:
            switched_off = self.state in ("too_few_tickets", "below_floor", "no_cut")
            out.append(f"switched off: {self.reason}" if switched_off else self.reason)
        elif self.reason == "always_route":
            out.append("always_route")
        if self.floor is not None:
            out.append(f"floor {self.floor:g}")
        if self.below_pooled(pooled):
            out.append("below the pooled figure")
        return out

    def to_json(self) -> dict[str, Any]:
        """For head.json, reports and pages."""
        return {"threshold": self.threshold, "floor": self.floor, "reason": self.reason, **self.figure.to_json()}


@dataclass(frozen=True)
class Thresholds:
    """Per class the lowest confidence that routes it (None: never), and the one global threshold to compare."""

    target: float
    per_class: dict[str, float | None]
    global_threshold: float | None
    support: dict[str, int]  # evidence tickets predicted as each class
    classes: dict[str, ClassFit] = field(default_factory=dict)
    pooled: Figure | None = None  # the label's routed evidence tickets under the per-class thresholds
    global_pooled: Figure | None = None  # the same under the one global threshold
    policy: Policy | None = None

    def for_class(self, name: str) -> float | None:
        """The threshold for a predicted class; a class the evidence never saw is never routed."""
        return self.per_class.get(name)

    def why_not(self, name: str) -> str:
        """Why a class is never routed, in words for the decision's reason."""
        fitted = self.classes.get(name)
        if fitted is None or fitted.reason is None:
            return f"{name!r} cannot reach precision {self.target:.2f}"
        return f"{name!r} is not routed at pooled precision {self.target:.2f} ({fitted.reason})"

    def to_json(self) -> dict[str, Any]:
        """For head.json, metadata.json and reports."""
        policy = self.policy or Policy(self.target)
        return {
            "target": self.target,
            "rule": "pooled",
            "bound": "one-sided 95% Wilson lower bound",
            "min_support": MIN_SUPPORT,
            "prior_tickets": PRIOR_TICKETS,
            "per_class": self.per_class,
            "global": self.global_threshold,
            "support": self.support,
            "floors": dict(policy.floors),
            "never_route": sorted(policy.never),
            "always_route": sorted(policy.always),
            "pooled": None if self.pooled is None else self.pooled.to_json(),
            "global_pooled": None if self.global_pooled is None else self.global_pooled.to_json(),
            "classes": {name: c.to_json() for name, c in self.classes.items()},
        }


@dataclass
class _Curve:
    """One class's admissible cuts, highest confidence first: threshold, own tickets, right, estimated right."""

    k: int
    conf: Array
    n: Array
    hits: Array
    est: Array


def _curve(k: int, conf: Array, correct: Array, prior: tuple[Array, Array], floor: float | None) -> _Curve:
    """The cuts a class may take: between ties, with MIN_SUPPORT own tickets above, on text, meeting its floor."""
    desc, hits, cut = _descending(conf, correct)
    n = np.arange(1, len(desc) + 1, dtype=np.float64)
    precision = _shrunk(desc, hits, n, prior) if desc.size else np.zeros(0)
    ok = cut & (n >= MIN_SUPPORT) & (desc > 0.0)
    if floor is not None:
        ok &= precision >= floor
    return _Curve(k, desc[ok], n[ok], hits[ok], (precision * n)[ok])


def _hull(curve: _Curve) -> list[int]:
    """Indices of the cuts on the upper concave hull of (tickets, estimated right), starting at the origin."""
    hull: list[int] = [-1]  # -1: the origin, nothing routed

    def point(i: int) -> tuple[float, float]:
        return (0.0, 0.0) if i < 0 else (float(curve.n[i]), float(curve.est[i]))

    for i in range(len(curve.n)):
        x2, y2 = point(i)
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = point(hull[-2]), point(hull[-1])
            if (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0) >= 0:  # the middle point is on or under the chord
                hull.pop()
            else:
                break
        hull.append(i)
    return hull[1:]


def _meets(hits: float, routed: float, target: float) -> bool:
    return routed > 0 and wilson(hits, routed)[0] >= target - 1e-12


def _greedy(curves: list[_Curve], base: tuple[float, float], target: float) -> dict[int, int]:
    """Per class the index of its chosen cut (absent: not routed), by the walk over marginal precision."""
    steps = []  # (slope, class position, from cut, to cut)
    for pos, curve in enumerate(curves):
        previous = -1
        for i in _hull(curve):
            dn = curve.n[i] - (curve.n[previous] if previous >= 0 else 0.0)
            de = curve.est[i] - (curve.est[previous] if previous >= 0 else 0.0)
            steps.append((de / dn, pos, previous, i))
            previous = i
    steps.sort(key=lambda s: (-s[0], s[1], s[3]))
    routed, hits = base
    chosen: dict[int, int] = {}
    best: dict[int, int] = {}
    best_routed = 0.0
    for _, pos, start, end in steps:
        curve = curves[pos]
        routed += curve.n[end] - (curve.n[start] if start >= 0 else 0.0)
        hits += curve.est[end] - (curve.est[start] if start >= 0 else 0.0)
        chosen[pos] = end
        if _meets(hits, routed, target):
            best, best_routed = dict(chosen), routed
    # The best partial step: a cut between the chosen one and the next hull vertex of the next class in the walk.
    taken = _totals(curves, best, base)
    for _, pos, start, end in steps:
        if best.get(pos, -1) != start:
            continue
        curve = curves[pos]
        for i in range(end - 1, start, -1):
            n = taken[0] - (curve.n[start] if start >= 0 else 0.0) + curve.n[i]
            e = taken[1] - (curve.est[start] if start >= 0 else 0.0) + curve.est[i]
            if n > best_routed and _meets(e, n, target):
                best = {**best, pos: i}
                break
        break
    return best


def _totals(curves: list[_Curve], chosen: Mapping[int, int], base: tuple[float, float]) -> tuple[float, float]:
    routed = base[0] + sum(float(curves[p].n[i]) for p, i in chosen.items())
    return routed, base[1] + sum(float(curves[p].est[i]) for p, i in chosen.items())


def _single(
    evidence: Evidence, eligible: list[int], prior: tuple[Array, Array], policy: Policy, base: tuple[float, float]
) -> tuple[float | None, dict[int, bool]]:
    """The one threshold for every eligible class that routes most under the same estimate, floors and bound.

    As for a per-class cut, a class is routed at it only with MIN_SUPPORT of its own tickets at or above it.
    """
    conf = np.asarray(evidence.confidence, dtype=np.float64)
    right = np.asarray(evidence.correct, dtype=bool)
    predicted = np.asarray(evidence.predicted, dtype=np.int64)
    scope = np.isin(predicted, eligible) & (conf > 0.0)
    candidates = np.unique(conf[scope])[::-1]
    if candidates.size == 0:
        return None, {}
    routed = np.full(candidates.size, base[0])
    hits = np.full(candidates.size, base[1])
    included: dict[int, Array] = {}
    for k in eligible:
        desc, cum, _ = _descending(conf[predicted == k], right[predicted == k])
        n = np.searchsorted(-desc, -candidates, side="right").astype(np.float64)  # own tickets at or above
        has = n > 0
        idx = np.clip(n.astype(np.int64) - 1, 0, None)
        at_hits = np.where(has, cum[idx], 0.0) if cum.size else np.zeros_like(n)
        lowest = desc[idx] if desc.size else candidates  # the pool is read where the class's own cut is
        precision = np.where(has, _shrunk(lowest, at_hits, np.maximum(n, 1.0), prior), 0.0)
        floor = policy.floor(evidence.classes[k])
        use = n >= MIN_SUPPORT if floor is None else (n >= MIN_SUPPORT) & (precision >= floor)
        routed += np.where(use, n, 0.0)
        hits += np.where(use, precision * n, 0.0)
        included[k] = use
    lower, _ = _wilson(hits, np.maximum(routed, 1e-9))
    ok = np.flatnonzero((routed >= MIN_SUPPORT) & (lower >= policy.target - 1e-12))
    if ok.size == 0:
        return None, {}
    at = int(ok[np.argmax(routed[ok])])
    return float(candidates[at]), {k: bool(use[at]) for k, use in included.items()}


def fit(evidence: Evidence, policy: Policy | float) -> Thresholds:
    """Per-class thresholds that route the most tickets while the label's pooled precision bound meets the target."""
    policy = policy if isinstance(policy, Policy) else Policy(float(policy))
    conf = np.asarray(evidence.confidence, dtype=np.float64)
    right = np.asarray(evidence.correct, dtype=bool)
    predicted = np.asarray(evidence.predicted, dtype=np.int64)
    prior = pooled_precision(conf, right)
    support = {name: int((predicted == k).sum()) for k, name in enumerate(evidence.classes)}
    reasons: dict[int, str] = {}
    forced: list[int] = []
    curves: list[_Curve] = []
    for k, name in enumerate(evidence.classes):
        floor = policy.floor(name)
        if name in policy.never:
            reasons[k] = "never_route"
        elif name in policy.always:
            forced.append(k)
        elif support[name] < MIN_SUPPORT:
            reasons[k] = f"not enough closed tickets: {support[name]}, needs {MIN_SUPPORT}"
        else:
            curve = _curve(k, conf[predicted == k], right[predicted == k], prior, floor)
            if curve.n.size:
                curves.append(curve)
            elif floor is not None:
                reasons[k] = f"its estimated precision never reaches its floor {floor:g}"
            else:
                reasons[k] = f"no confidence with {MIN_SUPPORT} of its own tickets at or above it"
    mine = {k: (predicted == k) & (conf > 0.0) for k in forced}
    base = (
        float(sum(int(m.sum()) for m in mine.values())),
        float(sum(float(_shrunk_all(conf[m], right[m], prior)) for m in mine.values())),
    )
    chosen = _greedy(curves, base, policy.target)
    thresholds: dict[int, float | None] = {c.k: float(c.conf[chosen[p]]) for p, c in enumerate(curves) if p in chosen}
    eligible = [c.k for c in curves]
    single, single_use = _single(evidence, eligible, prior, policy, base)
    one = {k: single for k, use in single_use.items() if use}
    if single is not None and _routed_count(evidence, one, forced) > _routed_count(evidence, thresholds, forced):
        thresholds = dict(one)
    elif single is not None:
        # A class routed down to its least confident evidence ticket has no evidence below it: there it routes
        # as low as the global threshold would (the same evidence tickets, so the same bound).
        for curve in curves:
            everything = curve.n[-1] == int(((predicted == curve.k) & (conf > 0.0)).sum())
            if everything and thresholds.get(curve.k) == float(curve.conf[-1]) and single < curve.conf[-1]:
                thresholds[curve.k] = single
    left_out = "left out: its tickets would pull the label's pooled precision below the target"
    fits: dict[str, ClassFit] = {}
    for k, name in enumerate(evidence.classes):
        threshold = 0.0 if k in forced else thresholds.get(k)
        reason = "always_route" if k in forced else reasons.get(k, None if threshold is not None else left_out)
        fits[name] = ClassFit(
            name, threshold, Figure.of(*_counts(evidence, k, threshold, prior)), policy.floor(name), reason
        )
    per_class = {name: f.threshold for name, f in fits.items()}
    global_thresholds = {**dict.fromkeys(forced, 0.0), **one}
    return Thresholds(
        policy.target,
        per_class,
        single,
        support,
        fits,
        _pooled(evidence, dict(enumerate(per_class.values())), prior),
        _pooled(evidence, global_thresholds, prior),
        policy,
    )


def _shrunk_all(conf: Array, correct: Array, prior: tuple[Array, Array]) -> float:
    """Estimated right among all of a class's tickets (its lowest cut)."""
    if conf.size == 0:
        return 0.0
    desc, hits, _ = _descending(conf, correct)
    n = np.arange(1, len(desc) + 1, dtype=np.float64)
    return float((_shrunk(desc, hits, n, prior) * n)[-1])


def _routed_count(evidence: Evidence, thresholds: Mapping[int, float | None], forced: list[int]) -> int:
    conf = np.asarray(evidence.confidence, dtype=np.float64)
    limit = np.full(len(evidence.classes), np.inf)
    for k, t in thresholds.items():
        if t is not None:
            limit[k] = t
    for k in forced:
        limit[k] = 0.0
    return int(((conf >= limit[np.asarray(evidence.predicted, dtype=np.int64)]) & (conf > 0.0)).sum())


def _counts(
    evidence: Evidence, k: int, threshold: float | None, prior: tuple[Array, Array]
) -> tuple[int, int, int, float]:
    """A class's evidence tickets, routed at its threshold, right among them, and estimated right."""
    conf = np.asarray(evidence.confidence, dtype=np.float64)
    mine = np.asarray(evidence.predicted, dtype=np.int64) == k
    if threshold is None:
        return int(mine.sum()), 0, 0, 0.0
    go = mine & (conf >= threshold) & (conf > 0.0)
    right = np.asarray(evidence.correct, dtype=bool)
    return int(mine.sum()), int(go.sum()), int(right[go].sum()), _shrunk_all(conf[go], right[go], prior)


def _pooled(evidence: Evidence, thresholds: Mapping[int, float | None], prior: tuple[Array, Array]) -> Figure:
    """The label's routed evidence tickets under per-class thresholds: the classes' counts summed."""
    counts = [_counts(evidence, k, thresholds.get(k), prior) for k in range(len(evidence.classes))]
    return Figure.of(
        len(evidence.confidence), sum(c[1] for c in counts), sum(c[2] for c in counts), sum(c[3] for c in counts)
    )


def each_class(evidence: Evidence, target: float) -> dict[str, float | None]:
    """The earlier rule, kept for comparison (bench/thresholds.py): every class meets the target on its own."""
    prior = pooled_precision(evidence.confidence, evidence.correct)
    predicted = np.asarray(evidence.predicted, dtype=np.int64)
    return {
        name: lowest_threshold(
            evidence.confidence[predicted == k], evidence.correct[predicted == k], target, prior=prior
        )
        for k, name in enumerate(evidence.classes)
    }


def routed(
    classes: Sequence[str],
    predicted: Array,
    confidence: Array,
    correct: Array,
    threshold: Mapping[str, float | None],
    target: float | None = None,
) -> dict[str, Any]:
    """Share of tickets a threshold per class would route, the precision among them, and per class the same."""
    limit = np.array([np.inf if threshold.get(c) is None else threshold[c] for c in classes], dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.int64)
    conf = np.asarray(confidence, dtype=np.float64)
    go = (conf >= limit[predicted]) & (conf > 0.0)
    hit = np.asarray(correct, dtype=bool)
    n = int(go.sum())
    right = int(hit[go].sum())
    below = []  # classes whose routed tickets here fall short of the target (given it), on MIN_SUPPORT or more
    per_class = {}
    for k, name in enumerate(classes):
        mine = go & (predicted == k)
        count = int(mine.sum())
        per_class[name] = {
            "routed": count,
            "coverage": round(count / int((predicted == k).sum()), 4) if (predicted == k).any() else None,
            "precision": round(float(hit[mine].mean()), 4) if count else None,
        }
        if target is not None and count >= MIN_SUPPORT and hit[mine].mean() < target:
            below.append(name)
    return {
        "routed_share": round(n / len(go), 4) if len(go) else 0.0,
        "routed_precision": round(right / n, 4) if n else None,
        "routed": n,
        "classes_below_target": below,
        "per_class": per_class,
    }
