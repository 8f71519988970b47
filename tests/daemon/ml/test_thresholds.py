"""Per-class thresholds for a precision target: the rule, its conservatism, and its round trip through a head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from daemon.ml import thresholds
from daemon.ml.thresholds import (
    MIN_SUPPORT,
    Evidence,
    Policy,
    each_class,
    fit,
    lowest_threshold,
    pooled_precision,
    routed,
    wilson,
)


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
    assert each_class(_evidence(rows, classes), 0.9)["small"] is None  # (6 + 10 * 0.6) / 16 = 0.75, not 0.9
    assert fitted.per_class["small"] is None  # nor does it lift the pool's bound: estimated 4.5 of 6 right
    assert fitted.support == {"big": 200, "small": 6}
    # With enough own evidence the class earns its threshold, even where the pool is poor.
    many = rows + [("small", 0.55, True)] * 100
    assert each_class(_evidence(many, classes), 0.9)["small"] == 0.55
    assert fit(_evidence(many, classes), 0.9).per_class["small"] == 0.55


def test_a_class_worse_than_the_pool_is_judged_by_its_own_tickets() -> None:
    classes = ["good", "shaky"]
    # The pool is 99% right; "shaky" is right on 5 of its 6 tickets (83%).
    rows = [("good", 0.95 + i / 10000, i % 100 != 0) for i in range(400)] + [("shaky", 0.96, i != 0) for i in range(6)]
    alone = each_class(_evidence(rows, classes), 0.9)
    # Shrunk toward the pool it would pass ((5 + 10 * 0.98) / 16 = 0.93); its own 83% does not.
    assert alone["shaky"] is None
    assert alone["good"] is not None
    # Right on all 6, it is still held to the pool's conservative estimate and passes.
    better = rows[:400] + [("shaky", 0.96, True)] * 6
    assert each_class(_evidence(better, classes), 0.9)["shaky"] == 0.96
    # Under the pooled target its 83% fits beside the good class's 99%, and is marked as below the pooled figure.
    fitted = fit(_evidence(rows, classes), 0.9)
    shaky = fitted.classes["shaky"]
    assert shaky.figure.routed == 6 and shaky.figure.estimate == pytest.approx(5 / 6, abs=1e-4)
    # All its tickets routed, it has no evidence below 0.96: there it routes as low as the global threshold.
    assert shaky.threshold == fitted.global_threshold == 0.95
    assert fitted.pooled is not None and "below the pooled figure" in shaky.marks(fitted.pooled.estimate)


def test_per_class_thresholds_route_a_precise_class_lower_and_an_erring_one_higher() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(400):
        c = float(rng.uniform(0.3, 1.0))
        rows.append(("precise", c, bool(rng.random() < 0.95)))
        rows.append(("erring", c, bool(rng.random() < c)))  # calibrated: right as often as it says
    classes = ["erring", "precise"]
    ev = _evidence(rows, classes)
    alone = each_class(ev, 0.9)  # the rule a floor applies: each class meets it on its own
    precise, erring, overall = alone["precise"], alone["erring"], lowest_threshold(ev.confidence, ev.correct, 0.9)
    assert precise is not None and erring is not None and overall is not None
    assert precise < overall < erring
    per = routed(classes, ev.predicted, ev.confidence, ev.correct, alone)
    for name in classes:
        k = classes.index(name)
        mine = (ev.predicted == k) & (ev.confidence >= alone[name])
        assert ev.correct[mine].mean() >= 0.88  # each class near its target, not just the pool
    assert per["routed_precision"] >= 0.9


def test_a_class_that_cannot_reach_the_target_is_never_routed() -> None:
    rows = [("noisy", 0.4 + i / 500, i % 2 == 0) for i in range(100)] + [("fine", 0.9, True)] * 50
    fitted = fit(_evidence(rows, ["fine", "noisy"]), 0.9)
    assert fitted.per_class["noisy"] is None
    assert (
        fitted.classes["noisy"].reason
        == "left out: its tickets would pull the label's pooled precision below the target"
    )
    got = routed(["fine", "noisy"], np.array([1, 0]), np.array([0.99, 0.99]), np.array([True, True]), fitted.per_class)
    assert {k: got[k] for k in ("routed_share", "routed_precision", "routed", "classes_below_target")} == {
        "routed_share": 0.5,
        "routed_precision": 1.0,
        "routed": 1,
        "classes_below_target": [],
    }
    assert got["per_class"]["noisy"] == {"routed": 0, "coverage": 0.0, "precision": None}
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
    assert head.thresholds(Policy(head.routing.target)) is head.routing
    stricter, looser = head.thresholds(Policy(0.99)), head.thresholds(Policy(0.6))
    assert stricter is not None and looser is not None
    assert stricter.pooled is not None and looser.pooled is not None
    assert looser.pooled.routed >= stricter.pooled.routed  # a lower target never routes less
    meta = json.loads((tiny_model / "metadata.json").read_text())
    assert meta["heads"]["queue"]["thresholds"]["target"] == 0.9
    assert meta["heads"]["queue"]["thresholds"]["rule"] == "pooled"
    # A head with a transformer part is judged on validation tickets alone: the only ones it did not see.
    assert len(head.evidence.confidence) == meta["data"]["validation_rows"]


def test_a_model_trained_under_the_earlier_rule_is_refitted_at_load(tiny_model: Path, tmp_path: Path) -> None:
    """Its stored per-class thresholds (every class alone) are not used: the evidence is re-fitted, pooled."""
    import shutil

    from daemon.ml.classifier import Classifier

    old = tmp_path / "old"
    shutil.copytree(tiny_model, old)
    spec_file = old / "queue" / "head.json"
    spec = json.loads(spec_file.read_text())
    routing = spec["routing"]
    earlier = {k: routing[k] for k in ("target", "per_class", "global", "support", "evidence")}
    earlier["per_class"] = dict.fromkeys(earlier["per_class"], 0.01)  # what the old file said: ignored
    spec["routing"] = {**earlier, "min_support": 5, "prior_tickets": 10.0}
    spec_file.write_text(json.dumps(spec))
    head = Classifier.load(old).heads["queue"]
    fresh = Classifier.load(tiny_model).heads["queue"]
    assert head.routing is not None and fresh.routing is not None
    assert head.routing.per_class == fresh.routing.per_class
    assert 0.01 not in head.routing.per_class.values()


# The pooled rule: one target for all routed tickets of a label, a threshold per class under it.


def _calibrated(rng: np.random.Generator, name: str, n: int, skill: float) -> list[tuple[str, float, bool]]:
    """A class whose confidence is spread over (0.3, 1) and right with probability min(1, confidence + skill)."""
    rows = []
    for _ in range(n):
        c = round(float(rng.uniform(0.3, 1.0)), 4)
        rows.append((name, c, bool(rng.random() < min(1.0, c + skill))))
    return rows


def _routed_right(ev: Evidence, per_class: dict[str, float | None]) -> tuple[int, int]:
    got = routed(ev.classes, ev.predicted, ev.confidence, ev.correct, per_class)
    return got["routed"], round((got["routed_precision"] or 0) * got["routed"])


def test_the_pooled_rule_routes_a_class_that_cannot_reach_the_target_alone() -> None:
    # "precise" is right 97% of the time at any confidence; "middling" 6 of 7: alone it never reaches 0.9, but a
    # share of it fits under the pooled target, which the each-class-alone rule could never route.
    rows = [("precise", 0.5 + i / 1000, i % 100 >= 3) for i in range(300)]
    rows += [("middling", 0.5 + i / 1000, i % 7 != 5) for i in range(300)]  # 6 of 7, the top one wrong
    ev = _evidence(rows, ["middling", "precise"])
    alone = each_class(ev, 0.9)
    assert alone["middling"] is None and alone["precise"] is not None
    fitted = fit(ev, 0.9)
    assert fitted.per_class["middling"] is not None and fitted.per_class["precise"] is not None
    assert fitted.pooled is not None and fitted.pooled.lower is not None and fitted.pooled.lower >= 0.9
    n, _ = _routed_right(ev, fitted.per_class)
    assert n > _routed_right(ev, alone)[0]
    middling = fitted.classes["middling"]
    assert middling.figure.estimate is not None and middling.figure.estimate < 0.9
    assert "below the pooled figure" in middling.marks(fitted.pooled.estimate)


@pytest.mark.parametrize("seed", range(12))
def test_the_fit_always_meets_its_bound_and_never_routes_less_than_one_threshold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = [f"c{k}" for k in range(int(rng.integers(2, 8)))]
    rows = []
    for name in classes:
        rows += _calibrated(rng, name, int(rng.integers(3, 300)), float(rng.uniform(-0.2, 0.3)))
    ev = _evidence(rows, classes)
    target = float(rng.choice([0.7, 0.8, 0.9, 0.95]))
    fitted = fit(ev, target)
    assert fitted.pooled is not None and fitted.global_pooled is not None
    if fitted.pooled.routed:
        assert fitted.pooled.lower is not None and fitted.pooled.lower >= target - 1e-4
    assert fitted.pooled.routed >= fitted.global_pooled.routed
    if fitted.global_threshold is not None:
        assert fitted.global_pooled.lower is not None and fitted.global_pooled.lower >= target - 1e-4
        single = dict.fromkeys(classes, fitted.global_threshold)
        assert _routed_right(ev, single)[0] <= fitted.pooled.routed
    for name, c in fitted.classes.items():
        assert (c.threshold is None) == (c.reason is not None)
        if c.threshold is not None:
            assert c.figure.routed >= 1
        if fitted.support[name] < MIN_SUPPORT:
            assert c.reason == f"not enough closed tickets: {fitted.support[name]}, needs {MIN_SUPPORT}"


def test_the_walk_finds_the_best_combination_on_a_small_case() -> None:
    # Brute force over every pair of cuts: the walk's routed count is the most the bound allows.
    rng = np.random.default_rng(7)
    rows = _calibrated(rng, "a", 60, 0.15) + _calibrated(rng, "b", 60, 0.0)
    ev = _evidence(rows, ["a", "b"])
    fitted = fit(ev, 0.85)
    cuts = {name: [None, *sorted({c for n, c, _ in rows if n == name})] for name in ev.classes}
    best = 0
    for ta in cuts["a"]:
        for tb in cuts["b"]:
            pooled = thresholds._pooled(  # the fit's own estimate, applied to this pair of thresholds
                ev, {0: ta, 1: tb}, pooled_precision(ev.confidence, ev.correct)
            )
            mine = [(ev.predicted == k) & (ev.confidence >= t) for k, t in ((0, ta), (1, tb)) if t is not None]
            if any(m.sum() < MIN_SUPPORT for m in mine) or not pooled.routed:
                continue
            if pooled.lower is not None and pooled.lower >= 0.85:
                best = max(best, pooled.routed)
    assert fitted.pooled is not None and fitted.pooled.routed >= 0.97 * best


def test_floors_never_and_always() -> None:
    rows = [("precise", 0.5 + i / 1000, i % 100 >= 3) for i in range(300)]
    rows += [("middling", 0.5 + i / 1000, i % 7 != 5) for i in range(300)]  # 6 of 7, the top one wrong
    rows += [("legal", 0.9, i % 2 == 0) for i in range(40)]
    rows += [("rare", 0.99, True) for _ in range(3)]
    classes = ["legal", "middling", "precise", "rare"]
    ev = _evidence(rows, classes)
    fitted = fit(ev, Policy.of(0.9, floors={"middling": 0.85}, never=["precise"], always=["legal"]))
    assert fitted.per_class["precise"] is None and fitted.classes["precise"].reason == "never_route"
    assert fitted.per_class["legal"] == 0.0 and fitted.classes["legal"].reason == "always_route"
    assert fitted.classes["rare"].reason == "not enough closed tickets: 3, needs 5"
    # Half right, "legal" counts in the pool and leaves no room for "middling" under 0.9: it is left out.
    assert fitted.per_class["middling"] is None
    assert fitted.classes["middling"].reason is not None and "pooled precision" in fitted.classes["middling"].reason
    assert fitted.pooled is not None and fitted.pooled.routed == 40
    # A floor the class cannot meet switches it off with the reason; one it meets holds its own estimate up.
    floored = fit(ev, Policy.of(0.8, floors={"middling": 0.99}))
    assert floored.per_class["middling"] is None
    assert floored.classes["middling"].reason == "its estimated precision never reaches its floor 0.99"
    loose = fit(ev, Policy.of(0.8, floors={"middling": 0.85}))
    estimate = loose.classes["middling"].figure.estimate
    assert loose.per_class["middling"] is not None and estimate is not None and estimate >= 0.85
    assert fit(ev, Policy.of(0.8)).classes["middling"].figure.routed >= loose.classes["middling"].figure.routed


def test_wilson_bounds_are_conservative_and_sane() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    lower, upper = wilson(90, 100)
    assert 0.83 < lower < 0.9 < upper < 0.95
    assert wilson(5, 5)[0] < 0.7  # five of five is not proof of 90%
    assert wilson(500, 500)[0] > 0.99


def test_where_the_walk_falls_short_of_one_threshold_one_threshold_is_used() -> None:
    # The walk steps along hull vertices; here (found by search over random cases) the best single threshold
    # lands between two of them and routes one ticket more. The fit then takes the single threshold.
    rng = np.random.default_rng(258)
    rows = []
    for k in range(int(rng.integers(2, 6))):
        n, skill = int(rng.integers(5, 80)), float(rng.uniform(-0.3, 0.3))
        for _ in range(n):
            c = round(float(rng.uniform(0.3, 1.0)), 2)
            rows.append((f"c{k}", c, bool(rng.random() < min(1, c + skill))))
    classes = sorted({name for name, _, _ in rows})
    ev = _evidence(rows, classes)
    target = float(rng.choice([0.7, 0.8, 0.9]))
    fitted = fit(ev, target)
    assert fitted.pooled is not None and fitted.global_pooled is not None and fitted.global_threshold is not None
    assert fitted.pooled.routed == fitted.global_pooled.routed
    assert {t for t in fitted.per_class.values() if t is not None} == {fitted.global_threshold}
