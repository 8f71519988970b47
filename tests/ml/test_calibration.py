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


def test_confidence_map_is_kept_only_when_it_lowers_held_out_ece() -> None:
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.5, 1.0, 2000)
    miscalibrated = choose_confidence_map(*_two_class(conf, 0.5 + 0.45 / (1 + np.exp(-30 * (conf - 0.75))), 4), 0)
    assert miscalibrated["kept"] and miscalibrated["ece_mapped"] < miscalibrated["ece_temperature"] / 2
    assert len(miscalibrated["map"]["x"]) == len(miscalibrated["map"]["y"]) >= 2
    honest = choose_confidence_map(*_two_class(conf, conf, 5), 0)  # already calibrated: a map only adds noise
    assert not honest["kept"] and "map" not in honest
    assert honest["all_rows"]["brier_mapped"] >= honest["all_rows"]["brier_temperature"]


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
    assert verdict["all_rows"]["ece_temperature"] == round(expected_calibration_error(probs, y), 4)


def test_coverage_and_ece_use_the_served_confidence() -> None:
    probs = np.array([[0.99, 0.01]] * 10)
    y = np.array([0] * 7 + [1] * 3)
    assert coverage_at(probs, y, 0.9) == (0.0, None)
    served = np.full(10, 0.7)
    assert expected_calibration_error(probs, y, confidence=served) < 1e-9
    assert coverage_at(probs, y, 0.7, confidence=served) == (1.0, 0.7)
