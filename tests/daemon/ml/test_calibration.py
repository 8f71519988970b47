from __future__ import annotations

import numpy as np

from daemon.ml.calibration import (
    MIN_MAP_ROWS,
    apply_confidence_map,
    calibrated,
    choose_confidence_map,
    combine,
    coverage_at,
    expected_calibration_error,
    fit_confidence_map,
    fit_temperature,
)


def test_ece_of_a_perfectly_calibrated_bin_is_zero() -> None:
    probs = np.array([[0.8, 0.2]] * 10)
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, y) == 0.0


def test_ece_of_overconfident_predictions() -> None:
    probs = np.array([[0.9, 0.1]] * 10)
    y = np.array([0] * 5 + [1] * 5)
    assert abs(expected_calibration_error(probs, y) - 0.4) < 1e-9


def test_coverage_at_90() -> None:
    # 10 tickets by confidence: top 5 correct, then one wrong, then correct again.
    conf = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91, 0.5])
    correct = [1, 1, 1, 1, 1, 0, 1, 1, 1, 0]
    probs = np.stack([conf, 1 - conf], axis=1)
    y = np.array([0 if c else 1 for c in correct])
    coverage, threshold = coverage_at(probs, y, 0.9)
    # First 9: 8/9 = 0.889 < 0.9; first 5: 1.0; first 6: 5/6; first 8: 7/8 = 0.875; so 5 tickets.
    assert coverage == 0.5 and threshold == 0.95


def test_coverage_never_splits_tied_confidences() -> None:
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4]])
    y = np.array([0, 1, 0])
    assert coverage_at(probs, y, 0.9) == (0.0, None)


def test_temperature_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 4)) * 2.0
    p = calibrated(true_logits, 1.0)
    y = np.array([rng.choice(4, p=row) for row in p])
    # The model is 3x overconfident: its scores are the true logits times 3.
    t = fit_temperature(true_logits * 3.0, y)
    assert 2.6 < t < 3.4
    before = expected_calibration_error(calibrated(true_logits * 3.0, 1.0), y)
    after = expected_calibration_error(calibrated(true_logits * 3.0, t), y)
    assert after < before / 2


def test_combine_extremes_and_mix() -> None:
    logits = np.array([[2.0, 0.0]])
    tfidf = np.array([[0.2, 0.8]])
    only_tr = combine(logits, tfidf, 0.0)
    only_tf = combine(logits, tfidf, 1.0)
    mixed = combine(logits, tfidf, 0.5)
    assert only_tr.argmax() == 0 and only_tf.argmax() == 1
    np.testing.assert_allclose(mixed, 0.5 * only_tr + 0.5 * only_tf)
    np.testing.assert_allclose(combine(None, tfidf, 1.0), np.log(tfidf))


def test_temperature_never_sharpens_more_than_twofold() -> None:
    scores = np.array([[2.0, 0.0], [0.0, 2.0]] * 5)
    y = np.array([0, 1] * 5)  # perfectly separated: NLL falls forever as T shrinks
    assert abs(fit_temperature(scores, y) - 0.5) < 1e-3


def _two_class(confidence: np.ndarray, accuracy: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities whose top-1 is `confidence` and is right with probability `accuracy`."""
    rng = np.random.default_rng(seed)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    y = np.where(rng.random(len(confidence)) < accuracy, 0, 1)
    return probs, y


def test_confidence_map_bends_what_one_temperature_cannot() -> None:
    # Overconfident at the top, underconfident at the bottom: accuracy is a steep S of confidence.
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 6000)
    accuracy = 0.5 + 0.45 / (1 + np.exp(-30 * (conf - 0.75)))
    probs, y = _two_class(conf, accuracy, seed=2)
    fit, check = slice(0, 3000), slice(3000, None)
    mapping = fit_confidence_map(conf[fit], (y[fit] == 0).astype(float))
    xs, ys = np.array(mapping[0]), np.array(mapping[1])
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) >= 0)  # monotone: the ranking of tickets stays
    assert ys[0] > 0.0 and ys[-1] < 1.0  # never "certainly right" or "certainly wrong"
    mapped = apply_confidence_map(conf[check], mapping)
    before = expected_calibration_error(probs[check], y[check])
    after = expected_calibration_error(probs[check], y[check], confidence=mapped)
    assert before > 0.05 and after < before / 3
    np.testing.assert_allclose(apply_confidence_map(np.array([0.0, 2.0]), mapping), [ys[0], ys[-1]])


def test_confidence_map_is_kept_only_when_it_lowers_the_held_out_brier_score() -> None:
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.5, 1.0, 2000)
    # Two steps (0.5, then 0.75 from 0.65, then 0.98 from 0.9): one sigmoid cannot follow both, the isotonic map can.
    steps = 0.5 + 0.25 * (conf > 0.65) + 0.23 * (conf > 0.9)
    steep = choose_confidence_map(*_two_class(conf, steps, 4), 0)
    assert steep["kept"] and steep["kind"] == "isotonic" and steep["ece_mapped"] < steep["ece_temperature"] / 2
    assert len(steep["map"]["x"]) == len(steep["map"]["y"]) >= 2
    honest = choose_confidence_map(*_two_class(conf, conf, 5), 0)  # already calibrated: a map only adds noise
    assert not honest["kept"] and honest["kind"] == "temperature" and "map" not in honest
    scores = honest["cross_fitted"]
    assert scores["temperature"]["brier"] <= min(s["brier"] + s["brier_se_vs_best"] for s in scores.values())


def test_a_logistic_map_wins_where_two_parameters_suffice() -> None:
    # Overconfident: accuracy = sigmoid(0.3 * logit(conf) + 0.2), the logistic map's own shape; the isotonic
    # map fits it no better held out, so the simpler map is chosen.
    rng = np.random.default_rng(11)
    conf = rng.uniform(0.5, 0.99, 600)
    accuracy = 1 / (1 + np.exp(-0.3 * np.log(conf / (1 - conf)) - 0.2))
    probs, y = _two_class(conf, accuracy, seed=12)
    verdict = choose_confidence_map(probs, y, 0)
    assert verdict["kept"] and verdict["kind"] == "logistic", verdict["reason"]
    xs, ys = np.array(verdict["map"]["x"]), np.array(verdict["map"]["y"])
    assert xs[0] == 0.5 and xs[-1] == 1.0 and np.all(np.diff(ys) > 0)  # from 1/classes to 1, increasing
    check = np.linspace(0.55, 0.95, 9)
    truth = 1 / (1 + np.exp(-0.3 * np.log(check / (1 - check)) - 0.2))
    np.testing.assert_allclose(apply_confidence_map(check, (list(xs), list(ys))), truth, atol=0.06)
    assert verdict["ece_mapped"] < verdict["ece_temperature"]


def test_confidence_map_needs_enough_rows() -> None:
    conf = np.linspace(0.5, 1.0, MIN_MAP_ROWS - 1)
    verdict = choose_confidence_map(*_two_class(conf, conf**4, 6), 0)
    assert not verdict["kept"] and f"{MIN_MAP_ROWS - 1} calibration rows" in verdict["reason"]


def test_confidence_map_reports_ece_on_the_masked_rows() -> None:
    rng = np.random.default_rng(7)
    conf = rng.uniform(0.5, 1.0, 1000)
    probs, y = _two_class(conf, conf**3, 8)
    report = np.arange(1000) >= 800
    verdict = choose_confidence_map(probs, y, 0, report=report)
    assert verdict["ece_temperature"] == round(expected_calibration_error(probs[report], y[report]), 4)
    assert verdict["cross_fitted"]["temperature"]["ece_all_rows"] == round(expected_calibration_error(probs, y), 4)


def test_coverage_and_ece_use_the_served_confidence() -> None:
    probs = np.array([[0.99, 0.01]] * 10)
    y = np.array([0] * 7 + [1] * 3)
    assert coverage_at(probs, y, 0.9) == (0.0, None)
    served = np.full(10, 0.7)
    assert expected_calibration_error(probs, y, confidence=served) < 1e-9
    assert coverage_at(probs, y, 0.7, confidence=served) == (1.0, 0.7)


def test_a_simpler_map_within_one_standard_error_of_the_best_wins() -> None:
    # The logistic shape again, on a draw where the isotonic map happens to score a little better held out.
    rng = np.random.default_rng(100)
    conf = rng.uniform(0.5, 0.99, 600)
    accuracy = 1 / (1 + np.exp(-0.3 * np.log(conf / (1 - conf)) - 0.2))
    verdict = choose_confidence_map(*_two_class(conf, accuracy, seed=200), 0)
    scores = verdict["cross_fitted"]
    assert scores["isotonic"]["brier"] < scores["logistic"]["brier"]  # the best is the isotonic map ...
    assert scores["logistic"]["brier"] <= scores["isotonic"]["brier"] + scores["logistic"]["brier_se_vs_best"]
    assert verdict["kind"] == "logistic"  # ... and not chosen
    assert "within one SE of the best (isotonic)" in verdict["reason"]
