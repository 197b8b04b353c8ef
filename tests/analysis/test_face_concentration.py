"""Concentration: windowed gaze, head deviation and blink-rate terms."""

from __future__ import annotations

import pytest

from analysis.face.concentration import ConcentrationConfig, ConcentrationEstimator, blink_factor

CFG = ConcentrationConfig()


def _run(
    est: ConcentrationEstimator, t0: float, ms: float, on: bool, dev: float, rate: float
) -> float:
    t = t0
    while t < t0 + ms:
        t += 33.3
        est.update(on, dev, rate, t)
    return t


def test_blink_factor_shape() -> None:
    assert blink_factor(CFG.blink_low_per_min) == 1.0
    assert blink_factor(12.0) == 1.0
    assert blink_factor(CFG.blink_high_per_min) == 1.0
    assert blink_factor(0.0) == CFG.blink_factor_at_zero
    assert blink_factor(CFG.blink_zero_per_min) == 0.0
    assert blink_factor(60.0) == 0.0
    # Monotone on both sides of the band.
    low = [blink_factor(r) for r in (0.0, 1.0, 2.5, 4.0)]
    high = [blink_factor(r) for r in (21.0, 25.0, 30.0, 39.0)]
    assert low == sorted(low) and high == sorted(high, reverse=True)


def test_focused_user_scores_100() -> None:
    est = ConcentrationEstimator()
    _run(est, 0.0, 40_000, True, 2.0, 12.0)
    assert est.score == pytest.approx(100.0)


def test_looking_away_with_head_turned_scores_low() -> None:
    est = ConcentrationEstimator()
    _run(est, 0.0, 40_000, False, 45.0, 12.0)
    # Only the (normal) blink term remains.
    assert est.score == pytest.approx(100.0 * CFG.blink_weight)


def test_half_time_on_screen_is_in_between() -> None:
    est = ConcentrationEstimator()
    t = 0.0
    for _ in range(10):
        t = _run(est, t, 1500, True, 0.0, 12.0)
        t = _run(est, t, 1500, False, 0.0, 12.0)
    assert est.score == pytest.approx(100.0 * (1 - 0.5 * CFG.gaze_weight), abs=3.0)


def test_blink_rate_is_ignored_until_enough_time() -> None:
    est = ConcentrationEstimator()
    _run(est, 0.0, 10_000, True, 0.0, 50.0)
    assert est.score == pytest.approx(100.0)
    _run(est, 10_000, 15_000, True, 0.0, 50.0)
    assert est.score == pytest.approx(100.0 * (1 - CFG.blink_weight))


def test_window_forgets_the_past() -> None:
    est = ConcentrationEstimator()
    t = _run(est, 0.0, 30_000, False, 40.0, 12.0)
    assert est.score < 30
    _run(est, t, CFG.window_ms + 1000, True, 0.0, 12.0)
    assert est.score == pytest.approx(100.0)
