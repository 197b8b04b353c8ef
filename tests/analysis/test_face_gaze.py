"""Gaze: iris ratios, on/off screen with head pose, stability over a window."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.face.gaze import GazeConfig, GazeEstimator, gaze_ratios
from analysis.face.headpose import HeadPoseEstimator
from tests.analysis import face_synth as fs


def _on_screen(lm: np.ndarray, calibrate_on: np.ndarray | None = None) -> bool:
    """One-frame decision, optionally after calibrating on a frame (as the tracker does)."""
    g = GazeEstimator()
    hp = HeadPoseEstimator(fs.W, fs.H)
    if calibrate_on is not None:
        pose = hp.estimate(calibrate_on)
        g.set_baseline(*gaze_ratios(calibrate_on, fs.W, fs.H), pose.yaw, pose.pitch)
    return g.update(lm, hp.estimate(lm), 0.0, fs.W, fs.H)


def test_real_face_looks_at_the_camera() -> None:
    h, v = gaze_ratios(fs.neutral_frame(), fs.W, fs.H)
    assert 0.4 < h < 0.6 and -0.1 < v < 0.1
    assert _on_screen(fs.neutral_frame())


def test_ratios_follow_the_iris() -> None:
    lm = fs.neutral_frame()
    h0, v0 = gaze_ratios(lm, fs.W, fs.H)
    h1, v1 = gaze_ratios(fs.shift_iris(lm, 0.2, 0.1), fs.W, fs.H)
    assert h1 - h0 == pytest.approx(0.2, abs=1e-6)
    assert v1 - v0 == pytest.approx(0.1, abs=1e-6)


def test_closing_lids_do_not_move_the_gaze() -> None:
    lm = fs.neutral_frame()
    assert gaze_ratios(fs.close_eyes(lm, 0.8), fs.W, fs.H) == pytest.approx(
        gaze_ratios(lm, fs.W, fs.H)
    )


@pytest.mark.parametrize(
    ("dh", "dv", "on"),
    [
        (0.05, 0.0, True),
        (-0.05, 0.0, True),
        (0.0, 0.08, True),
        (0.25, 0.0, False),
        (-0.25, 0.0, False),
        (0.0, 0.2, False),
        (0.0, -0.2, False),
    ],
)
def test_iris_shift_moves_gaze_off_screen(dh: float, dv: float, on: bool) -> None:
    lm = fs.neutral_frame()
    assert _on_screen(fs.shift_iris(lm, dh, dv), calibrate_on=lm) is on


def test_direction_signs() -> None:
    """Iris to image right = user looks to their left = positive gaze yaw (like head yaw);
    iris down = negative gaze pitch (like head pitch)."""
    g = GazeEstimator()
    lm = fs.shift_iris(fs.neutral_frame(), 0.25, 0.0)
    g.update(lm, HeadPoseEstimator().estimate(lm), 0.0)
    assert g.yaw > 25
    lm = fs.shift_iris(fs.neutral_frame(), 0.0, 0.25)
    g.update(lm, HeadPoseEstimator().estimate(lm), 1.0)
    assert g.pitch < -20


@pytest.mark.parametrize(
    ("yaw", "pitch", "on"), [(10, 0, True), (40, 0, False), (-40, 0, False), (0, -35, False)]
)
def test_head_turn_moves_gaze_off_screen(yaw: float, pitch: float, on: bool) -> None:
    assert _on_screen(fs.render_pose(yaw, pitch, 0)) is on


def test_eyes_can_compensate_a_head_turn() -> None:
    """Head turned 35 degrees away but eyes rotated back towards the screen: on screen."""
    cfg = GazeConfig()
    head_only = fs.render_pose(35, 0, 0)
    assert not _on_screen(head_only)
    back = fs.shift_iris(head_only, -35.0 / cfg.h_gain_deg)
    assert _on_screen(back)


def test_calibration_baseline_moves_the_screen() -> None:
    """Webcam beside the screen: the user's usual gaze is 0.2 eye widths to the side;
    after calibration that direction is on screen and straight at the camera is not."""
    lm = fs.neutral_frame()
    side = fs.shift_iris(lm, 0.2)
    hp = HeadPoseEstimator()
    pose = hp.estimate(side)
    g = GazeEstimator()
    h_side, v_side = gaze_ratios(side)
    g.set_baseline(h_side, v_side, pose.yaw, pose.pitch)
    assert g.update(side, pose, 0.0)
    far = fs.shift_iris(lm, -0.05)
    assert not g.update(far, hp.estimate(far), 33.0)


def test_stability_high_when_steady_low_when_darting() -> None:
    frames = fs.blink_sequence(6000, [], noise_px=0.5, seed=3)
    hp = HeadPoseEstimator()
    steady = GazeEstimator()
    darting = GazeEstimator()
    for f in frames:
        steady.update(f.landmarks, hp.estimate(f.landmarks), f.t_ms)
        side = 0.12 if int(f.t_ms // 300) % 2 else -0.12
        moved = fs.shift_iris(f.landmarks, side)
        darting.update(moved, hp.estimate(moved), f.t_ms)
    assert steady.stability > 0.8
    assert darting.stability < 0.2
    # Window: 3 s of steady gaze after darting restores stability.
    for f in fs.blink_sequence(4000, [], noise_px=0.5, seed=4):
        t = 6000.0 + f.t_ms
        darting.update(f.landmarks, hp.estimate(f.landmarks), t)
    assert darting.stability > 0.8


def test_closed_eyes_keep_last_decision_and_skip_window() -> None:
    g = GazeEstimator()
    away = fs.shift_iris(fs.neutral_frame(), 0.3)
    pose = HeadPoseEstimator().estimate(away)
    assert g.update(away, pose, 0.0) is False
    n = g.samples
    assert g.update(fs.neutral_frame(), pose, 33.0, eyes_closed=True) is False
    assert g.samples == n
