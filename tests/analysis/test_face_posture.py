"""Posture: sustained deviation from the user's own baseline lowers the score."""

from __future__ import annotations

import pytest

from analysis.face.headpose import HeadPose, HeadPoseEstimator
from analysis.face.posture import PostureConfig, PostureEstimator, face_size_px
from tests.analysis import face_synth as fs

FPS_MS = 1000.0 / 30.0


def _feed(
    est: PostureEstimator, pose: HeadPose, size: float, t0: float, ms: float
) -> tuple[float, float]:
    """Feed a constant pose for ``ms``; returns (min score seen, end time)."""
    t, lowest = t0, 100.0
    while t < t0 + ms:
        t += FPS_MS
        lowest = min(lowest, est.update(pose, size, t))
    return lowest, t


def _calibrated() -> tuple[PostureEstimator, float]:
    est = PostureEstimator()
    est.set_baseline(0.0, -5.0, 0.0, 120.0)
    _, t = _feed(est, HeadPose(0.0, -5.0, 0.0), 120.0, 0.0, 2000)
    assert est.score == 100.0
    return est, t


def test_sustained_slouch_lowers_the_score() -> None:
    est, t = _calibrated()
    _, t = _feed(est, HeadPose(0.0, -30.0, 0.0), 120.0, t, 15_000)  # 25 degrees further down
    assert est.score < 65
    assert est.penalties[0] > 0.9  # pitch term saturated


def test_brief_glance_down_is_not_bad_posture() -> None:
    est, t = _calibrated()
    lowest, t = _feed(est, HeadPose(0.0, -30.0, 0.0), 120.0, t, 500)
    lowest2, _ = _feed(est, HeadPose(0.0, -5.0, 0.0), 120.0, t, 5000)
    assert min(lowest, lowest2) > 95


def test_looking_up_is_not_slouching() -> None:
    est, t = _calibrated()
    _feed(est, HeadPose(0.0, 10.0, 0.0), 120.0, t, 15_000)
    assert est.penalties[0] == 0.0
    assert est.score == 100.0


def test_turning_away_and_tilting_lower_the_score() -> None:
    est, t = _calibrated()
    _feed(est, HeadPose(40.0, -5.0, 0.0), 120.0, t, 15_000)
    turned = est.score
    assert turned < 80
    est2, t2 = _calibrated()
    _feed(est2, HeadPose(0.0, -5.0, 20.0), 120.0, t2, 15_000)
    assert est2.score < 90


def test_leaning_in_lowers_the_score_small_moves_do_not() -> None:
    est, t = _calibrated()
    _feed(est, HeadPose(0.0, -5.0, 0.0), 125.0, t, 15_000)  # 4% closer: dead zone
    assert est.score == 100.0
    _feed(est, HeadPose(0.0, -5.0, 0.0), 170.0, t + 15_000, 15_000)  # 42% bigger: leaning in
    assert est.score <= 100 * (1 - PostureConfig().distance_weight) + 1e-9


def test_worst_case_is_zero() -> None:
    est, t = _calibrated()
    _feed(est, HeadPose(60.0, -60.0, 40.0), 300.0, t, 30_000)
    assert est.score == pytest.approx(0.0, abs=0.5)


def test_face_size_tracks_distance_and_ignores_yaw() -> None:
    near = fs.render_pose(0, 0, 0, t_mm=(0, 0, 450))
    far = fs.render_pose(0, 0, 0, t_mm=(0, 0, 600))
    assert face_size_px(near, 0.0) / face_size_px(far, 0.0) == pytest.approx(600 / 450, rel=0.03)
    turned = fs.render_pose(30, 0, 0, t_mm=(0, 0, 600))
    yaw = HeadPoseEstimator().estimate(turned).yaw
    assert face_size_px(turned, yaw) == pytest.approx(face_size_px(far, 0.0), rel=0.06)


def test_first_frame_is_provisional_baseline() -> None:
    est = PostureEstimator()
    assert est.update(HeadPose(20.0, -20.0, 5.0), 90.0, 0.0) == 100.0
    assert est.baseline == (20.0, -20.0, 5.0, 90.0)
