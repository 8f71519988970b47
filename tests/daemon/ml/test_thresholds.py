"""Per-class thresholds for a precision target: the rule, its conservatism, and its round trip through a head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from daemon.ml.thresholds import Evidence, fit, lowest_threshold, pooled_precision, routed


def _evidence(rows: list[tuple[str, float, bool]], classes: list[str]) -> Evidence:
    index = {c: i for i, c in enumerate(classes)}
    return Evidence(
        classes,
        np.array([index[c] for c, _, _ in rows]),
        np.array([conf for _, conf, _ in rows]),
        np.array([ok for _, _, ok in rows]),
    )


def test_the_lowest_threshold_is_where_precision_at_or_above_still_meets_the_target() -> None:
    conf = np.array([0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    right = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    assert lowest_threshold(conf, right, 0.9) == 0.5  # 8 of 8; at 0.4 it would be 8 of 9 = 0.889
    assert lowest_threshold(conf, right, 0.8) == 0.3  # 8 of 10


def test_ties_are_never_split_and_too_few_tickets_are_not_trusted() -> None:
    conf = np.array([0.9, 0.9, 0.9, 0.8, 0.8, 0.8])
    right = np.array([1, 1, 0, 1, 1, 1], dtype=bool)
    # Cutting inside the 0.9 group (2 of 2) is not a threshold any ticket could be routed by.
    assert lowest_threshold(conf, right, 0.8) == 0.8  # 5 of 6 at >= 0.8
    assert lowest_threshold(conf, right, 0.9) is None  # 2/3 at >= 0.9, 5/6 at >= 0.8
    assert lowest_threshold(conf[:3], np.ones(3, dtype=bool), 0.9) is None  # 3 < MIN_SUPPORT tickets


def test_a_class_with_little_evidence_is_not_trusted_by_luck() -> None:
    classes = ["big", "small"]
    # The pool is 60% right at every confidence; "small" got its 6 tickets right by luck.
    rows = [("big", 0.5 + i / 1000, i % 5 < 3) for i in range(200)] + [("small", 0.55, True)] * 6
    fitted = fit(_evidence(rows, classes), 0.9)
    assert fitted.per_class["small"] is None  # (6 + 10 * 0.6) / 16 = 0.75, not 0.9
    assert fitted.support == {"big": 200, "small": 6}
    # With enough own evidence the class earns its threshold, even where the pool is poor.
    many = rows + [("small", 0.55, True)] * 100
    assert fit(_evidence(many, classes), 0.9).per_class["small"] == 0.55


def test_a_class_worse_than_the_pool_is_judged_by_its_own_tickets() -> None:
    classes = ["good", "shaky"]
    # The pool is 99% right; "shaky" is right on 5 of its 6 tickets (83%).
    rows = [("good", 0.95 + i / 10000, i % 100 != 0) for i in range(400)] + [("shaky", 0.96, i != 0) for i in range(6)]
    fitted = fit(_evidence(rows, classes), 0.9)
    # Shrunk toward the pool it would pass ((5 + 10 * 0.98) / 16 = 0.93); its own 83% does not.
    assert fitted.per_class["shaky"] is None
    assert fitted.per_class["good"] is not None
    # Right on all 6, it is still held to the pool's conservative estimate and passes.
    better = rows[:400] + [("shaky", 0.96, True)] * 6
    assert fit(_evidence(better, classes), 0.9).per_class["shaky"] == 0.96


def test_per_class_thresholds_route_a_precise_class_lower_and_an_erring_one_higher() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(400):
        c = float(rng.uniform(0.3, 1.0))
        rows.append(("precise", c, bool(rng.random() < 0.95)))
        rows.append(("erring", c, bool(rng.random() < c)))  # calibrated: right as often as it says
    classes = ["erring", "precise"]
    ev = _evidence(rows, classes)
    fitted = fit(ev, 0.9)
    precise, erring, overall = fitted.per_class["precise"], fitted.per_class["erring"], fitted.global_threshold
    assert precise is not None and erring is not None and overall is not None
    assert precise < overall < erring
    per = routed(classes, ev.predicted, ev.confidence, ev.correct, fitted.per_class)
    for name in classes:
        k = classes.index(name)
        mine = (ev.predicted == k) & (ev.confidence >= fitted.per_class[name])
        assert ev.correct[mine].mean() >= 0.88  # each class near its target, not just the pool
    assert per["routed_precision"] >= 0.9


def test_a_class_that_cannot_reach_the_target_is_never_routed() -> None:
    rows = [("noisy", 0.4 + i / 500, i % 2 == 0) for i in range(100)] + [("fine", 0.9, True)] * 50
    fitted = fit(_evidence(rows, ["fine", "noisy"]), 0.9)
    assert fitted.per_class["noisy"] is None
    got = routed(["fine", "noisy"], np.array([1, 0]), np.array([0.99, 0.99]), np.array([True, True]), fitted.per_class)
    assert got == {"routed_share": 0.5, "routed_precision": 1.0, "routed": 1, "classes_below_target": []}
    # Held out, a class whose routed tickets fall short of the target is named.
    wrong = np.array([True] * 5 + [False] * 5)
    short = routed(["fine", "noisy"], np.zeros(10, dtype=int), np.full(10, 0.95), wrong, fitted.per_class, 0.9)
    assert short["classes_below_target"] == ["fine"] and short["routed_precision"] == 0.5


def test_pooled_precision_is_cumulative_from_the_top() -> None:
    conf, precision = pooled_precision(np.array([0.2, 0.9, 0.5]), np.array([False, True, True]))
    assert conf.tolist() == [0.9, 0.5, 0.2]
    assert precision.tolist() == pytest.approx([1.0, 1.0, 2 / 3])


def test_evidence_round_trips_and_a_damaged_block_is_refused() -> None:
    ev = Evidence.from_scores(["a", "b"], np.array([0, 1, 1]), np.array([0.912345, 0.5, 0.7]), np.array([0, 0, 1]))
    back = Evidence.from_json(["a", "b"], json.loads(json.dumps(ev.to_json())))
    assert back.confidence.tolist() == [0.9123, 0.5, 0.7]
    assert back.correct.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="differ in length"):
        Evidence.from_json(["a", "b"], {"predicted": [0], "confidence": [0.5, 0.6], "correct": [1]})
    with pytest.raises(ValueError, match="outside"):
        Evidence.from_json(["a", "b"], {"predicted": [2], "confidence": [0.5], "correct": [1]})


def test_a_trained_head_serves_its_thresholds_for_any_target(tiny_model: Path) -> None:
    from daemon.ml.classifier import Classifier

    head = Classifier.load(tiny_model).heads["queue"]
    assert head.routing is not None and head.evidence is not None
    assert head.thresholds(head.routing.target) is head.routing
    stricter, looser = head.thresholds(0.99), head.thresholds(0.6)
    assert stricter is not None and looser is not None
    for name in head.classes:
        s, lo = stricter.per_class[name], looser.per_class[name]
        assert s is None or (lo is not None and lo <= s)  # a lower target never routes less
    meta = json.loads((tiny_model / "metadata.json").read_text())
    assert meta["heads"]["queue"]["thresholds"]["target"] == 0.9
    # A head with a transformer part is judged on validation tickets alone: the only ones it did not see.
    assert len(head.evidence.confidence) == meta["data"]["validation_rows"]
