from __future__ import annotations

import numpy as np

from daemon.ml.calibration import (
    calibrated,
    combine,
    coverage_at,
    expected_calibration_error,
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
